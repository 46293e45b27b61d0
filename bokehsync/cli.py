''' The ``bokehsync`` command line (also ``python -m bokehsync``).

.. code-block:: none

    bokehsync info URL                      is the server there? version, latency
    bokehsync pull URL [-o FILE]            a session document as JSON
    bokehsync push FILE URL [--show]        push a JSON document or an app script
    bokehsync demo [--workers N]            a local server and a live document

``URL`` is the http(s) URL of a Bokeh application, as a browser opens it. A
``?bokeh-session-id=...`` in it names the session (as ``--session-id`` does).

Exit codes, the same for every command:

====  =====================================================================
0     success (the demo also exits 0 when stopped with Ctrl-C)
1     the server could not be reached, or refused the session
2     bad command line arguments
3     an input or output file could not be read, written or understood
4     the server or the connection failed during the operation
5     the server did not answer within ``--timeout``
130   interrupted (Ctrl-C)
====  =====================================================================

Errors are one line on standard error, ``bokehsync <command>: error: ...``
(``-v`` adds the traceback and debug logging).
'''
from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    from bokeh.document import Document

__all__ = (
    'EXIT_FAILED',
    'EXIT_FILE',
    'EXIT_INTERRUPTED',
    'EXIT_OK',
    'EXIT_TIMEOUT',
    'EXIT_UNREACHABLE',
    'EXIT_USAGE',
    'main',
)

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_UNREACHABLE = 1
EXIT_USAGE = 2
EXIT_FILE = 3
EXIT_FAILED = 4
EXIT_TIMEOUT = 5
EXIT_INTERRUPTED = 130

#: Seconds a push or pull runs before a progress indicator appears.
PROGRESS_DELAY = 0.5


class CommandError(Exception):
    ''' A failure to report as one line, with its exit code. '''

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# Entry point -----------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    ''' Run the command line.

    Args:
        argv (list[str], optional) : the arguments (default: ``sys.argv[1:]``)

    Returns:
        int : the exit code (see the module docs)
    '''
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(threadName)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or EXIT_OK)
    except KeyboardInterrupt:
        print(f"bokehsync {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        code, message = _classify(e)
        if args.verbose:
            traceback.print_exc()
        print(f"bokehsync {args.command}: error: {message}", file=sys.stderr)
        return code


def _classify(e: BaseException) -> tuple[int, str]:
    ''' The exit code and the one-line message for an exception. '''
    from .exceptions import ConnectionFailed, ReplyTimeout
    message = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, CommandError):
        return e.code, message
    if isinstance(e, ConnectionFailed):
        return EXIT_UNREACHABLE, message
    if isinstance(e, (ReplyTimeout, TimeoutError)):
        return EXIT_TIMEOUT, message
    if isinstance(e, OSError) and getattr(e, "filename", None):
        return EXIT_FILE, message
    return EXIT_FAILED, f"{type(e).__name__}: {message}"


def build_parser() -> argparse.ArgumentParser:
    ''' The argument parser of every command. '''
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="bokehsync", description="A synchronous client for the Bokeh server.",
        epilog="Exit codes: 0 ok, 1 server unreachable or session refused, 2 bad arguments, "
               "3 file problem, 4 server or connection failure, 5 timeout, 130 interrupted.")
    parser.add_argument("--version", action="version", version=f"bokehsync {__version__}")
    parser.set_defaults(command=None, verbose=False)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str,
            description: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=description)
        sub.set_defaults(command=name, func=func)
        sub.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
        return sub

    info = add("info", cmd_info, "check a server: version, round-trip latency",
               "Connect to a Bokeh application, print the server version and the round-trip "
               "latency. Exit code 0 if the server answered, 1 otherwise.")
    info.add_argument("url", metavar="URL", help="http(s) URL of a Bokeh application")
    info.add_argument("--timeout", type=_seconds, default=10.0, help="seconds to wait (default: 10)")
    info.add_argument("--json", action="store_true", help="print the result as one JSON object")

    pull = add("pull", cmd_pull, "print a session document as JSON",
               "Pull the document of a session and write it as JSON (Document.to_json). Without "
               "a session id, a new session of the app is created and its initial document pulled.")
    pull.add_argument("url", metavar="URL", help="http(s) URL of a Bokeh application")
    pull.add_argument("--session-id", help="the session (default: the URL's bokeh-session-id, or a new one)")
    pull.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    pull.add_argument("--indent", type=int, default=None, help="indent the JSON by this many spaces")
    _common(pull)

    push = add("push", cmd_push, "push a document from a JSON file or an app script",
               "Push a document to a session and print the session's URL. FILE is a JSON "
               "document (as 'bokehsync pull' writes it), or a Bokeh app: a .py script or "
               ".ipynb notebook that builds curdoc(), or a directory with a main.py. The server "
               "discards a session nobody is connected to after a while (15 s by default): "
               "open the URL soon, or keep the session open with --wait.")
    push.add_argument("file", metavar="FILE", help=".json document, .py script, .ipynb notebook or app directory")
    push.add_argument("url", metavar="URL", help="http(s) URL of a Bokeh application")
    push.add_argument("--session-id", help="the session (default: the URL's bokeh-session-id, or a new one)")
    push.add_argument("--show", action="store_true", help="open the session in a web browser")
    push.add_argument("--wait", action="store_true",
                      help="keep the session open (and its periodic callbacks running) until Ctrl-C")
    push.add_argument("--args", nargs=argparse.REMAINDER, default=[], metavar="...",
                      help="command line arguments for the app script (must come last)")
    _common(push)

    demo = add("demo", cmd_demo, "run a local server with a document updated by worker processes",
               "Start a local Bokeh server, push a live plot that several worker processes keep "
               "updating through their own bokehsync sessions, and print the URL to open. "
               "Ctrl-C or --duration stops it (exit code 0).")
    demo.add_argument("--workers", type=_positive_int, default=4, help="worker processes (default: 4)")
    demo.add_argument("--duration", type=_seconds, default=None, help="seconds to run (default: until Ctrl-C)")
    demo.add_argument("--interval", type=_seconds, default=0.1,
                      help="mean seconds between two rows of one worker (default: 0.1)")
    demo.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    demo.add_argument("--show", action="store_true", help="open the session in a web browser")
    return parser


def _common(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--timeout", type=_seconds, default=30.0, help="seconds for each step (default: 30)")
    sub.add_argument("-q", "--quiet", action="store_true", help="no progress indicator")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


# URLs ------------------------------------------------------------------------

def split_url(url: str, session_id: str | None = None) -> tuple[str, str | None]:
    ''' The app URL without its ``bokeh-session-id`` argument, and the session id.

    Args:
        url (str) : an http(s) (or ws(s) ``.../ws``) URL, maybe with ``?bokeh-session-id=``
        session_id (str, optional) : takes precedence over the URL's

    Returns:
        tuple[str, str | None] : the http(s) app URL, the session id or None

    Raises:
        CommandError: not an http(s) or ws(s) URL (exit code 2)
    '''
    parts = urlsplit(url)
    if parts.scheme in ("ws", "wss"):
        from bokeh.client.util import server_url_for_websocket_url
        base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        if not base.endswith("/ws"):
            raise CommandError(f"a websocket URL must end with /ws: {url}", EXIT_USAGE)
        parts = urlsplit(server_url_for_websocket_url(base) + ("?" + parts.query if parts.query else ""))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CommandError(f"not an http(s) URL of a Bokeh application: {url!r}", EXIT_USAGE)
    query = parse_qs(parts.query, keep_blank_values=True)
    found = query.pop("bokeh-session-id", [None])[0]
    clean = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", urlencode(query, doseq=True), ""))
    return clean, session_id or found


def session_url(url: str, session_id: str) -> str:
    ''' The URL a browser opens to show a session. '''
    from urllib.parse import quote_plus
    return f"{url}{'&' if '?' in url else '?'}bokeh-session-id={quote_plus(session_id)}"


def _app_arguments(url: str) -> tuple[str, dict[str, str] | None]:
    ''' Split the query of an app URL into ``pull_session(arguments=...)``. '''
    parts = urlsplit(url)
    if not parts.query:
        return url, None
    arguments = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), arguments


# Progress --------------------------------------------------------------------

class Progress:
    ''' A progress indicator on a terminal, shown only after ``delay`` seconds.

    With a ``progress=`` callback (when the client offers one) it is a bar
    (``tqdm`` if installed, else a percentage); otherwise a spinner with the
    elapsed time. Nothing is written when ``stream`` is not a terminal.

    The spinner runs on a thread ``bokehsync-cli-progress``, joined on exit.

    Args:
        label (str) : what is going on ("pulling")
        stream (file, optional) : where to draw (default: stderr)
        delay (float, optional) : seconds before it appears
        enabled (bool, optional) : False for no output at all
    '''

    def __init__(self, label: str, stream: IO[str] | None = None, delay: float = PROGRESS_DELAY,
            enabled: bool = True) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.delay = delay
        self.enabled = enabled and _isatty(self.stream)
        self._start = time.monotonic()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._fraction: float | None = None
        self._bar: Any = None
        self._drawn = False
        self._mutex = threading.Lock()  # guards drawing on the stream

    def callback(self, *args: Any) -> None:
        ''' For ``progress=``: ``(done, total)`` or ``(fraction,)``. Any thread. '''
        try:
            if len(args) >= 2 and args[1]:
                self._fraction = min(1.0, float(args[0]) / float(args[1]))
            elif len(args) == 1 and isinstance(args[0], (int, float)) and 0 <= args[0] <= 1:
                self._fraction = float(args[0])
        except (TypeError, ValueError, ZeroDivisionError):
            return

    def __enter__(self) -> Progress:
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="bokehsync-cli-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        with self._mutex:
            if self._bar:  # False: no tqdm, the plain indicator was drawn
                self._bar.close()
            elif self._drawn:
                self.stream.write("\r\033[K")
                self.stream.flush()

    def _run(self) -> None:
        ''' The progress thread: draw every 0.1 s after the delay, until done. '''
        if self._done.wait(self.delay):
            return
        frames = "|/-\\"
        n = 0
        while not self._done.is_set():
            with self._mutex:
                self._draw(frames[n % len(frames)])
            n += 1
            self._done.wait(0.1)

    def _draw(self, frame: str) -> None:
        elapsed = time.monotonic() - self._start
        if self._fraction is not None:
            if self._bar is None:
                try:
                    from tqdm import tqdm
                    self._bar = tqdm(total=100, desc=self.label, file=self.stream, leave=False,
                                     bar_format="{desc} {bar} {percentage:3.0f}% {elapsed}")
                except ImportError:
                    self._bar = False
            if self._bar:
                self._bar.n = round(100 * self._fraction)
                self._bar.refresh()
                return
            text = f"{self.label} {100 * self._fraction:3.0f}% {elapsed:.1f} s"
        else:
            text = f"{frame} {self.label} {elapsed:.1f} s"
        self.stream.write("\r\033[K" + text)
        self.stream.flush()
        self._drawn = True


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _accepts_progress(func: Callable[..., Any]) -> bool:
    ''' Whether a client method takes ``progress=`` (newer bokehsync versions). '''
    try:
        return "progress" in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


@contextmanager
def _progress_kwargs(label: str, func: Callable[..., Any], quiet: bool) -> Iterator[dict[str, Any]]:
    ''' Show progress around a call of ``func``; yields the extra kwargs for it. '''
    with Progress(label, enabled=not quiet) as progress:
        yield {"progress": progress.callback} if _accepts_progress(func) else {}


# Commands --------------------------------------------------------------------

def cmd_info(args: argparse.Namespace) -> int:
    ''' ``bokehsync info URL``: 0 if the server answered, 1 otherwise. '''
    from bokeh import __version__ as bokeh_version
    from bokeh.client.util import websocket_url_for_server_url

    from . import __version__
    from .session import ClientSession

    try:
        url, _ = split_url(args.url)
        url, arguments = _app_arguments(url)
        session = ClientSession(websocket_url=websocket_url_for_server_url(url), arguments=arguments,
                                timeout=args.timeout)
        try:
            t0 = time.perf_counter()
            session.connect()
            session.check_connection_errors()
            connect_ms = 1000 * (time.perf_counter() - t0)
            version = session.request_server_info()["version_info"]
            samples = []
            for _ in range(5):
                t0 = time.perf_counter()
                session.force_roundtrip()
                samples.append(1000 * (time.perf_counter() - t0))
        finally:
            session.close(flush=False)
    except KeyboardInterrupt:
        raise
    except Exception as e:
        _, message = _classify(e)
        if args.verbose:
            traceback.print_exc()
        if args.json:
            print(json.dumps({"url": args.url, "ok": False, "error": message}))
        print(f"bokehsync info: error: {message}", file=sys.stderr)
        return EXIT_UNREACHABLE

    result = {
        "url": url, "ok": True,
        "server_bokeh_version": version.get("bokeh"), "server_version": version.get("server"),
        "client_version": __version__, "client_bokeh_version": bokeh_version,
        "connect_ms": round(connect_ms, 2), "roundtrip_ms": round(statistics.median(samples), 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"url:        {url}")
        print(f"server:     bokeh {result['server_bokeh_version']} (server {result['server_version']})")
        print(f"client:     bokehsync {__version__}, bokeh {bokeh_version}")
        print(f"connect:    {connect_ms:.1f} ms")
        print(f"round trip: {result['roundtrip_ms']:.1f} ms (median of {len(samples)})")
        print("status:     OK")
    return EXIT_OK


def cmd_pull(args: argparse.Namespace) -> int:
    ''' ``bokehsync pull URL``: the session document as JSON. '''
    from .session import ClientSession, pull_session

    url, session_id = split_url(args.url, args.session_id)
    url, arguments = _app_arguments(url)
    with _progress_kwargs("pulling", ClientSession.pull, args.quiet) as extra:
        if extra:
            from bokeh.client.util import websocket_url_for_server_url
            session = ClientSession(session_id=session_id, websocket_url=websocket_url_for_server_url(url),
                                    arguments=arguments, timeout=args.timeout)
            try:
                session.pull(**extra)
            except BaseException:
                session.close(flush=False)
                raise
        else:
            session = pull_session(session_id=session_id, url=url, arguments=arguments, timeout=args.timeout)
        with session:
            with session.lock:
                doc_json = session.document.to_json(deferred=False)
    text = json.dumps(doc_json, indent=args.indent, allow_nan=False)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        except OSError as e:
            raise CommandError(f"cannot write {args.output}: {e.strerror or e}", EXIT_FILE)
    else:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    return EXIT_OK


def load_document(path: str, argv: Sequence[str] = ()) -> Document:
    ''' A document from a JSON file, a Bokeh app script or notebook, or an app directory.

    Args:
        path (str) : ``.json`` file, ``.py`` script, ``.ipynb`` notebook or directory
        argv (list[str], optional) : ``sys.argv[1:]`` for the app script

    Returns:
        Document

    Raises:
        CommandError: the file is missing, not a document, or the script failed (exit code 3)
    '''
    from bokeh.document import Document

    if not os.path.exists(path):
        raise CommandError(f"no such file or directory: {path}", EXIT_FILE)
    if path.endswith(".json"):
        try:
            with open(path, encoding="utf-8") as f:
                return Document.from_json(json.load(f))
        except OSError as e:
            raise CommandError(f"cannot read {path}: {e.strerror or e}", EXIT_FILE)
        except Exception as e:
            raise CommandError(f"{path} is not a Bokeh document in JSON: {type(e).__name__}: {e}", EXIT_FILE)

    from bokeh.command.util import build_single_handler_application
    try:
        app = build_single_handler_application(path, list(argv))
    except Exception as e:  # bokeh raises ValueError/RuntimeError with a sentence
        raise CommandError(" ".join(str(e).split()), EXIT_FILE)
    doc = Document()
    for handler in app.handlers:
        handler.modify_document(doc)
        if handler.failed:
            log.debug("%s", handler.error_detail)
            raise CommandError(f"{path} failed: {handler.error}", EXIT_FILE)
    return doc


def cmd_push(args: argparse.Namespace) -> int:
    ''' ``bokehsync push FILE URL``: push a document, print the session URL. '''
    from .session import ClientSession, push_session, show_session

    url, session_id = split_url(args.url, args.session_id)
    doc = load_document(args.file, args.args)
    with _progress_kwargs("pushing", ClientSession.push, args.quiet) as extra:
        if extra:
            from bokeh.client.util import websocket_url_for_server_url
            session = ClientSession(session_id=session_id, websocket_url=websocket_url_for_server_url(url),
                                    timeout=args.timeout)
            try:
                session.push(doc, **extra)
            except BaseException:
                session.close(flush=False)
                raise
        else:
            session = push_session(doc, session_id=session_id, url=url, timeout=args.timeout)
    with session:
        print(session_url(url, session.id), flush=True)
        if args.show:
            show_session(session=session)
        if args.wait:
            print("Session open; Ctrl-C to close it.", file=sys.stderr, flush=True)
            try:
                session._loop_until_closed()
            except KeyboardInterrupt:
                pass
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    ''' ``bokehsync demo``: see :func:`bokehsync._demo.run_demo`. '''
    from ._demo import run_demo
    result = run_demo(workers=args.workers, duration=args.duration, interval=args.interval,
                      port=args.port, show=args.show)
    if result.errors:
        raise CommandError(f"{len(result.errors)} worker(s) failed: "
                           + "; ".join(f"worker {k}: {v}" for k, v in sorted(result.errors.items())), EXIT_FAILED)
    return EXIT_OK
