''' Shared fixtures: a real Bokeh server, waiting helpers, thread-leak checks. '''
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from bokehsync._localserver import LocalServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Seconds to provoke a timeout.
SHORT = 0.5
#: Seconds as a ceiling against a hang, never expected to elapse.
LONG = 30.0

APPS = {
    "/empty": "tests.apps:empty",
    "/slider": "tests.apps:slider",
    "/stream": "tests.apps:stream",
    "/big": "tests.apps:big",
    # A model class only the server imports (the test client must not): tests/foreign_models.py
    "/foreign": "tests.foreign_models:app",
}


def wait_until(predicate: Callable[[], object], timeout: float = LONG, what: str = "condition") -> None:
    ''' Wait for ``predicate()`` to be true, re-checking on a short interval. '''
    deadline = time.monotonic() + timeout
    event = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        event.wait(0.005)


def open_fds() -> int:
    ''' Descriptors open in this process (Linux). '''
    return len(os.listdir("/proc/self/fd"))


def bokehsync_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("bokehsync-")]


@pytest.fixture(scope="session")
def server() -> Iterator[LocalServer]:
    ''' One real Bokeh server for the session, with the test apps. '''
    with LocalServer(APPS, pythonpath=[ROOT]) as srv:
        yield srv


@pytest.fixture
def fresh_server() -> Iterator[LocalServer]:
    ''' A server of the test's own, for tests that kill or restart it. '''
    with LocalServer(APPS, pythonpath=[ROOT]) as srv:
        yield srv


@pytest.fixture(autouse=True)
def no_thread_leaks() -> Iterator[None]:
    ''' Every bokehsync thread a test started is gone after it. '''
    before = set(bokehsync_threads())
    yield
    wait_until(lambda: not (set(bokehsync_threads()) - before), timeout=LONG,
               what="bokehsync threads to end")
