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
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest
from bokeh.document import Document
from bokeh.models import Range1d

from bokehsync import ClientSession, WrongProcess, pull_session, push_session
from tests import workers
from tests.conftest import LONG, ROOT, wait_until


def test_many_threads_share_one_connection(server):
    ''' 8 threads pulling at once on one connection each get their own, complete reply. '''
    with pull_session(url=server.url("/slider")) as session:
        def pull_one(_: int) -> list[str]:
            doc = Document()
            session._connection.pull_doc(doc, timeout=LONG)
            return sorted(m.name for m in doc.roots)
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(pull_one, range(32)))
    assert results == [["slider", "source"]] * 32


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
        owned: list[bool] = []
        source = session.document.get_model_by_name("source")
        source.on_change("data", lambda attr, old, new: owned.append(session.lock._is_owned()))
        session.document.get_model_by_name("slider").value = 2
        wait_until(lambda: owned)
    assert owned == [True]


def test_blocking_call_under_the_lock_raises(server):
    ''' A blocking call while holding session.lock raises instead of deadlocking. '''
    with pull_session(url=server.url("/empty")) as session:
        with session.lock:
            with pytest.raises(RuntimeError, match=r"session\.lock"):
                session.force_roundtrip()


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


def _run(code: str, timeout: float = LONG) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)


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
    result = _run(code)
    assert result.returncode == 0, result.stderr
    with pull_session(session_id=sid, url=server.url("/empty")) as check:
        assert check.document.get_model_by_name("r").start == 123


def test_ctrl_c_in_loop_until_closed_closes_and_returns(server):
    ''' Ctrl-C during loop_until_closed() closes the session and returns normally. '''
    code = f"""
import sys, threading
from bokehsync import pull_session
s = pull_session(url={server.url('/stream')!r})
main = threading.main_thread()
def in_loop_until_closed():
    frame = sys._current_frames()[main.ident]
    names = []
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    return names[0] in ("wait", "acquire") and "loop_until_closed" in names
def announce():
    event = threading.Event()
    while not in_loop_until_closed():
        event.wait(0.01)
    print("ready", flush=True)
threading.Thread(target=announce, daemon=True).start()
s._loop_until_closed()
print("returned", s.connected, flush=True)
"""
    env = dict(os.environ, PYTHONPATH=ROOT)
    # SIG_DFL in the child: a runner started with SIGINT ignored (a background
    # job) would pass that on, and Python then never raises KeyboardInterrupt.
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout.readline().strip() == "ready"
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
    names = {t.name for t in threading.enumerate()}
    assert any(n.startswith("bokehsync-ioloop-") for n in names)
    assert all(t.daemon for t in threading.enumerate() if t.name.startswith("bokehsync-"))
    session.close()
    session.close()
    assert not session.connected
    assert not [t for t in threading.enumerate() if t.name.startswith("bokehsync-")]


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
    with pull_session(session_id=session.id, url=server.url("/slider")) as check:
        assert check.document.get_model_by_name("slider").title == "closing"


def test_close_while_holding_the_lock(server):
    ''' close() inside ``with session.lock`` sends pending changes instead of deadlocking. '''
    session = pull_session(url=server.url("/slider"))
    with session.lock:
        session.document.get_model_by_name("slider").title = "held"
        session.close()
    with pull_session(session_id=session.id, url=server.url("/slider")) as check:
        assert check.document.get_model_by_name("slider").title == "held"


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
