''' What runs in the other processes of ``bokehsync demo``: the server's app,
the pushed document, and the worker processes. The main process, which starts
and stops them, is :mod:`bokehsync.cli.demo`.

* the **server** (``bokehsync._localserver``, a child process) serves
  :func:`app` at :data:`DEMO_PATH`; it stops when its standard input closes,
  so also when the main process dies;
* each **worker** (``multiprocessing`` spawn) runs :func:`worker`: it pulls
  the demo's session and streams one row into the shared ``ColumnDataSource``
  every ``interval`` seconds until the main process sets ``stop``; then it
  flushes, reports its row count, and stays connected until the main process
  sets ``release`` (see :mod:`bokehsync.cli.demo` for why).

A worker ends with the main process, however that ends (SIGKILL, a crash): on
Linux the kernel sends it SIGTERM (``prctl(PR_SET_PDEATHSIG)``); everywhere a
thread of its own sees its parent change and exits; and a worker whose
session lost its connection (the server stops with the main process) stops
with an error.

This module stays light: each spawned worker imports it.
'''
from __future__ import annotations

import math
import os
import random
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from bokeh.document import Document
    from bokeh.model import Model

__all__ = (
    'DEMO_PATH',
    'app',
    'build_document',
    'named',
    'worker',
)

#: The app path the demo server serves.
DEMO_PATH = "/demo"

#: Rows kept in the plot; older rows roll over.
ROLLOVER = 5000

#: Seconds a worker waits, after its last row, for the others (then closes anyway).
RELEASE_TIMEOUT = 30.0

#: Seconds between two checks that a worker's parent is alive (where prctl is missing).
PARENT_POLL = 0.5

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")

M = TypeVar("M", bound="Model")


def app(doc: Document) -> None:
    ''' The demo server's app: the document a browser gets without a session
    id (the demo's own document is pushed, and replaces it in its session).
    '''
    from bokeh.models.widgets import Div
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


def named(doc: Document, name: str, cls: type[M]) -> M:
    ''' The model called ``name`` in ``doc``, of type ``cls``. '''
    model = doc.get_model_by_name(name)
    if not isinstance(model, cls):
        raise LookupError(f"the demo document has no {cls.__name__} named {name!r}")
    return model


def _die_with_parent(parent: int) -> None:
    ''' Make this worker end when the demo's main process ends, however it ends.

    On Linux, ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` has the kernel send us
    SIGTERM when the parent dies. Everywhere, a daemon thread
    ``bokehsync-demo-parent-watch`` checks ``os.getppid()`` every
    :data:`PARENT_POLL` seconds and exits the process when it changed (the
    parent died and we were re-parented). It is a daemon: it only watches, and
    must not keep a finished worker alive.
    '''
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            PR_SET_PDEATHSIG = 1
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):  # no libc prctl: the thread below still watches
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL)
        os._exit(1)
    threading.Thread(target=watch, name="bokehsync-demo-parent-watch", daemon=True).start()


def worker(url: str, session_id: str, index: int, interval: float, start: float,
        stop: Any, release: Any, results: Any, parent: int | None = None) -> None:
    ''' One demo worker process: stream a random walk into the shared source
    until ``stop`` is set, flush, put ``(index, rows sent, error)`` on
    ``results``, and stay connected until ``release`` is set.

    Args:
        url (str) : the app URL
        session_id (str) : the session to join
        index (int) : this worker's number
        interval (float) : mean seconds between rows
        start (float) : ``time.time()`` at the demo's start (the x origin)
        stop (multiprocessing.Event) : set by the main process to finish
        release (multiprocessing.Event) : set by the main process once every worker reported
        results (multiprocessing.Queue) : where the row count goes
        parent (int, optional) : the main process's pid; the worker ends with it
    '''
    if parent is not None:
        _die_with_parent(parent)
    from bokeh.core.types import ID
    from bokeh.models import ColumnDataSource

    from bokehsync import pull_session

    sent = 0
    reported = False
    rng = random.Random(index)
    y = 10.0 * index
    try:
        with pull_session(session_id=ID(session_id), url=url) as session:
            source = named(session.document, "source", ColumnDataSource)
            color = PALETTE[index % len(PALETTE)]
            while not stop.wait(interval * rng.uniform(0.5, 1.5)):
                if not session.connected:
                    raise ConnectionError("the session's connection closed (the server stopped?)")
                y += rng.gauss(0.0, 1.0) + 0.3 * math.sin(time.time() + index)
                with session.lock:
                    source.stream({"x": [time.time() - start], "y": [y], "worker": [f"worker {index}"],
                                   "color": [color]}, rollover=ROLLOVER)
                sent += 1
            session.flush()  # every row sent is on the server now, and broadcast to the others
            results.put((index, sent, None))
            reported = True
            release.wait(RELEASE_TIMEOUT)
    except Exception as e:
        if not reported:
            results.put((index, sent, f"{type(e).__name__}: {e}"))
