''' The ``bokehsync demo`` command: a local Bokeh server, one live document,
several worker processes updating it through their own sessions.

Processes of a demo:

* **main** (this module's :func:`run_demo`): starts the server, pushes the
  document (session id ``demo-...``), starts the workers, then refreshes the
  plot title with the row count every half second until ``duration`` ends
  or Ctrl-C; then stops the workers, pulls the document back in a fresh
  session and prints what arrived from each worker;
* **server**: ``bokehsync._localserver`` in a child process;
* **workers** (``multiprocessing`` spawn): each pulls the same session and
  streams one row into the shared ``ColumnDataSource`` every ``interval``
  seconds until the main process sets the stop event.

The server and the workers are started with SIGINT ignored (the disposition
is inherited), so a Ctrl-C in the terminal, which reaches the whole process
group, interrupts only the main process, which then stops them in order.
'''
from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import random
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bokeh.document import Document

__all__ = (
    'DemoResult',
    'app',
    'run_demo',
)

#: The app path the demo server serves.
DEMO_PATH = "/demo"

#: Rows kept in the plot; older rows roll over.
ROLLOVER = 5000

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def app(doc: Document) -> None:
    ''' The demo server's app: the document a browser gets without a session
    id (the demo's own document is pushed, and replaces it in its session).
    '''
    from bokeh.models import Div
    doc.add_root(Div(text="<p>Open the URL the <code>bokehsync demo</code> command printed: "
                          "it names the session (<code>?bokeh-session-id=...</code>).</p>"))


def build_document(workers: int) -> Document:
    ''' The pushed document: a plot of one ``ColumnDataSource`` (``x``, ``y``,
    ``worker``, ``color``), with a title the main process keeps up to date.

    Args:
        workers (int) : how many workers will write into it

    Returns:
        Document
    '''
    from bokeh.document import Document
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure

    doc = Document(title="bokehsync demo")
    source = ColumnDataSource(data={"x": [], "y": [], "worker": [], "color": []}, name="source")
    plot = figure(name="plot", title=f"bokehsync demo: {workers} worker processes, 0 rows",
                  sizing_mode="stretch_width", height=400, x_axis_label="seconds", y_axis_label="value")
    plot.scatter("x", "y", color="color", source=source, size=6, alpha=0.7, legend_group="worker")
    plot.legend.location = "top_left"
    doc.add_root(plot)
    return doc


def worker(url: str, session_id: str, index: int, interval: float, start: float,
        stop: Any, results: Any) -> None:
    ''' One demo worker process: stream a random walk into the shared source
    until ``stop`` is set, then put ``(index, rows sent)`` on ``results``.

    Args:
        url (str) : the app URL
        session_id (str) : the session to join
        index (int) : this worker's number
        interval (float) : seconds between rows
        start (float) : ``time.time()`` at the demo's start (the x origin)
        stop (multiprocessing.Event) : set by the main process to finish
        results (multiprocessing.Queue) : where the row count goes
    '''
    from bokehsync import pull_session

    sent = 0
    rng = random.Random(index)
    y = 10.0 * index
    try:
        with pull_session(session_id=session_id, url=url) as session:
            source = session.document.get_model_by_name("source")
            color = PALETTE[index % len(PALETTE)]
            while not stop.wait(interval * rng.uniform(0.5, 1.5)):
                y += rng.gauss(0.0, 1.0) + 0.3 * math.sin(time.time() + index)
                with session.lock:
                    source.stream({"x": [time.time() - start], "y": [y], "worker": [f"worker {index}"],
                                   "color": [color]}, rollover=ROLLOVER)
                sent += 1
        # Leaving the block flushed: every row sent is on the server now.
        results.put((index, sent, None))
    except Exception as e:
        results.put((index, sent, f"{type(e).__name__}: {e}"))


@dataclass
class DemoResult:
    ''' What a demo run did. '''

    url: str
    workers: int
    #: rows each worker sent (by worker index)
    sent: dict[int, int] = field(default_factory=dict)
    #: rows of each worker found in the server's document at the end
    on_server: dict[int, int] = field(default_factory=dict)
    #: worker errors, by worker index
    errors: dict[int, str] = field(default_factory=dict)
    interrupted: bool = False


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    ''' Children started inside inherit an ignored SIGINT (main thread only). '''
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to do
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_demo(workers: int = 4, duration: float | None = None, interval: float = 0.1, port: int = 0,
        show: bool = False, out: IO[str] | None = None) -> DemoResult:
    ''' Run the demo until ``duration`` seconds have passed, or Ctrl-C.

    Args:
        workers (int, optional) : worker processes (default: 4)
        duration (float, optional) : seconds to run, None until Ctrl-C
        interval (float, optional) : mean seconds between rows of one worker
        port (int, optional) : server port, 0 for a free one
        show (bool, optional) : open a browser on the session
        out (file, optional) : where to print (default: stdout)

    Returns:
        DemoResult

    Raises:
        RuntimeError: the server did not start
        BokehSyncError: the document could not be pushed
    '''
    from bokeh.util.token import generate_session_id

    from ._localserver import LocalServer
    from .session import push_session, show_session

    out = out or sys.stdout
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    results = ctx.Queue()
    procs: list[Any] = []
    server = LocalServer({DEMO_PATH: "bokehsync._demo:app"})
    result = DemoResult(url="", workers=workers)
    session = None

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    if port:
        _check_port_free(port)
    try:
        with _sigint_ignored():
            server.start(port=port)
        url = server.url(DEMO_PATH)
        session_id = "demo-" + generate_session_id()[:12]
        doc = build_document(workers)
        session = push_session(doc, session_id=session_id, url=url)
        result.url = f"{url}?bokeh-session-id={session_id}"
        start = time.time()
        with _sigint_ignored():
            for index in range(workers):
                proc = ctx.Process(target=worker, name=f"bokehsync-demo-worker-{index}",
                                   args=(url, session_id, index, interval, start, stop, results))
                proc.start()
                procs.append(proc)
        say(f"bokehsync demo: {workers} worker processes update one document.")
        say(f"Open {result.url}")
        say("Stop with Ctrl-C" + (f" (or wait {duration:g} s)." if duration is not None else "."))
        if show:
            show_session(session=session)

        plot = doc.get_model_by_name("plot")
        source = doc.get_model_by_name("source")
        deadline = None if duration is None else time.monotonic() + duration
        tick = threading.Event()  # never set: a pause that Ctrl-C interrupts
        while deadline is None or time.monotonic() < deadline:
            remaining = 0.5 if deadline is None else min(0.5, max(0.0, deadline - time.monotonic()))
            tick.wait(remaining)
            with session.lock:
                rows = len(source.data["x"])
                plot.title.text = f"bokehsync demo: {workers} worker processes, {rows} rows"
    except KeyboardInterrupt:
        result.interrupted = True
        say("Interrupted: stopping.")
    finally:
        try:
            _stop_workers(stop, procs, results, result)
            if session is not None:
                _count_rows(session, result)
        finally:
            if session is not None:
                session.close(flush=False)
            server.stop()
            results.close()
            results.join_thread()
    for index in range(workers):
        line = f"worker {index}: sent {result.sent.get(index, 0)} rows, {result.on_server.get(index, 0)} on the server"
        if index in result.errors:
            line += f" (error: {result.errors[index]})"
        say(line)
    return result


def _check_port_free(port: int) -> None:
    ''' Raise a clear OSError if ``port`` on 127.0.0.1 is taken. '''
    import socket
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as e:
            raise OSError(e.errno, f"port {port} on 127.0.0.1 is in use (another server?); "
                                   "choose another with --port, or 0 for a free one")


def _stop_workers(stop: Any, procs: list[Any], results: Any, result: DemoResult, timeout: float = 30.0) -> None:
    ''' Set the stop event, collect each worker's result, join (or kill) them. '''
    import queue
    stop.set()
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if p.pid is not None]
    while len(result.sent) + len(result.errors) < len(alive):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or (not any(p.is_alive() for p in alive) and results.empty()):
            break
        try:
            index, sent, error = results.get(timeout=min(remaining, 0.5))
        except queue.Empty:
            continue
        result.sent[index] = sent
        if error:
            result.errors[index] = error
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.terminate()
            proc.join(5)


def _count_rows(session: Any, result: DemoResult) -> None:
    ''' Pull the session into a fresh one and count each worker's rows. '''
    from .session import pull_session
    url = result.url.split("?", 1)[0]
    with pull_session(session_id=session.id, url=url) as check:
        workers = list(check.document.get_model_by_name("source").data["worker"])
    for index in range(result.workers):
        result.on_server[index] = workers.count(f"worker {index}")
