''' Threads, asyncio, forked and spawned processes, interpreter exit. '''
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ProcessPoolExecutor

import pytest
from bokeh.document import Document
from bokeh.models import Range1d

from bokehsync import ClientSession, WrongProcess, pull_session, push_session
from tests import workers
from tests.support import LONG, ROOT, lock_held_elsewhere, pulled, read_line, run_python, session_threads, wait_until
from tests.support.faultproxy import FaultProxy
from tests.support.wsframes import OP_CLOSE


def test_threads_changing_the_document_under_the_lock(server):
    ''' Four threads change their own ranges under session.lock; all final values reach the server. '''
    doc = Document()
    ranges = [Range1d(start=0, end=1, name=f"r{k}") for k in range(4)]
    for r in ranges:
        doc.add_root(r)
    with push_session(doc, url=server.url("/empty")) as session:
        def work(r: Range1d) -> None:
            for v in range(200):
                with session.lock:
                    r.start = v
        threads = [threading.Thread(target=work, args=(r,)) for r in ranges]
        for t in threads:
            t.start()
        for t in threads:
            t.join(LONG)
        session.flush()
        with pull_session(session_id=session.id, url=server.url("/empty")) as check:
            starts = [check.document.get_model_by_name(f"r{k}").start for k in range(4)]
    assert starts == [199] * 4


def test_server_changes_are_applied_holding_the_lock(server):
    ''' The reader applies server changes holding session.lock (user callbacks see it owned). '''
    with pull_session(url=server.url("/slider")) as session:
        held: list[bool] = []
        source = session.document.get_model_by_name("source")
        source.on_change("data", lambda attr, old, new: held.append(lock_held_elsewhere(session.lock)))
        session.document.get_model_by_name("slider").value = 2
        wait_until(lambda: held)
    assert held == [True]


BLOCKING_CALLS = {
    "pull": lambda s: s.pull(),
    "push": lambda s: s.push(),
    "flush": lambda s: s.flush(),
    "force_roundtrip": lambda s: s.force_roundtrip(),
    "request_server_info": lambda s: s.request_server_info(),
    "connection.pull_doc": lambda s: s._connection.pull_doc(Document()),
    "connection.push_doc": lambda s: s._connection.push_doc(s.document),
}


@pytest.mark.parametrize("call", list(BLOCKING_CALLS))
def test_blocking_call_under_the_lock_raises(server, call):
    ''' Every blocking call made while holding session.lock raises RuntimeError naming the lock
    instead of deadlocking, even one with nothing to wait for (flush with nothing sent). '''
    with pull_session(url=server.url("/empty"), timeout=LONG) as session:
        with session.lock:
            with pytest.raises(RuntimeError, match=r"session\.lock"):
                BLOCKING_CALLS[call](session)
        session.force_roundtrip()  # and the session still works


def test_works_inside_a_running_asyncio_loop(server):
    ''' Inside a running event loop (as in Jupyter) bokehsync works; bokeh.client cannot. '''
    async def with_bokehsync() -> str:
        with pull_session(url=server.url("/slider")) as session:
            session.document.get_model_by_name("slider").value = 9
            source = session.document.get_model_by_name("source")
            session.force_roundtrip()
            wait_until(lambda: 9 in list(source.data["value"]))
            return "ok"

    async def with_bokeh_client() -> str:
        from bokeh.client import pull_session as bokeh_pull
        try:
            bokeh_pull(url=server.url("/slider")).close()
        except RuntimeError as e:
            return f"RuntimeError: {e}"
        return "ok"

    assert asyncio.run(with_bokehsync()) == "ok"
    assert asyncio.run(with_bokeh_client()).startswith("RuntimeError")


_SESSION = None


def _set_global_session(value: int, flush: bool) -> str:
    return workers.set_inherited(_SESSION, value, flush)


@pytest.fixture
def global_session(server):
    global _SESSION
    _SESSION = pull_session(url=server.url("/slider"))
    try:
        yield _SESSION
    finally:
        _SESSION.close()
        _SESSION = None


@pytest.mark.parametrize("flush", [True, False], ids=["flush", "no-flush"])
def test_forked_pool_worker_uses_a_module_level_session(server, global_session, flush):
    ''' A fork-pool worker changes the document of a session made before the fork: the change reaches
    the server (through the worker's own connection, flushed at worker exit when the task did not), the
    parent sees it, and the parent's session keeps working. '''
    ctx = multiprocessing.get_context("fork")
    pool = ctx.Pool(1)
    try:
        outcome = pool.apply_async(_set_global_session, (20_000, flush)).get(LONG)
    finally:
        pool.close()
        pool.join()
    assert outcome.startswith("set by") and outcome != f"set by {os.getpid()}"
    with pull_session(session_id=global_session.id, url=server.url("/slider")) as check:
        assert check.document.get_model_by_name("slider").value == 20_000
    slider = global_session.document.get_model_by_name("slider")
    wait_until(lambda: slider.value == 20_000, what="the parent to receive the worker's change")
    slider.value = 7
    global_session.flush()
    with pull_session(session_id=global_session.id, url=server.url("/slider")) as check:
        assert check.document.get_model_by_name("slider").value == 7


def test_wrong_process_is_raised_directly():
    ''' WrongProcess is a RuntimeError with the URL. '''
    e = WrongProcess("moved", "ws://127.0.0.1:1/a/ws")
    assert isinstance(e, RuntimeError) and "ws://127.0.0.1:1/a/ws" in str(e)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_new_sessions_in_pool_workers(server, method):
    ''' ProcessPoolExecutor workers (fork and spawn) push their own documents; all arrive. '''
    url = server.url("/empty")
    ids = [f"{method}-{uuid.uuid4().hex}" for _ in range(4)]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(method)) as pool:
        done = list(pool.map(workers.push_rows, [url] * 4, ids, [10, 20, 30, 40], timeout=LONG * 2))
    assert done == ids
    assert [workers.rows_on_server(url, sid) for sid in ids] == [10, 20, 30, 40]


def test_exit_with_an_open_session_does_not_hang_and_flushes(server):
    ''' A script that ends with a session still open exits promptly, and its last change is on the server. '''
    sid = f"exit-{uuid.uuid4().hex}"
    code = f"""
from bokeh.document import Document
from bokeh.models import Range1d
from bokehsync import push_session
doc = Document(); r = Range1d(start=0, end=1, name="r"); doc.add_root(r)
s = push_session(doc, session_id={sid!r}, url={server.url('/empty')!r})
r.start = 123
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert pulled(server.url("/empty"), sid).get_model_by_name("r").start == 123


def test_burst_just_before_exit_reaches_the_server(server):
    ''' A script makes 1,000 changes (the first still unacknowledged: its way to the server is held)
    and ends without close(): the at-exit flush sends the rest and waits, so the last change is on the
    server. (Closing at exit without flushing would leave only the first.) '''
    sid = f"exit-burst-{uuid.uuid4().hex}"
    with FaultProxy(server.port) as proxy:
        code = f"""
import sys
from bokeh.document import Document
from bokeh.models import Range1d
from bokehsync import push_session
doc = Document(); r = Range1d(start=0, end=1, name="r"); doc.add_root(r)
s = push_session(doc, session_id={sid!r}, url={proxy.url('/empty')!r})
print("pushed", flush=True)
sys.stdin.readline()
for k in range(1, 1001):
    r.start = k
"""
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]))
        proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        try:
            assert read_line(proc.stdout).strip() == "pushed"
            proxy.hold("up")
            proc.stdin.write("go\n")
            proc.stdin.flush()
            # At exit it either sends the rest (a second PATCH-DOC) or closes without (a close frame).
            wait_until(lambda: proxy.count("up", "PATCH-DOC") >= 2 or OP_CLOSE in proxy.controls("up"),
                       timeout=LONG, what="the script's exit to send the queued changes or close")
            proxy.release("up")
            _, err = proc.communicate(timeout=LONG)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err
    assert pulled(server.url("/empty"), sid).get_model_by_name("r").start == 1000


def test_ctrl_c_in_loop_until_closed_closes_and_returns(server):
    ''' Ctrl-C during loop_until_closed() closes the session and returns normally. '''
    code = f"""
import sys, threading
from bokehsync import pull_session
s = pull_session(url={server.url('/stream')!r})
main = threading.main_thread()
CALL_LINE = CALL_LINE_HERE  # the line of s._loop_until_closed() below
def waiting_in_the_call():
    # The main thread is inside that call (its outermost frame is on that line) and
    # blocked in a threading wait: Ctrl-C now lands inside loop_until_closed().
    frame = sys._current_frames()[main.ident]
    innermost = frame
    while frame.f_back is not None:
        frame = frame.f_back
    return frame.f_lineno == CALL_LINE and innermost.f_code.co_filename == threading.__file__
def announce():
    event = threading.Event()
    while not waiting_in_the_call():
        event.wait(0.01)
    print("ready", flush=True)
threading.Thread(target=announce, daemon=True).start()
s._loop_until_closed()
print("returned", s.connected, flush=True)
"""
    call_line = 1 + [line.strip() for line in code.splitlines()].index("s._loop_until_closed()")
    code = code.replace("CALL_LINE_HERE", str(call_line))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]))
    # SIG_DFL in the child: a runner started with SIGINT ignored (a background
    # job) would pass that on, and Python then never raises KeyboardInterrupt.
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert read_line(proc.stdout).strip() == "ready"
        proc.send_signal(2)
        out, err = proc.communicate(timeout=LONG)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out.strip() == "returned False"


def test_loop_until_closed_returns_when_closed_elsewhere(server):
    ''' loop_until_closed() returns once another thread closes the session. '''
    session = pull_session(url=server.url("/empty"))
    closer = threading.Thread(target=session.close)
    waiter = threading.Thread(target=session._loop_until_closed)
    waiter.start()
    closer.start()
    waiter.join(LONG)
    closer.join(LONG)
    assert not waiter.is_alive() and not session.connected


def test_close_is_idempotent_and_leaves_no_threads(server):
    ''' close() twice is fine; reader and loop threads are gone, none non-daemon. '''
    doc = Document()
    doc.add_root(Range1d(start=0, end=1))
    doc.add_next_tick_callback(lambda: None)
    session = push_session(doc, url=server.url("/empty"))
    assert session_threads(session, "ioloop") and session_threads(session, "reader")
    assert all(t.daemon for t in session_threads(session))
    session.close()
    session.close()
    assert not session.connected
    assert not session_threads(session)


def test_tokens_are_never_logged(server, caplog, monkeypatch):
    ''' Nothing logged during a whole session lifecycle contains the token it sent. '''
    from bokehsync import ClientSession
    tokens: list[str] = []
    original = ClientSession.token
    monkeypatch.setattr(ClientSession, "token",
                        property(lambda self: tokens.append(original.fget(self)) or tokens[-1]))
    caplog.set_level(logging.DEBUG)
    session = pull_session(url=server.url("/slider"))
    session.document.get_model_by_name("slider").value = 4
    session.force_roundtrip()
    session.close()
    assert tokens and caplog.records
    assert all(t not in r.getMessage() for t in tokens for r in caplog.records)


def test_close_from_a_callback_on_the_reader_thread(server):
    ''' A document callback run for a server change may close the session; the change it made is sent. '''
    session = pull_session(url=server.url("/slider"))
    source = session.document.get_model_by_name("source")
    slider = session.document.get_model_by_name("slider")

    def on_data(attr, old, new):
        slider.title = "closing"
        session.close()
    source.on_change("data", on_data)
    slider.value = 1
    wait_until(lambda: not session.connected, what="the callback to close the session")
    assert pulled(server.url("/slider"), session.id).get_model_by_name("slider").title == "closing"


def test_close_while_holding_the_lock(server):
    ''' close() inside ``with session.lock`` sends pending changes instead of deadlocking. '''
    session = pull_session(url=server.url("/slider"))
    with session.lock:
        session.document.get_model_by_name("slider").title = "held"
        session.close()
    assert pulled(server.url("/slider"), session.id).get_model_by_name("slider").title == "held"


def test_push_while_another_thread_changes_the_document(server):
    ''' Changes made by another thread during push() are neither lost nor sent before the push. '''
    doc = Document()
    r = Range1d(start=0, end=1, name="r")
    doc.add_root(r)
    session = ClientSession(websocket_url=server.ws_url("/empty"))
    started = threading.Event()

    def churn() -> None:
        started.set()
        for k in range(3000):
            r.start = k
    worker = threading.Thread(target=churn)
    worker.start()
    started.wait(LONG)
    try:
        session.push(doc)
        worker.join(LONG)
        session.flush()  # raises if a change reached the server before the pushed document
        with pull_session(session_id=session.id, url=server.url("/empty")) as check:
            assert check.document.get_model_by_name("r").start == 2999
    finally:
        worker.join(LONG)
        session.close()
