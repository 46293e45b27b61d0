''' ``bokehsync demo``: a local server, one live document, worker processes updating it.

This module is the command line and the demo's **main process**
(:func:`run_demo`): it starts the server, pushes the document (session id
``demo-...``), starts the workers (:mod:`bokehsync._demo`), then refreshes the
plot title with the row count every half second until ``duration`` ends,
Ctrl-C or SIGTERM; then it stops the workers, pulls the document back in a
fresh session and prints what arrived from each worker.

Stopping, in order, so that nothing alarming is printed: the main process
flushes its last title change and sets ``stop``; each worker flushes (its rows
are on the server, and the server has written their broadcasts to every other
client: it does so before it acknowledges a patch), reports its count, and
stays connected until the main process has every report and sets
``release``. Only then does any session close: a client that closes while
another still sends makes the server log *Failed sending message as
connection was closed* for the broadcast it could not deliver.

Signals: the server and the workers are started with SIGINT ignored (the
disposition is inherited), so a Ctrl-C in the terminal, which reaches the
whole process group, only asks the main process to stop them in order; so
does a SIGTERM sent to the main process (``kill``, ``timeout``). A second one
stops waiting for the clean stop. If the main process dies without stopping
them (SIGKILL, a crash), the workers and the server end on their own (see
:mod:`bokehsync._demo`).
'''
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from ._browser import show_or_say
from ._common import EXIT_FAILED, EXIT_OK, CommandError, positive_int, seconds
from ._signals import StopSignals, sigint_ignored

__all__ = (
    'DemoResult',
    'add_parser',
    'run',
    'run_demo',
)


def _port(text: str) -> int:
    ''' An option type: a TCP port, 0 for a free one. '''
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0 to 65535: {text!r}")
    return value


def add_parser(commands: Any) -> argparse.ArgumentParser:
    ''' Add ``demo`` to the subcommands of the ``bokehsync`` parser. '''
    demo: argparse.ArgumentParser = commands.add_parser(
        "demo", help="run a local server with a document updated by worker processes",
        description="Start a local Bokeh server, push a live plot that several worker processes keep "
                    "updating through their own bokehsync sessions, and print the URL to open. "
                    "Ctrl-C, SIGTERM or --duration stops it (exit code 0); the workers also stop "
                    "if this process is killed.")
    demo.set_defaults(command="demo", func=run)
    demo.add_argument("--workers", type=positive_int, default=4, help="worker processes (default: 4)")
    demo.add_argument("--duration", type=seconds, default=None, help="seconds to run (default: until Ctrl-C)")
    demo.add_argument("--interval", type=seconds, default=0.1,
                      help="mean seconds between two rows of one worker (default: 0.1)")
    demo.add_argument("--port", type=_port, default=0, help="server port (default: a free one)")
    demo.add_argument("--show", action="store_true",
                      help="open the session in a web browser (says so on stderr if none opened)")
    return demo


def run(args: argparse.Namespace) -> int:
    ''' ``bokehsync demo``: 0 after a clean stop, 4 if a worker failed. '''
    def show(url: str) -> None:
        show_or_say(url, "demo")

    result = run_demo(workers=args.workers, duration=args.duration, interval=args.interval,
                      port=args.port, show=show if args.show else None)
    if result.errors:
        raise CommandError(f"{len(result.errors)} worker(s) failed: "
                           + "; ".join(f"worker {k}: {v}" for k, v in sorted(result.errors.items())), EXIT_FAILED)
    return EXIT_OK


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
    #: stopped by Ctrl-C or SIGTERM rather than at the end of ``duration``
    interrupted: bool = False
    #: the signal that stopped it ("SIGINT", "SIGTERM"), if one did
    stopped_by: str | None = None


def run_demo(workers: int = 4, duration: float | None = None, interval: float = 0.1, port: int = 0,
        show: Callable[[str], object] | None = None, out: IO[str] | None = None) -> DemoResult:
    ''' Run the demo until ``duration`` seconds have passed, Ctrl-C or SIGTERM.

    Args:
        workers (int, optional) : worker processes (default: 4)
        duration (float, optional) : seconds to run, None until Ctrl-C
        interval (float, optional) : mean seconds between rows of one worker
        port (int, optional) : server port, 0 for a free one
        show (callable, optional) : called with the session URL once it is
            live, e.g. to open a browser (default: nothing)
        out (file, optional) : where to print (default: stdout)

    Returns:
        DemoResult

    Raises:
        OSError: ``port`` is taken
        RuntimeError: the server did not start
        BokehSyncError: the document could not be pushed, or pulled back at the end
        KeyboardInterrupt: a second Ctrl-C or SIGTERM during the stop
    '''
    from bokeh.core.types import ID
    from bokeh.models import ColumnDataSource, Plot
    from bokeh.models.annotations import Title
    from bokeh.util.token import generate_session_id

    from .._demo import DEMO_PATH, build_document, named, worker
    from .._localserver import LocalServer
    from ..session import push_session

    out = out or sys.stdout
    ctx = mp.get_context("spawn")
    stop, release = ctx.Event(), ctx.Event()
    results = ctx.Queue()
    procs: list[Any] = []
    server = LocalServer({DEMO_PATH: "bokehsync._demo:app"})
    result = DemoResult(url="", workers=workers)
    session = None

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    if port:
        _check_port_free(port)
    with StopSignals() as signals:
        try:
            with sigint_ignored():
                server.start(port=port)
            url = server.url(DEMO_PATH)
            session_id = "demo-" + generate_session_id()[:12]
            doc = build_document(workers)
            session = push_session(doc, session_id=ID(session_id), url=url)
            result.url = f"{url}?bokeh-session-id={session_id}"
            start = time.time()
            with sigint_ignored():
                for index in range(workers):
                    proc = ctx.Process(target=worker, name=f"bokehsync-demo-worker-{index}",
                                       args=(url, session_id, index, interval, start, stop, release, results,
                                             os.getpid()))
                    proc.start()
                    procs.append(proc)
            say(f"bokehsync demo: {workers} worker processes update one document.")
            say(f"Open {result.url}")
            say("Stop with Ctrl-C" + (f" (or wait {duration:g} s)." if duration is not None else "."))
            if show is not None:
                show(result.url)

            title = named(doc, "plot", Plot).title
            source = named(doc, "source", ColumnDataSource)
            assert isinstance(title, Title)
            deadline = None if duration is None else time.monotonic() + duration
            while signals.requested is None and (deadline is None or time.monotonic() < deadline):
                signals.pause(0.5 if deadline is None else min(0.5, deadline - time.monotonic()))
                with session.lock:
                    title.text = f"bokehsync demo: {workers} worker processes, {len(source.data['x'])} rows"
            if signals.requested is not None:
                result.interrupted, result.stopped_by = True, signals.requested
                say("Interrupted: stopping." if signals.requested == "SIGINT"
                    else f"Stopping ({signals.requested}).")
            session.flush()  # the last title is on the server (and with the workers) before they stop
        finally:
            try:
                _stop_workers(stop, release, procs, results, result)
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
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as e:
            raise OSError(e.errno, f"port {port} on 127.0.0.1 is in use (another server?); "
                                   "choose another with --port, or 0 for a free one")


def _stop_workers(stop: Any, release: Any, procs: list[Any], results: Any, result: DemoResult,
        timeout: float = 30.0) -> None:
    ''' Set ``stop``, collect each worker's report, then set ``release`` and
    join the workers (terminating any that is still there at the deadline).
    '''
    import queue
    stop.set()
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if p.pid is not None]
    try:
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
    finally:
        release.set()
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
                proc.join(5)


def _count_rows(session: Any, result: DemoResult) -> None:
    ''' Pull the session into a fresh one and count each worker's rows. '''
    from bokeh.core.types import ID
    from bokeh.models import ColumnDataSource

    from .._demo import named
    from ..session import pull_session
    url = result.url.split("?", 1)[0]
    with pull_session(session_id=ID(session.id), url=url) as check:
        workers = list(named(check.document, "source", ColumnDataSource).data["worker"])
    for index in range(result.workers):
        result.on_server[index] = workers.count(f"worker {index}")
