''' Delivery: a change is on the server or the user gets an exception.

What flush() and close() wait for, what a timeout means, how replies find
their caller, how a burst travels, and what the client keeps in memory. The
wire is watched from outside (a counting proxy in front of a real server, or
a scripted fake server); the server's state is read back in a fresh session.
'''
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import bokeh
import numpy as np
import pytest
from bokeh.document import Document
from bokeh.models import ColumnDataSource, Range1d

from bokehsync import ClientSession, ConnectionLost, ReplyTimeout, pull_session, push_session
from bokehsync._compat import DOC_MESSAGES_HAVE_BUFFERS
from tests.support import LONG, QUICK, SHORT, PeakRSS, outcome, pulled, wait_until
from tests.support.fakeserver import FakeServer, Peer
from tests.support.faultproxy import FaultProxy
from tests.support.wsframes import OP_CLOSE

#: Seconds flush() is given in the test where one of two patches is acknowledged:
#: time enough for that acknowledgement to arrive (a flush that returned after it
#: would be caught); if a loaded machine takes longer, the test still passes.
ACK_TIME = 2.0


def _range_doc() -> tuple[Document, Range1d]:
    doc = Document()
    r = Range1d(start=0, end=1, name="r")
    doc.add_root(r)
    return doc, r


def _push_then(script_after_push):
    ''' A fake server script: upgrade, ACK, accept the push, then ``script_after_push(peer)``. '''
    def script(peer: Peer) -> None:
        peer.upgrade()
        peer.send_ack()
        peer.reply(peer.recv_message())  # OK to the PUSH-DOC
        script_after_push(peer)
    return script


# flush ---------------------------------------------------------------------------

def test_flush_waits_for_every_unacknowledged_patch():
    ''' Two patches unacknowledged, then the server acknowledges only the first: flush() raises
    ReplyTimeout; it does not return once the first OK arrives. '''
    def after_push(peer: Peer) -> None:
        first = peer.recv_message()   # sent at once
        peer.recv_message()           # waited for the first OK; sent by flush()
        peer.reply(first)             # acknowledge the first only
        peer.until_closed()
    with FakeServer(_push_then(after_push)) as fake:
        doc, r = _range_doc()
        session = ClientSession(websocket_url=fake.ws_url, ping_interval=None)
        session.push(doc)
        r.start = 1
        r.start = 2
        with pytest.raises(ReplyTimeout) as info:
            session.flush(timeout=ACK_TIME)
        assert info.value.timeout == ACK_TIME and "1 document patch" in str(info.value)
        session.close(flush=False)


def test_flush_times_out_with_unacknowledged_changes():
    ''' The server never acknowledges: flush() raises ReplyTimeout after its timeout, the connection
    stays open, and close() (which flushes) raises it too, after closing. '''
    def after_push(peer: Peer) -> None:
        peer.recv_message()
        peer.until_closed()
    with FakeServer(_push_then(after_push)) as fake:
        doc, r = _range_doc()
        session = ClientSession(websocket_url=fake.ws_url, ping_interval=None)
        session.push(doc)
        r.start = 1
        with pytest.raises(ReplyTimeout) as info:
            session.flush(timeout=SHORT)
        assert info.value.timeout == SHORT and "not acknowledged" in str(info.value)
        assert session.connected
        with pytest.raises(ReplyTimeout):
            session.close(timeout=SHORT)
        assert not session.connected


def test_flush_raises_connection_lost_when_the_link_dies_with_changes_unacknowledged():
    ''' The server takes a patch and dies without acknowledging it: flush() raises ConnectionLost. '''
    def after_push(peer: Peer) -> None:
        peer.recv_message()
        peer.close()
    with FakeServer(_push_then(after_push)) as fake:
        doc, r = _range_doc()
        session = ClientSession(websocket_url=fake.ws_url, ping_interval=None)
        session.push(doc)
        r.start = 1
        wait_until(lambda: not session.connected, what="the loss to be noticed")
        with pytest.raises(ConnectionLost):
            session.flush(timeout=LONG)
        session.close()


def test_close_without_flush_skips_the_flush():
    ''' close(flush=False) with a patch unacknowledged and a change queued behind it: it neither waits
    for the acknowledgement (no ReplyTimeout) nor sends the queued change: the server sees one patch,
    then the close frame. '''
    seen: list[str] = []

    def after_push(peer: Peer) -> None:
        seen.append(peer.recv_message()["header"]["msgtype"])
        try:
            seen.append(peer.recv_message()["header"]["msgtype"])
        except ConnectionError:
            seen.append("close")
    with FakeServer(_push_then(after_push)) as fake:
        doc, r = _range_doc()
        # A short session timeout: a close() that flushed anyway would raise ReplyTimeout soon.
        session = ClientSession(websocket_url=fake.ws_url, timeout=QUICK, ping_interval=None)
        session.push(doc)
        r.start = 1
        r.start = 2
        session.close(flush=False)
        assert not session.connected
        wait_until(lambda: len(seen) == 2, what="the server to see the close")
    assert seen == ["PATCH-DOC", "close"]


# close and exit ------------------------------------------------------------------

def test_burst_just_before_close_reaches_the_server(server):
    ''' 1,000 changes, the first still unacknowledged (its OK held back), then close(): the last one is
    on the server when close() returns. (Without close's flush only the first would get there.) '''
    doc, r = _range_doc()
    with FaultProxy(server.port) as proxy:
        session = push_session(doc, url=proxy.url("/empty"))
        proxy.hold("up")
        for k in range(1, 1001):
            r.start = k
        with ThreadPoolExecutor(1) as pool:
            closing = pool.submit(session.close)
            # Either close() sends the rest (a second PATCH-DOC) or it gives up on it (a close frame).
            wait_until(lambda: proxy.count("up", "PATCH-DOC") >= 2 or OP_CLOSE in proxy.controls("up"),
                       what="close() to send the queued changes or its close frame")
            proxy.release("up")
            closing.result(LONG)
    assert pulled(server.url("/empty"), session.id).get_model_by_name("r").start == 1000


# replies ---------------------------------------------------------------------------

def test_replies_are_routed_by_reqid_with_changes_in_flight(server):
    ''' Two changes in flight (their OKs held back), then request_server_info(): it gets the server's
    version information, not the OK of a patch that was pending before it; the changes arrive. '''
    doc, r = _range_doc()
    with FaultProxy(server.port) as proxy:
        with push_session(doc, url=proxy.url("/empty")) as session:
            proxy.hold("down")
            r.start = 1   # goes at once; its OK is held
            r.start = 2   # waits for that OK, then goes with the request
            with ThreadPoolExecutor(1) as pool:
                asking = pool.submit(session.request_server_info)
                wait_until(lambda: proxy.messages("up")[-2:] == ["PATCH-DOC", "SERVER-INFO-REQ"],
                           what="the second change and the request on the wire")
                proxy.release("down")
                info = asking.result(LONG)
            assert info["version_info"]["bokeh"] == bokeh.__version__
            session.flush()
            assert pulled(proxy.url("/empty"), session.id).get_model_by_name("r").start == 2


def test_replies_reach_their_own_thread_with_changes_in_flight(server):
    ''' 8 threads each change their own model, then pull the document on the shared connection: each
    pull reflects that thread's own latest change (a reply meant for another thread, or a patch's OK,
    would not), and every change is on the server at the end. '''
    doc = Document()
    ranges = [Range1d(start=0, end=1, name=f"r{k}") for k in range(8)]
    for rng in ranges:
        doc.add_root(rng)
    with push_session(doc, url=server.url("/empty")) as session:
        def work(k: int) -> list[float]:
            seen = []
            for i in range(1, 26):
                with session.lock:
                    ranges[k].start = i
                mine = Document()
                session._connection.pull_doc(mine, timeout=LONG)
                seen.append(mine.get_model_by_name(f"r{k}").start)
            return seen
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(work, range(8)))
        session.flush()
        check = pulled(server.url("/empty"), session.id)
    assert results == [list(range(1, 26))] * 8
    assert [check.get_model_by_name(f"r{k}").start for k in range(8)] == [25] * 8


# timeouts --------------------------------------------------------------------------

def test_the_session_timeout_is_every_calls_default():
    ''' A session made with timeout=T against a server that never answers: connect, pull, requests and
    flush each raise ReplyTimeout carrying T, and none blocks much past T. '''
    t = 1.0
    within = t + LONG / 3  # the promise is the bound: generous for a loaded machine

    def silent(peer: Peer) -> None:
        peer.upgrade()
        if peer.index > 0:  # the second connection is ACKed, then nothing is ever answered
            peer.send_ack()
            peer.reply(peer.recv_message())  # except the push, so a patch can be pending
        peer.until_closed()
    with FakeServer(silent) as fake:
        never_acked = outcome(lambda: pull_session(url=fake.url, timeout=t, ping_interval=None), within)
        assert isinstance(never_acked, ReplyTimeout) and never_acked.timeout == t, never_acked
        doc, r = _range_doc()
        session = push_session(doc, url=fake.url, timeout=t, ping_interval=None)
        try:
            assert session.timeout == t
            r.start = 5
            for call in (session.force_roundtrip, session.request_server_info, session.pull, session.flush):
                error = outcome(call, within)
                assert isinstance(error, ReplyTimeout) and error.timeout == t, (call.__name__, error)
        finally:
            session.close(flush=False)


# bursts ----------------------------------------------------------------------------

def test_a_burst_goes_as_few_merged_messages(server):
    ''' 10,000 changes in a burst, then flush: far fewer PATCH-DOCs reach the server than changes
    (counted on the wire; about a dozen in practice), and the server has the last value and every
    streamed row in order. '''
    doc = Document()
    r = Range1d(start=0, end=1, name="r")
    source = ColumnDataSource(data={"k": []}, name="log")
    doc.add_root(r)
    doc.add_root(source)
    with FaultProxy(server.port) as proxy:
        with push_session(doc, url=proxy.url("/empty")) as session:
            for k in range(1, 10_001):
                r.start = k
                if k % 1000 == 0:
                    source.stream({"k": [k]})
            session.flush(timeout=LONG)
            patches = proxy.count("up", "PATCH-DOC")
    # A bound on a count, not a time: merging can only send as many messages as
    # acknowledgements arrive during the burst, which is a few dozen even on a
    # loaded machine; one message per change (no merging) would be 10,000.
    assert patches <= 1000, f"{patches} PATCH-DOC messages for 10,000 changes"
    check = pulled(server.url("/empty"), session.id)
    assert check.get_model_by_name("r").start == 10_000
    assert list(check.get_model_by_name("log").data["k"]) == list(range(1000, 10_001, 1000))


# memory ----------------------------------------------------------------------------

@pytest.mark.skipif(not DOC_MESSAGES_HAVE_BUFFERS, reason="bokeh < 3.9 sends a document's arrays inline in "
                    "the JSON text of the echo, which a client must read whole; only binary buffers can be skipped")
def test_the_echo_of_a_push_is_not_buffered(server):
    ''' The server answers a push by sending the whole document back; bokehsync skips that echo as it
    arrives instead of assembling it: pushing 64 MB of arrays raises this process's resident memory by
    far less than the echo's size. '''
    rows = 2_000_000  # 4 columns of 16 MB: 64 MB, each buffer under the server's 20 MiB message limit
    doc = Document()
    doc.add_root(ColumnDataSource(data={c: np.arange(rows, dtype=np.float64) for c in "abcd"}, name="cds"))
    session = ClientSession(websocket_url=server.ws_url("/empty"), timeout=LONG)
    try:
        session.connect()
        with PeakRSS() as memory:
            session.push(doc)
            session.force_roundtrip()  # the echo came before this reply: it has been read
    finally:
        session.close()
    # Buffering the echo costs its size at least once (64 MB; measured 77 MiB); skipping it, a few MB (3 MiB).
    assert memory.growth_mib < 32, f"resident memory grew {memory.growth_mib:.0f} MiB during the push"


# server changes --------------------------------------------------------------------

def test_a_second_pull_sends_nothing_back(server):
    ''' Pulling again brings session.document to the server's state in place (the same objects, the
    server's values) and sends none of that back to the server (counted on the wire). '''
    with FaultProxy(server.port) as proxy:
        with pull_session(url=proxy.url("/slider")) as session:
            doc = session.document
            slider = doc.get_model_by_name("slider")
            # The local document differs from the server's without sending anything (as after a
            # change that could not be sent): what the pull changes back must not go out either.
            with session.lock:
                slider.set_from_json("value", 77, setter=session)
                slider.set_from_json("title", "local", setter=session)
            session.pull()
            session.force_roundtrip()
            assert session.document is doc and doc.get_model_by_name("slider") is slider
            assert (slider.value, slider.title) == (0, "value")  # the server's
            assert proxy.count("up", "PATCH-DOC") == 0, proxy.messages("up")


def test_no_server_update_is_dropped(server):
    ''' Another client streams 200 rows one change at a time (a flush after each, so that they are not
    merged into one stream) while this session makes requests continuously: every row arrives, in
    order. '''
    doc = Document()
    source = ColumnDataSource(data={"i": []}, name="source")
    doc.add_root(source)
    with push_session(doc, url=server.url("/empty")) as writer, \
            pull_session(session_id=writer.id, url=server.url("/empty")) as reader:
        stop = threading.Event()

        def keep_asking() -> int:
            n = 0
            while not stop.is_set():
                reader.force_roundtrip(timeout=LONG)
                n += 1
            return n
        with ThreadPoolExecutor(1) as pool:
            asking = pool.submit(keep_asking)
            for i in range(200):
                source.stream({"i": [i]})
                writer.flush()
            stop.set()
            assert asking.result(LONG) > 0
        reader.force_roundtrip()  # after the server's broadcasts of every change
        with reader.lock:
            rows = list(reader.document.get_model_by_name("source").data["i"])
    assert rows == list(range(200))
