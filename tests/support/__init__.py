''' The one home of the test helpers: timeouts, waiting, leak and memory
probes, subprocess scripts, and the round trip most integration tests make.

Servers and proxies the tests run live next to this module:
:mod:`tests.support.fakeserver` (a scripted websocket server),
:mod:`tests.support.faultproxy` (a fault-injecting, websocket-counting TCP
proxy), :mod:`tests.support.proxy` (an HTTP CONNECT proxy) and
:mod:`tests.support.nginx`. Fixtures are in ``tests/conftest.py``.
'''
from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: Seconds to provoke a timeout.
SHORT = 0.5
#: Seconds to wait for something that happens in a moment (a reply, a thread
#: ending): the default of :func:`wait_until`, so a broken behaviour reports
#: in seconds, not minutes.
QUICK = 5.0
#: Seconds as a ceiling against a hang, never expected to elapse.
LONG = 30.0

APPS = {
    "/empty": "tests.apps:empty",
    "/slider": "tests.apps:slider",
    "/columns": "tests.apps:columns",
    "/clamp": "tests.apps:clamp",
    "/reset": "tests.apps:reset",
    "/stream": "tests.apps:stream",
    "/big": "tests.apps:big",
    # A model class only the server imports (the test client must not): tests/foreign_models.py
    "/foreign": "tests.foreign_models:app",
}

#: The secret key of the signed-session server fixture (``signed_server``).
SIGNING_KEY = "bokehsync-test-secret-key-0123456789abcdef"


def wait_until(predicate: Callable[[], object], timeout: float = QUICK, what: str = "condition") -> None:
    ''' Wait for ``predicate()`` to be true, re-checking on a short interval.

    The default ``timeout`` is :data:`QUICK`: pass ``timeout=LONG`` where a
    long wait is expected (a process starting, a large transfer).
    '''
    deadline = time.monotonic() + timeout
    event = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        event.wait(0.005)


# Leaks -------------------------------------------------------------------------

def open_fds() -> int:
    ''' Descriptors open in this process (Linux). '''
    return len(os.listdir("/proc/self/fd"))


def bokehsync_threads() -> list[threading.Thread]:
    ''' Every live thread bokehsync started, in any session. '''
    return [t for t in threading.enumerate() if t.name.startswith("bokehsync-")]


def session_threads(session: Any, role: str = "") -> list[threading.Thread]:
    ''' The live bokehsync threads of one session (named ``bokehsync-<role>-<session id[:8]>``),
    optionally of one role (``"reader"``, ``"reconnect"``, ``"ioloop"``). '''
    suffix = f"-{str(session.id)[:8]}"
    prefix = f"bokehsync-{role}-" if role else "bokehsync-"
    return [t for t in threading.enumerate() if t.name.startswith(prefix) and t.name.endswith(suffix)]


def lock_held_elsewhere(lock: Any) -> bool:
    ''' Whether some thread holds ``lock``, seen from a fresh thread that tries
    to take it without waiting (so from the holder's own thread: "I hold it"). '''
    taken: list[bool] = []

    def probe() -> None:
        ok = lock.acquire(blocking=False)
        if ok:
            lock.release()
        taken.append(ok)
    thread = threading.Thread(target=probe, name="test-lock-probe")
    thread.start()
    thread.join(LONG)
    return taken == [False]


# Memory ------------------------------------------------------------------------

def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M).group(1))


class PeakRSS:
    ''' How far this process's resident memory rose above its level at the start.

    ``growth_mib`` is the peak RSS during the block minus the RSS at its start,
    in MiB. The peak is the kernel's own high-water mark (``VmHWM``), reset at
    the start by writing 5 to ``/proc/self/clear_refs``, so a transient buffer
    counts even if it is freed before the block ends, and earlier tests' peaks
    do not. (``ru_maxrss`` cannot be reset: after one heavy test it never moves.)
    '''

    def __init__(self) -> None:
        self.start_kib = 0
        self.peak_kib = 0

    def __enter__(self) -> PeakRSS:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        self.start_kib = _status_kib("VmRSS")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.peak_kib = _status_kib("VmHWM")

    @property
    def growth_mib(self) -> float:
        return (self.peak_kib - self.start_kib) / 1024


# Ports -------------------------------------------------------------------------

@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    ''' A port on 127.0.0.1 where connections are refused, for as long as the block runs.

    The socket is bound (port chosen by the kernel) but never listens, so a
    connect gets ECONNREFUSED, and no other process can take the port meanwhile
    (unlike a "free port" probed and released).
    '''
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


# Subprocesses ------------------------------------------------------------------

def run_python(code: str, timeout: float = LONG, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    ''' Run ``code`` in a fresh interpreter that imports this checkout (``ROOT`` first on its path). '''
    environ = dict(os.environ, **(env or {}))
    environ["PYTHONPATH"] = os.pathsep.join([ROOT, *filter(None, [environ.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env=environ, cwd=ROOT)


def read_line(stream: Any, timeout: float = LONG) -> str:
    ''' One line from a child process's text ``stream``; fails after ``timeout`` seconds instead of blocking. '''
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), name="test-read-line", daemon=True)
    reader.start()
    reader.join(timeout)
    assert box, f"no line from the child process within {timeout} s"
    return box[0]


# Round trips -------------------------------------------------------------------

def push_patch_pull(url: Callable[[str], str], **options: Any) -> None:
    ''' The round trip a deployment must allow, with the same session ``options`` each way:
    push a document, change it, flush, and read the change back in a fresh session;
    then pull ``/slider`` and see the server's own change come back over the link.

    Args:
        url : app path (``"/empty"``) -> the URL to use for it
    '''
    from bokeh.document import Document
    from bokeh.models import Range1d

    from bokehsync import pull_session, push_session
    doc = Document()
    doc.add_root(Range1d(start=0, end=1, name="range"))
    with push_session(doc, url=url("/empty"), **options) as session:
        doc.get_model_by_name("range").start = 7
        session.flush()
        with pull_session(session_id=session.id, url=url("/empty"), **options) as check:
            assert check.document.get_model_by_name("range").start == 7
    with pull_session(url=url("/slider"), **options) as session:
        session.document.get_model_by_name("slider").value = 3
        source = session.document.get_model_by_name("source")
        wait_until(lambda: list(source.data["value"]) == [3], what="the server's change over the link")


def pulled(url: str, session_id: str, **options: Any) -> Any:
    ''' The server's document of ``session_id``, pulled in a fresh session (closed again). '''
    from bokehsync import pull_session
    with pull_session(session_id=session_id, url=url, **options) as check:
        return check.document


def assert_lost(session: Any) -> None:
    ''' The state every fault leaves behind: not connected, ``error_reason`` NETWORK_ERROR,
    this session's reader thread ended, and the next call fails at once with ConnectionLost
    (had it waited for its timeout, it would be a ReplyTimeout). '''
    from bokehsync import ConnectionLost, ErrorReason
    wait_until(lambda: not session.connected, what="the connection to be marked lost")
    assert session.error_reason is ErrorReason.NETWORK_ERROR, (session.error_reason, session.error_detail)
    wait_until(lambda: not session_threads(session, "reader"), what="this session's reader thread to end")
    try:
        session.force_roundtrip(timeout=LONG)
    except ConnectionLost:
        return
    raise AssertionError("a call on a lost connection did not raise ConnectionLost")


def outcome(fn: Callable[[], Any], within: float) -> Any:
    ''' Run ``fn()`` on a thread; its result, or the exception it raised (returned, not raised).

    Fails if it has not finished ``within`` seconds: for the promise "no call
    blocks past its timeout", so ``within`` is the call's timeout plus a
    generous margin for a loaded machine.
    '''
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(fn())
        except BaseException as e:
            box.append(e)
    thread = threading.Thread(target=run, name="test-call")
    thread.start()
    thread.join(within)
    assert box, f"the call was still blocked after {within} s"
    return box[0]
