''' Every failure gives a clear exception naming the URL and the cause, and no call hangs. '''
from __future__ import annotations

import itertools
import logging
import struct

import pytest

from bokehsync import (
    ClientSession,
    ConnectionFailed,
    ConnectionLost,
    ConnectionRejected,
    ErrorReason,
    ReplyTimeout,
    ServerError,
    pull_session,
)
from tests.support import LONG, SHORT, outcome, refusing_port, wait_until
from tests.support.fakeserver import ClientGone, FakeServer, Peer, hold_open
from tests.support.faultproxy import FaultProxy
from tests.support.wsframes import OP_CLOSE, OP_TEXT, frame


def test_connection_refused_is_an_oserror_naming_the_url():
    ''' Nothing listening: OSError (ConnectionFailed) with the URL, NETWORK_ERROR. '''
    with refusing_port() as port:
        url = f"http://127.0.0.1:{port}/app"
        with pytest.raises(OSError) as info:
            pull_session(url=url)
    assert isinstance(info.value, ConnectionFailed)
    assert "refused" in str(info.value) and f"{url.replace('http', 'ws')}/ws" in str(info.value)


def test_connection_refused_sets_bokeh_error_properties():
    ''' connect() itself does not raise (as in bokeh.client); the properties tell. '''
    with refusing_port() as port:
        session = ClientSession(websocket_url=f"ws://127.0.0.1:{port}/app/ws")
        session.connect()
    assert not session.connected
    assert session.error_reason is ErrorReason.NETWORK_ERROR
    assert "refused" in session.error_detail
    session.close()


def test_wrong_app_path_is_http_404(server):
    ''' A wrong app path gives HTTP_ERROR 404 and a message about the path. '''
    session = ClientSession(websocket_url=server.ws_url("/nope"))
    with pytest.raises(OSError) as info:
        session.pull()
    assert session.error_reason is ErrorReason.HTTP_ERROR and session.error_code == 404
    assert "application path" in str(info.value) and "/nope" in str(info.value)
    assert info.value.status == 404
    session.close()


def test_http_403_at_the_handshake():
    ''' A 403 at the upgrade (e.g. Origin refused) sets error_code 403. '''
    with FakeServer(lambda peer: peer.respond_http(403, "Forbidden", b"origin not allowed")) as fake:
        session = ClientSession(websocket_url=fake.ws_url)
        with pytest.raises(ConnectionFailed) as info:
            session.pull()
        assert session.error_code == 403 and session.error_reason is ErrorReason.HTTP_ERROR
        assert "403" in str(info.value) and "origin not allowed" in str(info.value)
        session.close()


def test_server_closing_after_upgrade_is_a_rejection_not_a_500():
    ''' The server closes right after the 101 (bad token, auth): ConnectionRejected says so. '''
    def script(peer: Peer) -> None:
        peer.upgrade()
        peer.close()
    with FakeServer(script) as fake:
        with pytest.raises(ConnectionRejected) as info:
            pull_session(url=fake.url)
    message = str(info.value)
    assert "right after the upgrade" in message and "token" in message and fake.ws_url in message
    assert "500" not in message


def test_signed_session_server_rejects_unsigned_ids(signed_server):
    ''' A real server with signed sessions refuses an unsigned id with ConnectionRejected. '''
    with pytest.raises(ConnectionRejected) as info:
        pull_session(session_id="not-signed", url=signed_server.url("/empty"))
    assert signed_server.ws_url("/empty") in str(info.value)


def test_bokeh_protocol_error_close_keeps_code_and_reason(server):
    ''' Bokeh closes with 10001 on a bad message; the code and reason survive (websocket-client loses them). '''
    with FaultProxy(server.port) as proxy:
        session = pull_session(url=proxy.url("/empty"))
        try:
            proxy.inject("up", frame(OP_TEXT, b"this is not json", mask=True))  # as if the client sent it
            with pytest.raises(ConnectionLost) as info:
                session.force_roundtrip(timeout=LONG)
            assert session.error_code in (10000, 10001)
            assert session.error_reason is ErrorReason.NETWORK_ERROR
            assert "Bokeh protocol error" in session.error_detail
            assert str(session.error_code) in session.error_detail
            assert "failed to parse a message" in session.error_detail  # the server's reason, kept
            assert str(session.error_code) in str(info.value)
        finally:
            session.close()


def test_request_fails_at_once_when_the_link_dies():
    ''' A pending request fails as soon as the connection dies, not at its timeout. '''
    def script(peer: Peer) -> None:
        peer.upgrade()
        peer.send_ack()
        peer.recv_message()  # the request: answer by dying
        peer.close()
    with FakeServer(script) as fake:
        session = ClientSession(websocket_url=fake.ws_url, timeout=LONG)
        session.connect()
        with pytest.raises(ConnectionLost):  # not the ReplyTimeout of a call that waited
            session.force_roundtrip()
        assert not session.connected and session.error_reason is ErrorReason.NETWORK_ERROR
        session.close()


def test_close_sends_its_reason():
    ''' close(why) sends a close frame with code 1000 and ``why`` as its reason (checked by the
    server's script: a failed check there fails this test). '''
    def script(peer: Peer) -> None:
        peer.upgrade()
        peer.send_ack()
        opcode, payload = peer.recv_frame()
        assert opcode == OP_CLOSE, opcode
        assert payload == struct.pack("!H", 1000) + b"bye for now", payload
        peer.send_close(1000)
    with FakeServer(script) as fake:
        session = ClientSession(websocket_url=fake.ws_url, ping_interval=None)
        session.connect()
        session.close("bye for now")


def test_no_reply_raises_reply_timeout():
    ''' A server that never answers: ReplyTimeout (a TimeoutError) after the timeout, naming the request. '''
    def script(peer: Peer) -> None:
        peer.upgrade()
        peer.send_ack()
        hold_open(peer)
    with FakeServer(script) as fake:
        session = ClientSession(websocket_url=fake.ws_url, ping_interval=None)
        session.connect()
        with pytest.raises(TimeoutError) as info:
            session.force_roundtrip(timeout=SHORT)
        assert isinstance(info.value, ReplyTimeout) and info.value.timeout == SHORT
        assert "SERVER-INFO-REQ" in str(info.value)
        assert session.connected  # a timeout alone does not kill the connection
        session.close(flush=False)


def test_late_reply_after_timeout_is_dropped_quietly():
    ''' The reply to an abandoned request arrives later: it is dropped, the connection lives on. '''
    def script(peer: Peer) -> None:
        peer.upgrade()
        peer.send_ack()
        first = peer.recv_message()
        second = peer.recv_message()
        for msg in (first, second):
            peer.send_message("SERVER-INFO-REPLY", {"version_info": {"bokeh": "x", "server": "x"}},
                              reqid=msg["header"]["msgid"], msgid="r" + msg["header"]["msgid"])
        hold_open(peer)
    with FakeServer(script) as fake:
        session = ClientSession(websocket_url=fake.ws_url)
        session.connect()
        with pytest.raises(ReplyTimeout):
            session.force_roundtrip(timeout=SHORT)
        session.force_roundtrip(timeout=LONG)
        assert session.connected
        session.close(flush=False)


def test_connect_times_out_when_the_server_never_upgrades():
    ''' TCP accepted, no HTTP answer: the connect fails within its timeout. '''
    def script(peer: Peer) -> None:
        peer.read_request()
        hold_open(peer)
    with FakeServer(script) as fake:
        session = ClientSession(websocket_url=fake.ws_url)
        # The bound is the promise (no call blocks past its timeout): generous for a loaded machine.
        error = outcome(lambda: session.pull(timeout=SHORT), within=SHORT + LONG / 3)
        assert isinstance(error, TimeoutError) and error.timeout == SHORT
        session.close()


def test_no_ack_times_out():
    ''' Upgraded but no ACK: ReplyTimeout from the pull, not a hang. '''
    def script(peer: Peer) -> None:
        peer.upgrade()
        hold_open(peer)
    with FakeServer(script) as fake:
        session = ClientSession(websocket_url=fake.ws_url)
        with pytest.raises(ReplyTimeout) as info:
            session.pull(timeout=SHORT)
        assert "ACK" in str(info.value)
        session.close()


def test_server_error_reply_keeps_text_and_connection(server):
    ''' An ERROR reply raises ServerError (a RuntimeError) with the text; the connection stays up. '''
    def script(peer: Peer) -> None:
        peer.upgrade()
        peer.send_ack()
        msg = peer.recv_message()
        peer.send_message("ERROR", {"text": "boom", "traceback": "tb"}, reqid=msg["header"]["msgid"])
        msg = peer.recv_message()
        peer.send_message("OK", {}, reqid=msg["header"]["msgid"], msgid="s2")
        hold_open(peer)
    with FakeServer(script) as fake:
        session = ClientSession(websocket_url=fake.ws_url)
        session.connect()
        with pytest.raises(RuntimeError) as info:
            session.pull(timeout=LONG)
        assert isinstance(info.value, ServerError) and info.value.text == "boom"
        assert "failed to pull the document: " in str(info.value)
        session.force_roundtrip(timeout=LONG)
        session.close(flush=False)


def test_rejected_patch_raises_at_flush_and_close(caplog):
    ''' A patch the server answers with ERROR is never silent: it is logged (ERROR, with the server's
    text and the URL) as soon as the ERROR arrives, before any call, then flush and close raise ServerError. '''
    from bokeh.document import Document
    from bokeh.models import Range1d

    def script(peer: Peer) -> None:
        peer.upgrade()
        peer.send_ack()
        push = peer.recv_message()
        peer.send_message("OK", {}, reqid=push["header"]["msgid"], msgid="ok1")
        # Every patch is refused; the session then pulls to get back in step (the document as pushed).
        for k in itertools.count():
            try:
                message = peer.recv_message()
            except ClientGone:
                return
            if message["header"]["msgtype"] == "PULL-DOC-REQ":
                peer.send_message("PULL-DOC-REPLY", push["content"], reqid=message["header"]["msgid"],
                                  msgid=f"p{k}")
            else:
                peer.send_message("ERROR", {"text": "patch refused", "traceback": ""},
                                  reqid=message["header"]["msgid"], msgid=f"e{k}")
    with FakeServer(script) as fake:
        doc = Document()
        r = Range1d(start=0, end=1)
        doc.add_root(r)
        caplog.set_level(logging.ERROR, logger="bokehsync")
        session = ClientSession(websocket_url=fake.ws_url)
        session.push(doc)
        r.start = 5

        def logged() -> list[str]:
            return [r.getMessage() for r in caplog.records
                    if r.name.startswith("bokehsync") and r.levelno == logging.ERROR]
        wait_until(lambda: any("patch refused" in m for m in logged()), what="the rejection to be logged")
        assert any(fake.ws_url in m for m in logged() if "patch refused" in m)
        with pytest.raises(ServerError) as info:
            session.flush(timeout=LONG)
        assert "patch refused" in str(info.value)
        assert r.start == 0  # back in step with the server, which refused the change
        r.start = 6
        with pytest.raises(ServerError, match="patch refused"):
            session.close()
        assert not session.connected
