''' Opt-in reconnecting: the server restarts on the same port; sessions resynchronise. '''
from __future__ import annotations

import threading

import pytest
from bokeh.document import Document
from bokeh.models import Range1d

from bokehsync import ClientSession, ConnectionLost, Reconnect, pull_session, push_session
from tests.conftest import LONG, wait_until

FAST = Reconnect(attempts=40, initial_delay=0.05, max_delay=0.25)


def _restart(srv) -> None:
    port = srv.port
    srv.kill()
    srv.start(port=port)


def test_reconnect_is_off_by_default(fresh_server):
    ''' Without reconnect=, a lost connection stays lost (as bokeh.client). '''
    session = pull_session(url=fresh_server.url("/slider"))
    _restart(fresh_server)
    wait_until(lambda: not session.connected)
    assert not session._connection.reconnecting
    session.close()


@pytest.mark.parametrize("how", ["push", "pull"])
def test_restart_without_reconnect_raises_for_changes_made_after(fresh_server, how):
    ''' No reconnect=: after the server restarts on the same port the session stays lost; a change made
    then is not on the (new) server, and flush() says so instead of returning. '''
    url = fresh_server.url("/empty")
    if how == "push":
        doc = Document()
        doc.add_root(Range1d(start=0, end=1, name="r"))
        session = push_session(doc, url=url)
    else:
        session = pull_session(url=url)
        session.document.add_root(Range1d(start=0, end=1, name="r"))
        session.flush()
    try:
        _restart(fresh_server)
        wait_until(lambda: not session.connected, what="the loss to be noticed")
        session.document.get_model_by_name("r").start = 5
        with pytest.raises(ConnectionLost, match=r"1 document change\(s\) may not be on the server"):
            session.flush()
        assert not session.connected and not session._connection.reconnecting
        with pull_session(session_id=session.id, url=url) as check:
            assert check.document.get_model_by_name("r") is None  # a new server: the session is new
    finally:
        session.close()


def test_pushed_session_pushes_again_with_offline_changes(fresh_server):
    ''' After a restart a pushed session pushes its document again, changes made while down included. '''
    doc = Document()
    r = Range1d(start=0, end=1, name="r")
    doc.add_root(r)
    session = push_session(doc, url=fresh_server.url("/empty"), reconnect=FAST)
    events: list[str] = []
    session.on_disconnect(lambda s, error: events.append("lost"))
    session.on_reconnect(lambda s: events.append("back"))
    try:
        fresh_server.kill()
        wait_until(lambda: events == ["lost"], what="the loss to be noticed")
        r.start = 77  # made while disconnected
        fresh_server.start(port=fresh_server.port)
        wait_until(lambda: events == ["lost", "back"], what="the reconnect")
        assert session.connected
        session.flush()
        with pull_session(session_id=session.id, url=fresh_server.url("/empty")) as check:
            assert check.document.get_model_by_name("r").start == 77
        r.end = 5  # and changes after the reconnect flow as usual
        session.flush()
        with pull_session(session_id=session.id, url=fresh_server.url("/empty")) as check:
            assert check.document.get_model_by_name("r").end == 5
    finally:
        session.close()


def test_pulled_session_pulls_again_and_reports_offline_changes(fresh_server):
    ''' A pulled session pulls again (server state wins); changes made while down raise at flush. '''
    session = pull_session(url=fresh_server.url("/slider"), reconnect=FAST)
    back = threading.Event()
    session.on_reconnect(lambda s: back.set())
    try:
        doc = session.document
        fresh_server.kill()
        wait_until(lambda: not session.connected)
        doc.get_model_by_name("slider").value = 12  # made while disconnected
        fresh_server.start(port=fresh_server.port)
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


def test_gives_up_after_the_attempts(fresh_server):
    ''' The server does not come back: after the attempts the session is closed for good, with a clear error. '''
    session = pull_session(url=fresh_server.url("/empty"),
                           reconnect=Reconnect(attempts=3, initial_delay=0.01, max_delay=0.05))
    errors: list[BaseException | None] = []
    session.on_disconnect(lambda s, error: errors.append(error))
    fresh_server.kill()
    waiter = threading.Thread(target=session._loop_until_closed)
    waiter.start()
    waiter.join(LONG)
    assert not waiter.is_alive()
    assert len(errors) == 2 and "gave up reconnecting after 3 attempts" in str(errors[1])
    assert not session.connected and not session._connection.reconnecting
    with pytest.raises(ConnectionLost, match="gave up"):
        session.force_roundtrip()
    session.close()


def test_close_while_reconnecting(fresh_server):
    ''' close() during the reconnect attempts stops them and returns promptly. '''
    session = ClientSession(websocket_url=fresh_server.ws_url("/empty"),
                            reconnect=Reconnect(attempts=1000, initial_delay=0.05, max_delay=0.05))
    session.pull()
    fresh_server.kill()
    wait_until(lambda: session._connection.reconnecting)
    session.close()
    assert not session._connection.reconnecting and not session.connected


def test_reconnect_policy_validation():
    ''' Nonsense policies are refused. '''
    with pytest.raises(ValueError):
        Reconnect(attempts=0)
    with pytest.raises(TypeError):
        ClientSession(websocket_url="ws://127.0.0.1:1/x/ws", reconnect="yes")
    assert list(Reconnect(attempts=4, initial_delay=1, max_delay=3, factor=2).delays()) == [1, 2, 3, 3]
