''' Opt-in reconnecting: the server goes away and comes back; sessions resynchronise.

A session talks to a :class:`FaultProxy` whose port stays bound for the whole
test. "The server restarts" is: the server process is killed, and a new one,
on a port of its own (port 0), takes its place behind the proxy. No server is
ever started on a port that was just freed, which another process could take.
'''
from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from bokeh.document import Document
from bokeh.models import Range1d
from bokeh.protocol import Protocol

from bokehsync import ClientSession, ConnectionLost, Reconnect, pull_session, push_session
from bokehsync._localserver import LocalServer
from tests.support import APPS, LONG, QUICK, ROOT, pulled, session_threads, wait_until
from tests.support.fakeserver import FakeServer, Peer
from tests.support.faultproxy import FaultProxy

FAST = Reconnect(attempts=40, initial_delay=0.05, max_delay=0.25)


class Restartable:
    ''' A Bokeh server behind a proxy of fixed address; :meth:`restart` replaces the server. '''

    def __init__(self) -> None:
        self.server = LocalServer(APPS, pythonpath=[ROOT]).start()
        self.proxy = FaultProxy(self.server.port).__enter__()

    def url(self, path: str) -> str:
        return self.proxy.url(path)

    def kill(self) -> None:
        ''' The server dies (SIGKILL); the proxy's connections to it end with it. '''
        self.server.kill()

    def start_again(self) -> None:
        ''' A new server process, on a port of its own, behind the same proxy address. '''
        self.server = LocalServer(APPS, pythonpath=[ROOT]).start()
        self.proxy.target_port = self.server.port

    def close(self) -> None:
        self.proxy.__exit__(None, None, None)
        self.server.stop()


@pytest.fixture
def restartable() -> Iterator[Restartable]:
    target = Restartable()
    try:
        yield target
    finally:
        target.close()


def test_reconnect_is_off_by_default(restartable):
    ''' Without reconnect=, a lost connection stays lost (as bokeh.client): no reconnect thread. '''
    session = pull_session(url=restartable.url("/slider"))
    restartable.kill()
    wait_until(lambda: not session.connected)
    restartable.start_again()
    assert not session._connection.reconnecting and not session_threads(session, "reconnect")
    session.close()


@pytest.mark.parametrize("how", ["push", "pull"])
def test_restart_without_reconnect_raises_for_changes_made_after(restartable, how):
    ''' No reconnect=: after the server restarts the session stays lost; a change made
    then is not on the (new) server, and flush() says so instead of returning. '''
    url = restartable.url("/empty")
    if how == "push":
        doc = Document()
        doc.add_root(Range1d(start=0, end=1, name="r"))
        session = push_session(doc, url=url)
    else:
        session = pull_session(url=url)
        session.document.add_root(Range1d(start=0, end=1, name="r"))
        session.flush()
    try:
        restartable.kill()
        wait_until(lambda: not session.connected, what="the loss to be noticed")
        restartable.start_again()
        session.document.get_model_by_name("r").start = 5
        with pytest.raises(ConnectionLost, match=r"1 document change\(s\) may not be on the server"):
            session.flush()
        assert not session.connected and not session._connection.reconnecting
        with pull_session(session_id=session.id, url=url) as check:
            assert check.document.get_model_by_name("r") is None  # a new server: the session is new
    finally:
        session.close()


def test_pushed_session_pushes_again_with_offline_changes(restartable):
    ''' After a restart a pushed session pushes its document again, changes made while down included. '''
    doc = Document()
    r = Range1d(start=0, end=1, name="r")
    doc.add_root(r)
    session = push_session(doc, url=restartable.url("/empty"), reconnect=FAST)
    events: list[str] = []
    session.on_disconnect(lambda s, error: events.append("lost"))
    session.on_reconnect(lambda s: events.append("back"))
    try:
        restartable.kill()
        wait_until(lambda: events == ["lost"], what="the loss to be noticed")
        r.start = 77  # made while disconnected
        restartable.start_again()
        wait_until(lambda: events == ["lost", "back"], timeout=LONG, what="the reconnect")
        assert session.connected
        session.flush()
        assert pulled(restartable.url("/empty"), session.id).get_model_by_name("r").start == 77
        r.end = 5  # and changes after the reconnect flow as usual
        session.flush()
        assert pulled(restartable.url("/empty"), session.id).get_model_by_name("r").end == 5
    finally:
        session.close()


def test_pulled_session_pulls_again_and_reports_offline_changes(restartable):
    ''' A pulled session pulls again (server state wins); changes made while down raise at flush. '''
    session = pull_session(url=restartable.url("/slider"), reconnect=FAST)
    back = threading.Event()
    session.on_reconnect(lambda s: back.set())
    try:
        doc = session.document
        restartable.kill()
        wait_until(lambda: not session.connected)
        doc.get_model_by_name("slider").value = 12  # made while disconnected
        restartable.start_again()
        assert back.wait(LONG)
        assert session.document is doc and doc.get_model_by_name("slider").value == 0  # the server's state
        with pytest.raises(ConnectionLost, match="made while disconnected were not sent"):
            session.flush()
        # the session works normally afterwards
        slider, source = doc.get_model_by_name("slider"), doc.get_model_by_name("source")
        slider.value = 3
        wait_until(lambda: list(source.data["value"]) == [3], what="the server's on_change to answer")
    finally:
        session.close()


def test_gives_up_after_the_attempts(restartable):
    ''' The server does not come back: after the attempts the session is closed for good, with a clear error. '''
    session = pull_session(url=restartable.url("/empty"),
                           reconnect=Reconnect(attempts=3, initial_delay=0.01, max_delay=0.05))
    errors: list[BaseException | None] = []
    session.on_disconnect(lambda s, error: errors.append(error))
    restartable.kill()
    waiter = threading.Thread(target=session._loop_until_closed)
    waiter.start()
    waiter.join(LONG)
    assert not waiter.is_alive()
    assert len(errors) == 2 and "gave up reconnecting after 3 attempts" in str(errors[1])
    assert not session.connected and not session._connection.reconnecting
    with pytest.raises(ConnectionLost, match="gave up"):
        session.force_roundtrip()
    session.close()


# With a scripted server: exact control over each reconnect attempt --------------

def _pull_reply_content() -> dict:
    ''' The content of a PULL-DOC-REPLY carrying an empty document, as the installed bokeh writes it. '''
    return json.loads(Protocol().create("PULL-DOC-REPLY", "x", Document()).content_json)


def _serve_pulls_and_requests(peer: Peer, read: bool = True) -> None:
    ''' Upgrade, ACK, then answer PULL-DOC-REQ and SERVER-INFO-REQ until the client goes away. '''
    peer.upgrade(read=read)
    peer.send_ack()
    while True:
        request = peer.recv_message()
        kind = request["header"]["msgtype"]
        if kind == "PULL-DOC-REQ":
            peer.reply(request, "PULL-DOC-REPLY", _pull_reply_content())
        elif kind == "SERVER-INFO-REQ":
            peer.reply(request, "SERVER-INFO-REPLY", {"version_info": {"bokeh": "x", "server": "x"}})
        else:
            peer.reply(request)


def test_close_stops_the_reconnect_attempts():
    ''' close() while the server keeps refusing the reconnect attempts: the server sees no further
    attempts (at most one under way), and when close() returns this session's reconnect thread is
    gone, so none can follow, and it is not reconnecting. '''
    def script(peer: Peer) -> None:
        if peer.index == 0:
            peer.upgrade()
            peer.send_ack()
            peer.reply(peer.recv_message(), "PULL-DOC-REPLY", _pull_reply_content())
            peer.close()  # the connection is lost
        else:
            peer.respond_http(503, "Service Unavailable")  # every reconnect attempt is refused
    with FakeServer(script) as fake:
        # A short session timeout: a close() that waited for a reconnect thread which
        # ignored it would give up on it after that long, and the check below fails.
        session = ClientSession(websocket_url=fake.ws_url, timeout=QUICK, ping_interval=None,
                                reconnect=Reconnect(attempts=1000, initial_delay=0.1, max_delay=0.1))
        session.pull()
        wait_until(lambda: fake.connections >= 3, what="reconnect attempts")
        before = fake.connections
        session.close()
        # Counted by the server: at most the attempt under way as close() was called (perhaps not
        # yet accepted when counted) and one more if close() itself was slow to start (attempts
        # are 0.1 s apart). A thread that ignored close() makes hundreds.
        assert fake.connections - before <= 2, f"{fake.connections - before} connection attempts during close()"
        assert not session_threads(session, "reconnect"), "the reconnect thread outlived close()"
        assert not session._connection.reconnecting and not session.connected


def test_a_request_while_reconnecting_fails_at_once():
    ''' While a reconnect attempt is under way, a request raises ConnectionLost at once (not the
    ReplyTimeout of waiting); once reconnected, requests work again. '''
    release = threading.Event()

    def script(peer: Peer) -> None:
        if peer.index == 0:
            peer.upgrade()
            peer.send_ack()
            peer.reply(peer.recv_message(), "PULL-DOC-REPLY", _pull_reply_content())
            peer.close()  # the connection is lost
            return
        peer.read_request()  # the reconnect attempt waits here until the test says go
        release.wait(LONG)
        _serve_pulls_and_requests(peer, read=False)
    with FakeServer(script) as fake:
        session = ClientSession(websocket_url=fake.ws_url, timeout=LONG, ping_interval=None,
                                reconnect=Reconnect(attempts=5, initial_delay=0.01, max_delay=0.01))
        back = threading.Event()
        session.on_reconnect(lambda s: back.set())
        try:
            session.pull()
            wait_until(lambda: fake.connections >= 2 and session._connection.reconnecting,
                       what="a reconnect attempt to be under way")
            with pytest.raises(ConnectionLost):
                session.force_roundtrip(timeout=QUICK)
            release.set()
            assert back.wait(LONG), "the session did not reconnect"
            session.force_roundtrip()
            assert session.connected
        finally:
            release.set()
            session.close(flush=False)


def test_reconnect_policy_validation():
    ''' Nonsense policies are refused. '''
    with pytest.raises(ValueError):
        Reconnect(attempts=0)
    with pytest.raises(TypeError):
        ClientSession(websocket_url="ws://127.0.0.1:1/x/ws", reconnect="yes")
    assert list(Reconnect(attempts=4, initial_delay=1, max_delay=3, factor=2).delays()) == [1, 2, 3, 3]
