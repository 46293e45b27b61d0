''' A session created before ``fork`` works in the child (issue 14, item 3).

On its first use in a forked child, the session opens the child's own connection to the same
session id: no re-push (the server holds the document the child inherited), the parent's socket
never touched, only the child's own changes sent (not what the parent had queued), and the parent
keeps working. Parent and child are then two clients of one session: each sees the other's later
changes. bokeh.client "works" here by luck, sharing one socket between both processes.

The child reports over a pipe (JSON lines) and ends with ``os._exit``; the parent reads with a
deadline and waits for the child with a deadline, killing it on timeout.
'''
from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import select
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from bokeh.document import Document
from bokeh.models import Range1d

from bokehsync import pull_session, push_session
from tests.support import LONG, wait_until

# Python 3.12+ warns that forking a multi-threaded process may deadlock the child; bokehsync's
# threads hold no lock across the fork that the child needs (that is what these tests check).
pytestmark = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")


def _range_doc(names: list[str]) -> Document:
    doc = Document()
    for name in names:
        doc.add_root(Range1d(start=0, end=1, name=name))
    return doc


def _on_server(url: str, session_id: str, name: str) -> tuple[float, float]:
    ''' (start, end) of model ``name`` as the server has it, pulled back in a fresh session. '''
    with pull_session(session_id=session_id, url=url, timeout=LONG) as check:
        r = check.document.get_model_by_name(name)
        return r.start, r.end


class Pipe:
    ''' One direction of parent/child talk: JSON lines, read with a deadline. '''

    def __init__(self) -> None:
        self.rfd, self.wfd = os.pipe()
        self._buf = b""

    def send(self, **message: Any) -> None:
        os.write(self.wfd, json.dumps(message).encode() + b"\n")

    def recv(self, timeout: float = LONG) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.rfd], [], [], remaining)[0]:
                raise AssertionError(f"no message within {timeout} s")
            chunk = os.read(self.rfd, 65536)
            if not chunk:
                raise AssertionError("the other process closed the pipe")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass


@contextlib.contextmanager
def _fork(child: Callable[[Pipe, Pipe], None]) -> Iterator[tuple[int, Pipe, Pipe]]:
    ''' Fork; the child runs ``child(from_parent, to_parent)`` and ``os._exit``s (1 if it raised, after
    reporting the traceback). Yields (pid, to_child, from_child) in the parent; then waits for the
    child with a deadline, killing it on timeout, or at once if the parent's block failed. '''
    to_child, from_child = Pipe(), Pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            child(to_child, from_child)
            code = 0
        except BaseException:
            try:
                from_child.send(step="error", error=traceback.format_exc())
            except BaseException:
                pass
        finally:
            os._exit(code)
    pidfd = os.pidfd_open(pid)
    failed = True
    try:
        yield pid, to_child, from_child
        failed = False
    finally:
        try:
            if failed or not select.select([pidfd], [], [], LONG)[0]:
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        finally:
            os.close(pidfd)
            to_child.close()
            from_child.close()


def _expect(pipe: Pipe, step: str) -> dict[str, Any]:
    message = pipe.recv()
    assert message.get("step") == step, message.get("error") or message
    return message


@pytest.mark.parametrize("first_use", ["force_roundtrip", "flush"])
def test_forked_child_uses_the_inherited_session(server, first_use):
    ''' In a forked child, ``r.start = 99; s.force_roundtrip()`` (or ``s.flush()``) works: the server ends
    with 99; no re-push and none of the parent's queued changes from the child; the parent keeps working;
    each sees the other's later changes; the child closing its session leaves the parent's connected. '''
    url = server.url("/empty")
    doc = _range_doc(["r"])
    r = doc.get_model_by_name("r")
    with push_session(doc, url=url, timeout=LONG) as s:
        r.start = 1  # sent at once: then unacknowledged for a round trip...
        r.end = 2    # ...so this one is queued in the parent, behind it, when the fork happens

        def child(from_parent: Pipe, to_parent: Pipe) -> None:
            from_parent.recv()  # the parent has changed r.end to 3 meanwhile
            r.start = 99
            getattr(s, first_use)()
            to_parent.send(step="first use", pid=os.getpid())
            from_parent.recv()  # the parent changed r.end to 4 after that
            # Server changes arrive in the child's document on their own.
            wait_until(lambda: r.end == 4, what="the parent's change in the child's document")
            r.start = 100
            s.flush()
            to_parent.send(step="changed")
            from_parent.recv()
            s.close()
            to_parent.send(step="closed")

        with _fork(child) as (pid, to_child, from_child):
            r.end = 3
            s.flush()
            to_child.send(go=True)
            assert _expect(from_child, "first use")["pid"] == pid != os.getpid()
            # 99 from the child; end 3 from the parent: a re-push of the child's copy, or a resend of
            # the parent's queued end=2 from the child, would have put 2 back.
            assert _on_server(url, s.id, "r") == (99, 3)
            wait_until(lambda: r.start == 99, what="the child's change in the parent's document")
            r.end = 4
            s.flush()
            to_child.send(go=True)
            _expect(from_child, "changed")
            wait_until(lambda: r.start == 100, what="the child's later change in the parent's document")
            to_child.send(go=True)
            _expect(from_child, "closed")
        assert s.connected
        r.end = 5
        s.flush()
        s.force_roundtrip()
        assert _on_server(url, s.id, "r") == (100, 5)


# A module-level session, used by the tasks of a fork-start-method pool.
_SESSION = None


def _set_start(index: int) -> tuple[int, int]:
    ''' A pool task: change the inherited module-level session's document, flush. '''
    _SESSION.document.get_model_by_name(f"r{index}").start = 100 + index
    _SESSION.flush()
    return index, os.getpid()


@pytest.fixture
def module_session(server) -> Iterator[Any]:
    global _SESSION
    _SESSION = push_session(_range_doc([f"r{i}" for i in range(4)]), url=server.url("/empty"), timeout=LONG)
    try:
        yield _SESSION
    finally:
        _SESSION.close()
        _SESSION = None


def test_fork_pool_tasks_use_a_module_level_session(server, module_session):
    ''' multiprocessing.Pool (fork) tasks change the document of a module-level session created before
    the pool: every change is on the server and in the parent's document; the parent keeps working. '''
    url = server.url("/empty")
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map_async(_set_start, range(4)).get(LONG)
    assert sorted(i for i, _ in results) == [0, 1, 2, 3]
    assert os.getpid() not in {pid for _, pid in results}
    for i in range(4):
        assert _on_server(url, module_session.id, f"r{i}")[0] == 100 + i
    doc = module_session.document
    wait_until(lambda: [doc.get_model_by_name(f"r{i}").start for i in range(4)] == [100, 101, 102, 103],
               what="the workers' changes in the parent's document")
    doc.get_model_by_name("r0").end = 7
    module_session.flush()
    assert _on_server(url, module_session.id, "r0") == (100, 7)
