''' Documents round-trip through a real Bokeh server and stay in sync both ways. '''
from __future__ import annotations

import threading

import numpy as np
from bokeh.document import Document
from bokeh.models import ColumnDataSource, Range1d

from bokehsync import ClientSession, pull_session, push_session
from bokehsync._compat import DOC_ARRAYS_GZIPPED
from tests.support import LONG, lock_held_elsewhere, pulled, session_threads, wait_until
from tests.support.faultproxy import FaultProxy


def _doc_with_arrays(n: int = 1000) -> Document:
    doc = Document()
    doc.add_root(ColumnDataSource(data={
        "f": np.linspace(0.0, 1.0, n, dtype=np.float64),
        "i": np.arange(n, dtype=np.int32),
    }, name="cds"))
    doc.add_root(Range1d(start=0, end=1, name="range"))
    return doc


def test_push_then_pull_keeps_binary_columns(server):
    ''' float64 and int32 columns pushed as binary buffers come back equal in a fresh session. '''
    doc = _doc_with_arrays()
    with push_session(doc, url=server.url("/empty")) as pushed:
        sid = pushed.id
        with pull_session(session_id=sid, url=server.url("/empty")) as pulled:
            data = pulled.document.get_model_by_name("cds").data
    assert data["f"].dtype == np.float64 and data["i"].dtype == np.int32
    np.testing.assert_array_equal(data["f"], np.linspace(0.0, 1.0, 1000))
    np.testing.assert_array_equal(data["i"], np.arange(1000, dtype=np.int32))


def test_streamed_rows_reach_the_server(server):
    ''' source.stream() of binary rows arrives in order. '''
    doc = _doc_with_arrays(0)
    source = doc.get_model_by_name("cds")
    with push_session(doc, url=server.url("/empty")) as session:
        for k in range(20):
            source.stream({"f": np.array([k / 10.0]), "i": np.array([k], dtype=np.int32)})
        session.flush()
        with pull_session(session_id=session.id, url=server.url("/empty")) as check:
            data = check.document.get_model_by_name("cds").data
    np.testing.assert_array_equal(np.asarray(data["i"]), np.arange(20))


def test_server_changes_apply_without_any_call(server):
    ''' A server-side on_change writes into a source; the local document sees it while the caller only waits. '''
    with pull_session(url=server.url("/slider")) as session:
        slider = session.document.get_model_by_name("slider")
        source = session.document.get_model_by_name("source")
        slider.value = 7
        wait_until(lambda: list(source.data["value"]) == [7], what="the server's write to arrive")


def test_periodic_server_updates_arrive_while_idle(server):
    ''' A server periodic callback's streamed rows arrive with no client call at all. '''
    with pull_session(url=server.url("/stream")) as session:
        source = session.document.get_model_by_name("source")
        wait_until(lambda: len(source.data["x"]) >= 5, what="five streamed rows")
        xs = list(source.data["x"])
    assert xs == sorted(xs) and xs[:1] != []


def test_server_changes_are_not_echoed(server):
    ''' Changes applied from the server are not sent back to it (PATCH-DOCs counted on the wire). '''
    with FaultProxy(server.port) as proxy:
        with pull_session(url=proxy.url("/slider")) as session:
            source = session.document.get_model_by_name("source")
            session.document.get_model_by_name("slider").value = 3
            wait_until(lambda: list(source.data["value"]) == [3])
            session.force_roundtrip()
            sent = proxy.count("up", "PATCH-DOC")
    assert sent == 1  # only our own slider change


def test_two_clients_see_each_others_changes(server):
    ''' A change by one client of a session reaches another client of the same session. '''
    doc = _doc_with_arrays(5)
    with push_session(doc, url=server.url("/empty")) as writer:
        with pull_session(session_id=writer.id, url=server.url("/empty")) as reader:
            remote = reader.document.get_model_by_name("range")
            doc.get_model_by_name("range").end = 99
            wait_until(lambda: remote.end == 99, what="the change to reach the second client")


def test_push_reply_and_unknown_document_rules(server):
    ''' push() with another document than session.document is refused, like bokeh.client. '''
    doc = Document()
    with push_session(doc, url=server.url("/empty")) as session:
        try:
            session.push(Document())
        except ValueError as e:
            assert "different document" in str(e)
        else:
            raise AssertionError("push of a different document was accepted")
        session.push()  # the same document again is fine
        reply = session._connection.push_doc(doc)
        assert reply.msgtype == "OK"


def test_session_callbacks_run_on_the_loop_thread(server):
    ''' A periodic callback on a pushed document runs on the io_loop thread, holding session.lock, and syncs. '''
    doc = Document()
    r = Range1d(start=0, end=1, name="range")
    doc.add_root(r)
    seen: list[tuple[str, bool]] = []
    session = ClientSession(websocket_url=server.ws_url("/empty"))

    def tick():
        seen.append((threading.current_thread().name, lock_held_elsewhere(session.lock)))
        r.start += 1
    doc.add_periodic_callback(tick, 20)
    session.push(doc)
    try:
        wait_until(lambda: r.start >= 3, what="three ticks")
        session.flush()
        with pull_session(session_id=session.id, url=server.url("/empty")) as check:
            assert check.document.get_model_by_name("range").start >= 3
    finally:
        session.close()
    assert seen and all(name == f"bokehsync-ioloop-{session.id[:8]}" and held for name, held in seen)


def test_no_loop_thread_without_callbacks(server):
    ''' A session that needs no io_loop starts none. '''
    with pull_session(url=server.url("/slider")) as session:
        session.document.get_model_by_name("slider").value = 1
        session.force_roundtrip()
        assert not session_threads(session, "ioloop")
        assert session_threads(session, "reader")


def test_given_io_loop_is_kept(server):
    ''' An io_loop passed in is the one the connection reports. '''
    from tornado.ioloop import IOLoop
    loop = IOLoop(make_current=False)
    try:
        with pull_session(url=server.url("/empty"), io_loop=loop) as session:
            assert session._connection.io_loop is loop
    finally:
        loop.close()


def test_batch_sends_one_patch(server):
    ''' Changes inside session.batch() go as one PATCH-DOC (counted on the wire), and all arrive. '''
    doc = _doc_with_arrays(3)
    r = doc.get_model_by_name("range")
    with FaultProxy(server.port) as proxy:
        with push_session(doc, url=proxy.url("/empty")) as session:
            with session.batch():
                for k in range(50):
                    r.start = k
                r.end = 1000
            session.flush(timeout=LONG)
            sent = proxy.count("up", "PATCH-DOC")
    remote = pulled(server.url("/empty"), session.id).get_model_by_name("range")
    assert (remote.start, remote.end) == (49, 1000)
    assert sent == 1


def test_progress_of_a_large_push_and_pull(server):
    ''' progress= reports bytes as a large document goes out and comes back, ending at the total. '''
    doc = _doc_with_arrays(500_000)
    pushed: list[tuple[int, int | None]] = []
    pulled: list[tuple[int, int | None]] = []
    session = ClientSession(websocket_url=server.ws_url("/empty"))
    try:
        session.push(doc, progress=lambda done, total: pushed.append((done, total)))
        check = ClientSession(session_id=session.id, websocket_url=server.ws_url("/empty"))
        check.pull(progress=lambda done, total: pulled.append((done, total)))
        assert len(check.document.get_model_by_name("cds").data["f"]) == 500_000
        check.close()
    finally:
        session.close()
    # 6 MB of arrays; bokeh 3.8 gzips them on the wire, to about 4.8 MB here.
    size = 4_000_000 if DOC_ARRAYS_GZIPPED else 6_000_000
    assert len(pushed) > 3 and pushed[-1][0] == pushed[-1][1] > size
    assert [d for d, _ in pushed] == sorted(d for d, _ in pushed)
    assert len(pulled) > 3 and pulled[-1][0] == pulled[-1][1] > size
    assert [d for d, _ in pulled[:-1]] == sorted(d for d, _ in pulled[:-1])


def test_callbacks_run_on_a_given_running_loop(server):
    ''' Session callbacks run on an io_loop the caller passed in and runs on its own thread. '''
    import asyncio

    from tornado.ioloop import IOLoop
    started = threading.Event()
    holder: list[IOLoop] = []

    def run_loop() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        holder.append(IOLoop.current())
        started.set()
        holder[0].start()
    thread = threading.Thread(target=run_loop, name="user-loop")
    thread.start()
    assert started.wait(LONG)
    loop = holder[0]
    doc = Document()
    r = Range1d(start=0, end=1)
    doc.add_root(r)
    seen: list[str] = []

    def tick() -> None:
        seen.append(threading.current_thread().name)
        r.start += 1
    doc.add_periodic_callback(tick, 20)
    try:
        with push_session(doc, url=server.url("/empty"), io_loop=loop) as session:
            wait_until(lambda: r.start >= 2, what="two ticks on the given loop")
            assert session._connection.io_loop is loop
    finally:
        loop.add_callback(loop.stop)
        thread.join(LONG)
        loop.close()
    assert set(seen) == {"user-loop"}


def test_same_result_as_bokeh_client(server):
    ''' The same push-change-pull scenario through bokeh.client and bokehsync leaves the same server document. '''
    from bokeh.client import pull_session as bokeh_pull
    from bokeh.client import push_session as bokeh_push

    def scenario(push, pull, roundtrip_before_close: bool) -> dict:
        doc = _doc_with_arrays(100)
        session = push(doc, url=server.url("/empty"))
        doc.get_model_by_name("range").start = 5
        doc.get_model_by_name("cds").stream({"f": np.array([2.0]), "i": np.array([7], dtype=np.int32)})
        if roundtrip_before_close:
            session.force_roundtrip()  # bokeh.client loses the changes without it
        session.close()
        check = pull(session_id=session.id, url=server.url("/empty"))
        try:
            cds = check.document.get_model_by_name("cds")
            return {"start": check.document.get_model_by_name("range").start,
                    "f": list(cds.data["f"]), "i": [int(v) for v in cds.data["i"]]}
        finally:
            check.close()
    theirs = scenario(bokeh_push, bokeh_pull, roundtrip_before_close=True)
    ours = scenario(push_session, pull_session, roundtrip_before_close=False)
    assert ours == theirs and ours["start"] == 5 and ours["i"][-1] == 7
