''' One measured client run, in its own process (started by ``run.py``).

``python -m benchmarks._client CASE CLIENT VARIANT BASE_URL PARAMS_JSON``
runs one case with one client (``bokeh`` for ``bokeh.client``,
``bokehsync``, ``raw`` for the raw websocket floor of ``_raw``, or ``floor``
for the same document work with no client at all, ``_floor``) and
prints one JSON line: the measured ``time`` in seconds, the process's peak
RSS (``rss_peak``, read right after the measured part) and its RSS before it
(``rss_base``), and ``verified``: whether a fresh session, opened with the
*other* client after the measurement, found the expected result on the
server (None where the case has nothing to verify).
'''
from __future__ import annotations

import contextlib
import gc
import importlib
import json
import multiprocessing
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

#: ``run.py --baseline REV``: the directory holding revision REV's
#: ``bokehsync/``, imported instead of this tree's (before anything imports it).
BASELINE_ENV = "BOKEHSYNC_BENCH_BASELINE"
if os.environ.get(BASELINE_ENV):
    sys.path.insert(0, os.environ[BASELINE_ENV])

#: Largest websocket message both clients and the server accept (bytes).
MAX_MESSAGE = 1 << 30

#: Seconds a bounded wait inside a case gives up after.
WAIT_LIMIT = 120.0

#: Seconds without a new row after which a writer's document counts as stuck
#: (generous: under cProfile on a loaded machine the others can be that slow).
STALL = 15.0

#: Changes per PATCH-DOC of the raw client's ``pipelined`` patch_burst
#: (125 to 2,500 gave the same time within the noise).
PIPELINE_CHUNK = 500


class Api:
    ''' The same calls on ``bokeh.client`` or ``bokehsync``.

    Args:
        name (str) : ``bokeh`` or ``bokehsync``
    '''

    def __init__(self, name: str) -> None:
        self.name = name
        self.module = importlib.import_module("bokeh.client" if name == "bokeh" else "bokehsync")

    def pull(self, url: str, session_id: str | None = None) -> Any:
        ''' ``pull_session`` with a large ``max_message_size``. '''
        return self.module.pull_session(session_id=session_id, url=url, max_message_size=MAX_MESSAGE)

    def push(self, doc: Any, url: str) -> Any:
        ''' ``push_session`` with a large ``max_message_size``. '''
        return self.module.push_session(doc, url=url, max_message_size=MAX_MESSAGE)

    def flush(self, session: Any) -> None:
        ''' Wait until the server processed every change sent so far. '''
        if self.name == "bokeh":
            session.force_roundtrip()
        else:
            session.flush()

    def lock(self, session: Any) -> Any:
        ''' The session's document lock (a no-op for ``bokeh.client``). '''
        return getattr(session, "lock", contextlib.nullcontext())


class Clock:
    ''' Wall time and CPU time (whole process, and this thread) of a block. '''

    def __enter__(self) -> Clock:
        self._t0, self._c0, self._m0 = time.perf_counter(), time.process_time(), time.thread_time()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.time = time.perf_counter() - self._t0
        self.cpu = time.process_time() - self._c0
        self.main_cpu = time.thread_time() - self._m0

    def result(self) -> dict[str, float]:
        ''' ``time`` (wall), ``cpu`` (all threads) and ``main_cpu`` (the measuring thread), in seconds. '''
        return {"time": self.time, "cpu": self.cpu, "main_cpu": self.main_cpu}


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _verify(measured: str, url: str, session_id: str, check: Callable[[Any], Any]) -> Any:
    ''' Pull ``session_id`` with the client that was *not* measured and run ``check`` on its document. '''
    verifier = Api("bokehsync" if measured == "bokeh" else "bokeh")
    session = verifier.pull(url, session_id=session_id)
    try:
        return check(session.document)
    finally:
        session.close()


def _ws_url(url: str) -> str:
    return url.replace("http://", "ws://", 1).rstrip("/") + "/ws"


def _raw(url: str, **kwargs: Any) -> Any:
    from ._raw import RawClient
    return RawClient(_ws_url(url), **kwargs)


def _pull_raw(raw: Any) -> Any:
    ''' PULL-DOC over a raw client, into a new Document. '''
    from bokeh.document import Document

    from ._raw import PROTOCOL
    doc = Document()
    raw.request(PROTOCOL.create("PULL-DOC-REQ")).push_to_document(doc)
    return doc


def _await_oks(raw: Any, count: int) -> int:
    ''' Read until ``count`` replies came; all must be OK. Returns how many
    unsolicited messages (the server's PATCH-DOC echo of a push) were skipped.
    '''
    skipped = 0
    while count:
        reply = raw.recv_message()
        if reply.header.get("reqid") is None:
            skipped += 1
            continue
        if reply.msgtype != "OK":
            raise RuntimeError(f"expected OK, got {reply.msgtype}: {reply.content}")
        count -= 1
    return skipped


# Cases -----------------------------------------------------------------------

def case_rtt(client: str, variant: str, base: str, p: dict[str, Any]) -> dict[str, Any]:
    ''' Median of ``n`` request/reply round trips on an open connection. '''
    n, warm = p["n"], 20
    times: list[float] = []
    if client == "raw":
        from ._raw import PROTOCOL
        raw = _raw(base + "/empty", quickack=variant != "noquickack")
        try:
            for i in range(n + warm):
                t0 = time.perf_counter()
                raw.request(PROTOCOL.create("SERVER-INFO-REQ"))
                if i >= warm:
                    times.append(time.perf_counter() - t0)
        finally:
            raw.close()
    else:
        api = Api(client)
        session = api.pull(base + "/empty")
        try:
            for i in range(n + warm):
                t0 = time.perf_counter()
                session.force_roundtrip()
                if i >= warm:
                    times.append(time.perf_counter() - t0)
        finally:
            session.close()
    times.sort()
    return {"time": statistics.median(times), "p10": times[len(times) // 10],
            "p90": times[len(times) * 9 // 10], "verified": None}


def case_connect_pull(client: str, variant: str, base: str, p: dict[str, Any]) -> dict[str, Any]:
    ''' Median of ``n`` x (pull_session of the empty app, then close). '''
    n, warm = p["n"], 2
    url = base + "/empty"
    times: list[float] = []
    api = None if client == "raw" else Api(client)
    for i in range(n + warm):
        t0 = time.perf_counter()
        if api is None:
            raw = _raw(url)
            _pull_raw(raw)
            raw.close()
        else:
            api.pull(url).close()
        if i >= warm:
            times.append(time.perf_counter() - t0)
    return {"time": statistics.median(times), "verified": None}


def _big_doc(rows: int) -> Any:
    from bokeh.document import Document
    from bokeh.models import ColumnDataSource
    x = np.arange(rows, dtype=np.float64)
    doc = Document()
    doc.add_root(ColumnDataSource(data={"x": x, "y": x * 0.5}, name="big"))
    return doc


def _check_big(rows: int) -> Callable[[Any], bool]:
    def check(doc: Any) -> bool:
        data = doc.get_model_by_name("big").data
        x = np.asarray(data["x"])
        y = np.asarray(data["y"])
        expected = np.arange(rows, dtype=np.float64)
        return len(x) == rows and bool(np.array_equal(x, expected)) and bool(np.array_equal(y, expected * 0.5))
    return check


def case_push_big(client: str, variant: str, base: str, p: dict[str, Any],
        marks: dict[str, Any] | None = None) -> dict[str, Any]:
    ''' push_session of a two-column float64 source of ``rows`` rows, then close.

    raw variants: ``""`` (PUSH-DOC, as the clients do), ``patch`` (a
    PATCH-DOC adding the root instead, which the server does not echo back).
    '''
    rows = p["rows"]
    url = base + "/empty"
    doc = _big_doc(rows)
    api = None if client == "raw" else Api(client)
    gc.collect()
    base_rss = _rss()
    extra: dict[str, Any] = {}
    t0 = time.perf_counter()
    if marks is not None:
        marks.update(rss_base=base_rss, t0=t0)
    if api is None:
        from ._raw import PROTOCOL
        raw = _raw(url)
        if variant == "patch":
            # The same content as a PATCH-DOC adding the root: the server
            # does not echo a patch to the connection that sent it.
            from bokeh.document.events import RootAddedEvent
            message = PROTOCOL.create("PATCH-DOC", [RootAddedEvent(doc, doc.roots[0])])
        else:
            message = PROTOCOL.create("PUSH-DOC", doc)
        _ = message.header_json, message.content_json
        t1 = time.perf_counter()
        raw.send_message(message)
        skipped = _await_oks(raw, 1)
        elapsed = time.perf_counter() - t0
        extra = {"serialize": t1 - t0, "send": elapsed - (t1 - t0), "echoed_messages": skipped}
        raw.close()
        session_id = raw.session_id
    else:
        session = api.push(doc, url)
        session.close()
        elapsed = time.perf_counter() - t0
        session_id = session.id
    peak = _peak_rss()
    verified = _verify(client, url, session_id, _check_big(rows))
    return {"time": elapsed, "rss_base": base_rss, "rss_peak": peak, "verified": verified, **extra}


def case_patch_burst(client: str, variant: str, base: str, p: dict[str, Any]) -> dict[str, Any]:
    ''' ``n`` changes of a Range1d start, then flush (bokeh.client: force_roundtrip).

    Variants: ``each`` (one change per statement), ``batch`` (bokehsync:
    inside ``session.batch()``), ``rt100`` (a flush every 100 changes);
    raw: ``each`` (n PATCH-DOCs), ``merged`` (one PATCH-DOC of n events),
    ``pipelined`` (every ``chunk`` changes a PATCH-DOC of them, sent without
    waiting; then every OK awaited): what a client that waits for the OK
    takes with no overhead of its own (no threads, locks, window or
    convergence rules), the server applying one message while the next
    changes are made. A reference, not a proof of a lower bound.
    '''
    n = p["n"]
    url = base + "/range1d"
    if client == "raw":
        from ._raw import PROTOCOL
        raw = _raw(url)
        doc = _pull_raw(raw)
        events: list[Any] = []
        doc.on_change(events.append)
        model = doc.get_model_by_name("range")
        chunk = int(p.get("chunk", PIPELINE_CHUNK))
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1, not {chunk}")
        with Clock() as clock:
            if variant == "pipelined":
                start = sent = 0
                for i in range(n):
                    model.start = float(i + 1)
                    if len(events) - start >= chunk:
                        raw.send_many([PROTOCOL.create("PATCH-DOC", events[start:])])
                        start, sent = len(events), sent + 1
                if start < len(events):
                    raw.send_many([PROTOCOL.create("PATCH-DOC", events[start:])])
                    sent += 1
                _await_oks(raw, sent)
            else:
                for i in range(n):
                    model.start = float(i + 1)
                if variant == "merged":
                    raw.send_many([PROTOCOL.create("PATCH-DOC", events)])
                    _await_oks(raw, 1)
                else:
                    raw.send_many([PROTOCOL.create("PATCH-DOC", [e]) for e in events])
                    _await_oks(raw, len(events))
        session_id = raw.session_id
        raw.close()
    else:
        api = Api(client)
        session = api.pull(url)
        model = session.document.get_model_by_name("range")
        with Clock() as clock:
            if variant == "batch":
                with session.batch():
                    for i in range(n):
                        model.start = float(i + 1)
            else:
                for i in range(n):
                    model.start = float(i + 1)
                    if variant == "rt100" and i % 100 == 99:
                        api.flush(session)
            api.flush(session)
        session_id = session.id
        session.close()
    verified = _verify(client, url, session_id, lambda d: d.get_model_by_name("range").start == float(n))
    return {**clock.result(), "verified": verified}


def case_stream(client: str, variant: str, base: str, p: dict[str, Any]) -> dict[str, Any]:
    ''' ``n`` x ``source.stream`` of ``rows`` rows (``kind``: Python lists or
    numpy arrays), then flush; ``rt100``: a flush every 100 streams.
    '''
    n, rows = p["n"], p["rows"]
    url = base + "/source"
    if p.get("kind") == "numpy":
        chunks: list[dict[str, Any]] = [{"x": np.arange(i * rows, (i + 1) * rows, dtype=np.float64),
                                         "y": np.arange(rows, dtype=np.float64)} for i in range(n)]
    else:
        chunks = [{"x": [float(i * rows + j) for j in range(rows)], "y": [float(j) for j in range(rows)]}
                  for i in range(n)]
    total = n * rows

    def check(doc: Any) -> bool:
        data = doc.get_model_by_name("source").data
        return len(data["x"]) == total and float(data["x"][-1]) == float(total - 1) and len(data["y"]) == total

    if client == "raw":
        from ._raw import PROTOCOL
        raw = _raw(url)
        doc = _pull_raw(raw)
        messages: list[Any] = []

        def serialize(event: Any) -> None:
            # At once, as the floor and the clients do: a kept event keeps the column's versions alive.
            message = PROTOCOL.create("PATCH-DOC", [event])
            _ = message.header_json, message.metadata_json, message.content_json
            messages.append(message)
        doc.on_change(serialize)
        source = doc.get_model_by_name("source")
        with Clock() as clock:
            for chunk in chunks:
                source.stream(chunk)
            raw.send_many(messages)
            _await_oks(raw, len(messages))
        session_id = raw.session_id
        raw.close()
    else:
        api = Api(client)
        session = api.pull(url)
        source = session.document.get_model_by_name("source")
        with Clock() as clock:
            if variant == "batch":
                with session.batch():
                    for chunk in chunks:
                        source.stream(chunk)
            else:
                for i, chunk in enumerate(chunks):
                    source.stream(chunk)
                    if variant == "rt100" and i % 100 == 99:
                        api.flush(session)
            api.flush(session)
        session_id = session.id
        session.close()
    return {**clock.result(), "verified": _verify(client, url, session_id, check)}


def _loop_bokeh_until(session: Any, arrived: Callable[[], int], target: int) -> None:
    ''' Run bokeh.client's IOLoop until ``arrived() >= target`` (checked as each message arrives). '''
    end = time.monotonic() + WAIT_LIMIT
    session._connection._loop_until(lambda: arrived() >= target or time.monotonic() > end)


def case_patch_callback(client: str, variant: str, base: str, p: dict[str, Any]) -> dict[str, Any]:
    ''' ``n`` Slider changes; the server answers each with a stream into
    ``echo``; time until all ``n`` server updates are in the local document.

    bokeh.client variants: ``roundtrip`` (changes, then force_roundtrip: it
    drops what arrives while it waits), ``loop`` (then runs its IOLoop,
    private ``_loop_until``, until all arrived; it recurses once per message),
    ``loop100`` (the same after every 100 changes).
    '''
    n = p["n"]
    api = Api(client)
    session = api.pull(base + "/echo")
    doc = session.document
    slider = doc.get_model_by_name("slider")
    echo = doc.get_model_by_name("echo")
    lock = api.lock(session)

    def arrived() -> int:
        with lock:
            return len(echo.data["v"])
    import threading
    done = threading.Event()
    streamed = [0]

    def count(event: Any) -> None:
        # bokehsync: called by the reader thread for each server update; no
        # polling loop competing with it for session.lock.
        data = getattr(event, "data", None)
        if getattr(event, "model", None) is echo and isinstance(data, dict):
            streamed[0] += len(data.get("v", ()))
            if streamed[0] >= n:
                done.set()
    if client == "bokehsync":
        doc.on_change(count)
    with Clock() as clock:
        for i in range(n):
            slider.value = i + 1
            if variant == "loop100" and i % 100 == 99:
                _loop_bokeh_until(session, arrived, i + 1)
        api.flush(session)
        if client == "bokeh":
            if variant in ("loop", "loop100"):
                _loop_bokeh_until(session, arrived, n)
        else:
            done.wait(WAIT_LIMIT)
    got = arrived()
    with lock:
        values = list(echo.data["v"])
    session.close()
    ok = got == n and values == list(range(1, n + 1))
    return {**clock.result(), "verified": ok, "applied": got, "expected": n,
            "note": "" if ok else f"{got} of {n} server updates applied"}


def case_receive(client: str, variant: str, base: str, p: dict[str, Any]) -> dict[str, Any]:
    ''' Server updates applied while the client's thread does something else
    for ``seconds``: ``sleep`` (time.sleep), or for bokeh.client ``loop``
    (blocked in its private ``_loop_until``).
    '''
    seconds = p["seconds"]
    api = Api(client)
    session = api.pull(base + "/ticker")
    ticks = session.document.get_model_by_name("ticks")
    lock = api.lock(session)
    with lock:
        before = list(ticks.data["n"])
    t0 = time.perf_counter()
    if variant == "loop":
        end = time.monotonic() + seconds
        session._connection._loop_until(lambda: time.monotonic() >= end)
    else:
        time.sleep(seconds)
    elapsed = time.perf_counter() - t0
    with lock:
        after = list(ticks.data["n"])
    session.close()
    new = after[len(before):]
    contiguous = new == list(range(new[0], new[0] + len(new))) if new else True
    expected = round(seconds * 1000 / 50)
    return {"time": elapsed, "applied": len(new), "expected": expected,
            "verified": contiguous and len(new) >= expected - 3,
            "note": f"{len(new)} updates applied in {elapsed:.2f} s (server sends ~{expected})"}


def _push_child(client: str, url: str, rows: int) -> None:
    ''' A worker process: push a ``rows``-row document and close. '''
    api = Api(client)
    session = api.push(_big_doc(rows), url)
    session.close()


def case_workers(client: str, variant: str, base: str, p: dict[str, Any]) -> dict[str, Any]:
    ''' ``procs`` processes (``variant``: spawn or fork) each pushing a
    ``rows``-row document; wall time from the first start to the last exit.
    '''
    procs, rows = p["procs"], p["rows"]
    url = base + "/empty"
    Api(client)  # imported before fork, as an application would have
    import bokeh.document
    import bokeh.models  # noqa: F401
    ctx = multiprocessing.get_context(variant)
    workers = [ctx.Process(target=_push_child, args=(client, url, rows)) for _ in range(procs)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    deadline = time.monotonic() + WAIT_LIMIT
    for w in workers:
        w.join(max(0.0, deadline - time.monotonic()))
    elapsed = time.perf_counter() - t0
    codes = [w.exitcode for w in workers]
    for w in workers:
        if w.is_alive():
            w.kill()
            w.join(5)
    ok = all(c == 0 for c in codes)
    return {"time": elapsed, "verified": ok, "note": "" if ok else f"exit codes {codes}"}


def case_push_limit(client: str, variant: str, base: str, p: dict[str, Any]) -> dict[str, Any]:
    ''' ``push_big`` of ``rows`` rows (issue 13: 2 x 12.5 M float64, 200 MB)
    to the server ``variant`` names: ``1gib`` (started with a 1 GiB websocket
    message limit: the columns go as one message) or ``default`` (bokeh's
    default limit, 20 MiB). A push that raises is reported as
    ``fails: <exception>`` with the time until it raised.
    '''
    marks: dict[str, Any] = {}
    try:
        return case_push_big(client, variant, base, p, marks)
    except Exception as e:
        elapsed = time.perf_counter() - marks["t0"] if "t0" in marks else None
        text = " ".join(f"{type(e).__name__}: {e}".split())
        return {"time": elapsed, "fails": text[:300], "rss_base": marks.get("rss_base"), "rss_peak": _peak_rss(),
                "verified": None}


def _writer(index: int, barrier: Any, client: str, url: str, session_ids: list[str], streams: int,
        rows: int, locked: bool = True) -> dict[str, Any]:
    ''' One writer of ``case_writers`` (a forked process): pull, wait for the
    others, stream, flush, then (bokehsync) wait until the local document
    holds every writer's rows.
    '''
    from ._floor import writer_chunk
    shared = len(set(session_ids)) == 1
    api = Api(client)
    session = api.pull(url, session_id=session_ids[index])
    doc = session.document
    source = doc.get_model_by_name("source")
    expected = (len(session_ids) if shared else 1) * streams * rows
    chunks = [writer_chunk(index, k, rows) for k in range(streams)]
    import threading
    converged = threading.Event()

    def check(event: Any) -> None:
        # Called under session.lock for server changes (reader thread) and local ones.
        if len(source.data["x"]) >= expected:
            converged.set()
    resyncs: list[str] = []
    if client == "bokehsync":
        doc.on_change(check)
        session.on_resync(lambda _session, reason: resyncs.append(reason))
    # Not gc.collect(): 8 processes collecting at once take ~1 s of CPU.
    # Freezing leaves the setup's objects out of later collections.
    gc.freeze()
    barrier.wait(WAIT_LIMIT)
    t0 = time.perf_counter()
    c0 = time.process_time()
    lock = api.lock(session)
    for chunk in chunks:
        # Under session.lock, as the demo's workers do: the reader thread
        # applies the other writers' streams to the same source meanwhile,
        # and an unlocked stream() races with it (rows are lost locally).
        with lock if locked else contextlib.nullcontext():
            source.stream(chunk)
    api.flush(session)
    t1 = time.perf_counter()
    t2 = None
    if client == "bokehsync":
        with api.lock(session):
            if len(source.data["x"]) >= expected:
                converged.set()
        # Wait while rows keep arriving; a document that stopped growing
        # for STALL seconds misses rows and would never converge.
        seen, last = -1, time.monotonic()
        while not converged.wait(0.5) and time.monotonic() < t0 + WAIT_LIMIT:
            with api.lock(session):
                now = len(source.data["x"])
            if now != seen:
                seen, last = now, time.monotonic()
            elif time.monotonic() - last > STALL:
                break
        if converged.is_set():
            t2 = time.perf_counter()
    cpu = time.process_time() - c0  # this writer's CPU, both threads, until it converged
    with api.lock(session):
        local = len(source.data["x"])
    session.close()
    return {"t0": t0, "flushed": t1, "converged": t2, "local_rows": local, "expected_local": expected, "cpu": cpu,
            "resyncs": len(resyncs)}


def case_writers(client: str, variant: str, base: str, p: dict[str, Any]) -> dict[str, Any]:
    ''' ``procs`` forked writer processes (``variant``: ``shared``, all on one
    session, or ``own``, one session each) each pull the ``source`` app, wait
    for the others, stream ``streams`` x ``rows`` numpy rows, flush.

    ``time`` is the wall time from the first writer's start to the last
    writer's flush (every row is on the server); ``converged`` the same to
    the last writer whose local document holds every row of its session
    (bokehsync only; bokeh.client applies server changes only while it waits).
    Verified by pulling every session back with the other client: all rows
    there, each writer's in the order it sent them.
    '''
    import bokeh.models  # noqa: F401
    from bokeh.util.token import generate_session_id

    from ._fork import run_forked
    n, streams, rows = p["procs"], p["streams"], p["rows"]
    url = base + "/source"
    Api(client)  # imported before fork, as an application would have
    if variant == "shared":
        session_ids = [generate_session_id()] * n
    else:
        session_ids = [generate_session_id() for _ in range(n)]
    results = run_forked(_writer, n, (client, url, session_ids, streams, rows, not p.get("unlocked")),
                         timeout=WAIT_LIMIT + 30)
    # The first cause, not the others' broken barrier.
    errors = sorted((r["error"] for r in results if "error" in r), key=lambda e: "BrokenBarrier" in e)
    if errors:
        raise RuntimeError(f"{len(errors)} of {n} writers failed: {errors[0]}")
    start = min(r["t0"] for r in results)
    wall = max(r["flushed"] for r in results) - start
    conv = [r["converged"] for r in results]
    converged = None if any(c is None for c in conv) else max(conv) - start
    total = n * streams * rows

    def check(doc: Any) -> bool:
        data = doc.get_model_by_name("source").data
        x, y = np.asarray(data["x"]), np.asarray(data["y"])
        if len(set(session_ids)) == 1:
            owners = range(n)
            if len(x) != total:
                return False
        else:
            owners = [int(y[0])] if len(y) else []
            if len(x) != streams * rows:
                return False
        for w in owners:
            mine = x[y == float(w)]
            if len(mine) != streams * rows or not np.array_equal(mine, w * 1_000_000 + np.arange(streams * rows)):
                return False
        return True
    verified = all(_verify(client, url, sid, check) for sid in sorted(set(session_ids)))
    local_ok = client != "bokehsync" or all(r["local_rows"] == r["expected_local"] for r in results)
    note = f"{total / wall:,.0f} rows/s"
    if not verified:
        note += ", rows MISSING on the server"
    resyncs = sum(r["resyncs"] for r in results)
    if resyncs:
        note += f", {resyncs} resync(s)"
    if converged is not None:
        note += f", all local documents converged at {converged:.2f} s"
    elif client == "bokehsync":
        short = [f"{r['local_rows']}/{r['expected_local']}" for r in results if r["local_rows"] != r["expected_local"]]
        note += f", local documents NOT converged ({', '.join(short)} rows)"
    return {"time": wall, "rows_per_s": total / wall, "converged": converged, "verified": verified and local_ok,
            "cpu": sum(r["cpu"] for r in results), "resyncs": resyncs, "note": note}


CASES: dict[str, Callable[[str, str, str, dict[str, Any]], dict[str, Any]]] = {
    "rtt": case_rtt,
    "connect_pull": case_connect_pull,
    "push_big": case_push_big,
    "patch_burst": case_patch_burst,
    "stream": case_stream,
    "patch_callback": case_patch_callback,
    "receive": case_receive,
    "workers": case_workers,
    "push_limit": case_push_limit,
    "writers": case_writers,
}


def main(argv: list[str]) -> None:
    ''' Run one case and print its result as one JSON line. '''
    case, client, variant, base, params = argv
    from . import _profiling
    _profiling.start()  # only under profile_paths.py (BENCH_CPROFILE_DIR)
    if client == "floor":
        from ._floor import FLOORS
        result = FLOORS[case](variant, json.loads(params))
    else:
        result = CASES[case](client, variant, base, json.loads(params))
    result.setdefault("rss_peak", _peak_rss())
    module = sys.modules.get("bokehsync")
    if os.environ.get(BASELINE_ENV) and module is not None:
        # The baseline's numbers must be the baseline's code.
        origin = os.path.realpath(str(module.__file__))
        if not origin.startswith(os.path.realpath(os.environ[BASELINE_ENV]) + os.sep):
            raise RuntimeError(f"--baseline: bokehsync was imported from {origin}")
    print(json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
