''' Shared fixtures: real Bokeh servers, per-test thread and socket leak checks.

Helpers (timeouts, waiting, probes) live in :mod:`tests.support`; the names
below are re-exported for modules that import them from here.
'''
from __future__ import annotations

from collections.abc import Iterator

import pytest

from bokehsync._localserver import LocalServer
from tests.support import (  # noqa: F401  (re-exported)
    APPS,
    LONG,
    QUICK,
    ROOT,
    SHORT,
    SIGNING_KEY,
    bokehsync_threads,
    open_fds,
    wait_until,
)


@pytest.fixture(scope="session")
def server() -> Iterator[LocalServer]:
    ''' One real Bokeh server for the session, with the test apps. '''
    with LocalServer(APPS, pythonpath=[ROOT]) as srv:
        yield srv


@pytest.fixture
def fresh_server() -> Iterator[LocalServer]:
    ''' A server of the test's own, for tests that kill it. '''
    with LocalServer(APPS, pythonpath=[ROOT]) as srv:
        yield srv


@pytest.fixture(scope="session")
def signed_server() -> Iterator[LocalServer]:
    ''' A server that only accepts session ids and tokens signed with ``SIGNING_KEY``. '''
    with LocalServer({**APPS, "/whoami": "tests.deploy_apps:whoami"}, pythonpath=[ROOT],
                     server_kwargs={"sign_sessions": True, "secret_key": SIGNING_KEY,
                                    "generate_session_ids": True}) as srv:
        yield srv


@pytest.fixture(scope="session")
def demo_server() -> Iterator[LocalServer]:
    ''' The demo command's app at ``/demo``; sessions outlive their clients long enough to be checked. '''
    with LocalServer({"/demo": "bokehsync._demo:app"}, pythonpath=[ROOT],
                     server_kwargs={"unused_session_lifetime_milliseconds": 600_000}) as srv:
        yield srv


@pytest.fixture(autouse=True)
def no_thread_leaks() -> Iterator[None]:
    ''' Every bokehsync thread this test started is gone after it. Threads that
    were alive before it (another test's leak) are not this test's business. '''
    before = set(bokehsync_threads())
    yield
    wait_until(lambda: not (set(bokehsync_threads()) - before), timeout=LONG,
               what=f"bokehsync threads to end: {sorted(t.name for t in set(bokehsync_threads()) - before)}")


@pytest.fixture
def no_socket_leaks() -> Iterator[int]:
    ''' Every socket and pipe this test opened is closed after it (yields the count before). '''
    before = open_fds()
    yield before
    wait_until(lambda: open_fds() <= before, what=f"descriptors back to {before} (now {open_fds()})")
