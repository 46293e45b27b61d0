''' The floor of each client-side case: the same work on a bare bokeh Document, with no client.

``python -m benchmarks._client CASE floor VARIANT BASE_URL PARAMS_JSON``
runs one of these in a fresh process, like every measured client run (the
URL is not used: nothing here touches the network). Each floor does, in the
same order and with the same data as the case it is the floor of, exactly
the document work that any client has to do, and nothing else:

* bokeh's own property machinery (``HasProps.__setattr__`` and the document's
  change notification, ``source.stream`` with its ``np.append``);
* serializing every change into the PATCH-DOC the server must receive
  (``Protocol.create`` and its header, metadata and content JSON, encoded
  to UTF-8; numpy columns stay binary buffers, as on the wire);
* for changes coming from the server: assembling each PATCH-DOC from its
  wire text (``Protocol.assemble``, ``assemble_buffer``) and applying it to
  the document (``apply_to_document``).

Not in any floor: sockets, websocket framing and masking, threads, locks,
futures, waiting for the server, and the server's own work. The difference
between a client and its floor is therefore the client's overhead plus the
time it waits for the server that it could not overlap. The ``raw`` client
(``_raw.py``) is the floor of the wire-bound cases (rtt, connect_pull).

The untimed preparation builds the document a client has after
``pull_session`` (the app's document sent as a PULL-DOC-REPLY and pushed into
a new ``Document``, as the clients do) and, where the server sends changes,
the server's messages as text and bytes.
'''
from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from bokeh.document import Document
from bokeh.protocol import Protocol

from . import apps
from ._client import Clock
from ._fork import run_forked

__all__ = (
    'FLOORS',
)

#: bokeh's message factory (typed ``Any``: its overloads want bokeh's own ID and event types).
PROTOCOL: Any = Protocol()

#: A message as it travels: header, metadata, content JSON, then
#: (buffer header JSON, payload bytes) per buffer.
Wire = tuple[str, str, str, list[tuple[str, bytes]]]


def pulled(build: Callable[[Document], None] | Document) -> Document:
    ''' The document a client holds after pulling a session of the app
    ``build`` (or of the server's document itself: then the model ids match).
    '''
    if isinstance(build, Document):
        server_doc = build
    else:
        server_doc = Document()
        build(server_doc)
    reply = PROTOCOL.create("PULL-DOC-REPLY", "0", server_doc)
    doc = Document()
    reply.push_to_document(doc)
    return doc


def serialize(message: Any) -> list[Any]:
    ''' What a client must produce of ``message`` for the wire: its three JSON
    texts as UTF-8 and its buffers as byte views (no copy).
    '''
    out: list[Any] = [message.header_json.encode("utf-8"), message.metadata_json.encode("utf-8"),
                      message.content_json.encode("utf-8")]
    for buffer in message.buffers:
        out.append(json.dumps(buffer.ref).encode("utf-8"))
        out.append(memoryview(buffer.data).cast("B"))
    return out


def to_wire(message: Any) -> Wire:
    ''' ``message`` as the receiving side gets it (untimed preparation). '''
    return (message.header_json, message.metadata_json, message.content_json,
            [(json.dumps(b.ref), bytes(memoryview(b.data).cast("B"))) for b in message.buffers])


def apply_wire(doc: Document, wire: Wire, setter: Any) -> None:
    ''' Assemble one received PATCH-DOC from its wire form and apply it, as a client's reader does. '''
    header, metadata, content, buffers = wire
    message = PROTOCOL.assemble(header, metadata, content)
    for ref, payload in buffers:
        message.assemble_buffer(json.loads(ref), payload)
    message.apply_to_document(doc, setter)


class _Eager:
    ''' A document change callback that serializes every local change at
    once into its own PATCH-DOC, keeping only the serialized form (as a
    client must, so a column's old versions are not kept alive).
    '''

    def __init__(self) -> None:
        self.out: list[list[Any]] = []

    def __call__(self, event: Any) -> None:
        if event.setter is None:  # a local change (server changes are applied with a setter)
            self.out.append(serialize(PROTOCOL.create("PATCH-DOC", [event])))


def _rss() -> int:
    import os
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# Floors ------------------------------------------------------------------------

def floor_patch_burst(variant: str, p: dict[str, Any]) -> dict[str, Any]:
    ''' Floor of ``patch_burst``: ``n`` ``Range1d.start`` sets on the pulled
    ``range1d`` document with a change callback collecting the events, then
    one PATCH-DOC of all of them, serialized.
    '''
    n = p["n"]
    doc = pulled(apps.range1d)
    events: list[Any] = []
    doc.on_change(events.append)
    model: Any = doc.get_model_by_name("range")
    gc.collect()
    with Clock() as clock:
        for i in range(n):
            model.start = float(i + 1)
        wire = serialize(PROTOCOL.create("PATCH-DOC", events))
    ok = model.start == float(n) and len(events) == n and wire[2].count(b'"ModelChanged"') == n
    return {**clock.result(), "verified": ok}


def _chunks(p: dict[str, Any]) -> list[dict[str, Any]]:
    ''' The stream case's data, as ``_client.case_stream`` builds it. '''
    n, rows = p["n"], p["rows"]
    if p.get("kind") == "numpy":
        return [{"x": np.arange(i * rows, (i + 1) * rows, dtype=np.float64), "y": np.arange(rows, dtype=np.float64)}
                for i in range(n)]
    return [{"x": [float(i * rows + j) for j in range(rows)], "y": [float(j) for j in range(rows)]}
            for i in range(n)]


def floor_stream(variant: str, p: dict[str, Any]) -> dict[str, Any]:
    ''' Floor of ``stream``: the same ``n`` ``source.stream()`` calls on the
    pulled ``source`` document, each serialized at once into its PATCH-DOC
    by a change callback (the events are not kept).
    '''
    chunks = _chunks(p)
    total = p["n"] * p["rows"]
    doc = pulled(apps.source)
    eager = _Eager()
    doc.on_change(eager)
    source: Any = doc.get_model_by_name("source")
    gc.collect()
    base = _rss()
    with Clock() as clock:
        for chunk in chunks:
            source.stream(chunk)
    ok = len(source.data["x"]) == total and float(source.data["x"][-1]) == float(total - 1) \
        and len(eager.out) == p["n"]
    return {**clock.result(), "verified": ok, "rss_base": base}


def floor_patch_callback(variant: str, p: dict[str, Any]) -> dict[str, Any]:
    ''' Floor of ``patch_callback``: ``n`` ``Slider.value`` sets on the pulled
    ``echo`` document collected by a change callback and serialized as one
    PATCH-DOC (what the client sends), then the ``n`` PATCH-DOCs the server
    answers with (each streaming one value into ``echo``), assembled from
    their wire text and applied to the document (what the client receives).
    '''
    n = p["n"]
    server_doc = Document()
    apps.echo(server_doc)
    doc = pulled(server_doc)
    # The server's answers, prepared untimed on the server's copy: each value
    # set there runs the app's on_change, which streams it into ``echo``.
    answers: list[Wire] = []
    server_doc.on_change(lambda e: answers.append(to_wire(PROTOCOL.create("PATCH-DOC", [e])))
                         if type(e).__name__ == "ColumnsStreamedEvent" else None)
    server_slider: Any = server_doc.get_model_by_name("slider")
    for i in range(n):
        server_slider.value = i + 1
    assert len(answers) == n
    events: list[Any] = []
    doc.on_change(lambda e: events.append(e) if e.setter is None else None)
    slider: Any = doc.get_model_by_name("slider")
    echo: Any = doc.get_model_by_name("echo")
    setter = object()
    gc.collect()
    with Clock() as clock:
        for i in range(n):
            slider.value = i + 1
        serialize(PROTOCOL.create("PATCH-DOC", events))
        for wire in answers:
            apply_wire(doc, wire, setter)
    ok = list(echo.data["v"]) == list(range(1, n + 1))
    return {**clock.result(), "verified": ok, "applied": len(echo.data["v"]), "expected": n}


def floor_push(variant: str, p: dict[str, Any]) -> dict[str, Any]:
    ''' Floor of ``push_big`` and ``push_limit``: serializing the PUSH-DOC of
    the same two-column float64 document (the columns become byte views of
    the arrays, not copies).
    '''
    from ._client import _big_doc
    doc = _big_doc(p["rows"])
    gc.collect()
    base = _rss()
    t0 = time.perf_counter()
    wire = serialize(PROTOCOL.create("PUSH-DOC", doc))
    elapsed = time.perf_counter() - t0
    nbytes = sum(len(part) for part in wire)
    return {"time": elapsed, "verified": nbytes >= 16 * p["rows"], "rss_base": base, "bytes": nbytes}


def writer_chunk(index: int, k: int, rows: int) -> dict[str, Any]:
    ''' Stream ``k`` of writer ``index`` in the many-writers case: ``x`` is
    unique and increasing per writer, ``y`` is the writer's index.
    '''
    start = index * 1_000_000 + k * rows
    return {"x": np.arange(start, start + rows, dtype=np.float64), "y": np.full(rows, float(index))}


def _floor_writer(index: int, barrier: Any, n: int, shared: bool, streams: int, rows: int,
        server_doc: Document, incoming: list[list[Wire]]) -> dict[str, Any]:
    ''' One floor writer (a forked process): its own streams serialized, and,
    sharing a session, every other writer's streams applied, round-robin.
    '''
    doc = pulled(server_doc)
    eager = _Eager()
    doc.on_change(eager)
    source: Any = doc.get_model_by_name("source")
    chunks = [writer_chunk(index, k, rows) for k in range(streams)]
    others = [w for w in range(n) if w != index] if shared else []
    setter = object()
    gc.freeze()  # as _client._writer does
    barrier.wait(60)
    t0, c0 = time.perf_counter(), time.process_time()
    for k in range(streams):
        source.stream(chunks[k])
        for w in others:
            apply_wire(doc, incoming[w][k], setter)
    t1 = time.perf_counter()
    expected = (n if shared else 1) * streams * rows
    return {"t0": t0, "t1": t1, "cpu": time.process_time() - c0, "ok": len(source.data["x"]) == expected}


def floor_writers(variant: str, p: dict[str, Any]) -> dict[str, Any]:
    ''' Floor of ``writers``: ``procs`` forked processes start together; each
    streams its ``streams`` x ``rows`` numpy rows into its pulled ``source``
    document, serializing each stream; with ``variant`` ``shared`` each also
    receives every other writer's streams (assembled from wire text and
    applied), one round of all writers per stream. Wall time: first start
    to last end.
    '''
    n, streams, rows = p["procs"], p["streams"], p["rows"]
    shared = variant == "shared"
    server_doc = Document()
    apps.source(server_doc)
    incoming: list[list[Wire]] = []
    if shared:
        # Every writer's streams as the server sends them to the others,
        # prepared untimed on a replica (its column grows as the server's does).
        replica = pulled(server_doc)
        out: list[Wire] = []
        replica.on_change(lambda e: out.append(to_wire(PROTOCOL.create("PATCH-DOC", [e]))))
        rep_source: Any = replica.get_model_by_name("source")
        for w in range(n):
            out.clear()
            for k in range(streams):
                rep_source.stream(writer_chunk(w, k, rows))
            incoming.append(list(out))
    results = run_forked(_floor_writer, n, (n, shared, streams, rows, server_doc, incoming))
    errors = sorted((r["error"] for r in results if "error" in r), key=lambda e: "BrokenBarrier" in e)
    if errors:
        raise RuntimeError(f"floor writer failed: {errors[0]}")
    wall = max(r["t1"] for r in results) - min(r["t0"] for r in results)
    return {"time": wall, "rows_per_s": n * streams * rows / wall, "verified": all(r["ok"] for r in results),
            "cpu": sum(r["cpu"] for r in results)}


FLOORS: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]] = {
    "patch_burst": floor_patch_burst,
    "stream": floor_stream,
    "patch_callback": floor_patch_callback,
    "push_big": floor_push,
    "push_limit": floor_push,
    "writers": floor_writers,
}
