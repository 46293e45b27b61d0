''' A misbehaving server: each malformed input gives a clear ProtocolViolation
on the pending call, closes that connection (``error_reason`` NETWORK_ERROR),
bounds memory, and leaves other sessions of the process alone.
'''
from __future__ import annotations

import json
import struct

import pytest

from bokehsync import ClientSession, ConnectionLost, ErrorReason, ProtocolViolation, pull_session
from tests.support import LONG, PeakRSS, wait_until
from tests.support.fakeserver import FakeServer, Peer

pytestmark = pytest.mark.usefixtures("server", "no_socket_leaks")

#: What a refused oversize message announces and then actually sends: far more
#: than the memory bound below, so a client that buffered it before refusing
#: it would break the bound.
HUGE = 256 << 20
#: How much this process's resident memory may grow while it handles bad
#: input (a bound, not a timing: generous for what else the process does).
MEMORY_BOUND_MIB = 64


def _reply_header(request: dict, **extra) -> str:
    return json.dumps({"msgid": "r1", "msgtype": "SERVER-INFO-REPLY", "reqid": request["header"]["msgid"],
                       **extra})


def _bad_binary_header(peer: Peer, request: dict) -> None:
    peer.send_binary(_reply_header(request).encode())


def _bad_text_payload(peer: Peer, request: dict) -> None:
    peer.send_text(_reply_header(request, num_buffers=1))
    peer.send_text("{}")
    peer.send_text("{}")
    peer.send_text('{"id": "b"}')
    peer.send_text("this should have been binary")


def _bad_json(peer: Peer, request: dict) -> None:
    peer.send_text("{not json")


def _no_msgtype(peer: Peer, request: dict) -> None:
    peer.send_text(json.dumps({"msgid": "x", "reqid": request["header"]["msgid"]}))


def _unknown_msgtype(peer: Peer, request: dict) -> None:
    peer.send_text(json.dumps({"msgid": "x", "msgtype": "FROBNICATE", "reqid": request["header"]["msgid"]}))
    peer.send_text("{}")
    peer.send_text("{}")


def _too_few_buffers(peer: Peer, request: dict) -> None:
    peer.send_text(_reply_header(request, num_buffers=2))
    peer.send_text("{}")
    peer.send_text("{}")
    peer.send_text('{"id": "a"}')
    peer.send_binary(b"1")
    peer.send_message("OK", {}, msgid="next")  # arrives where the 2nd buffer header belongs


def _too_many_buffers(peer: Peer, request: dict) -> None:
    peer.send_text(_reply_header(request))
    peer.send_text("{}")
    peer.send_text(json.dumps({"version_info": {}}))
    peer.send_text('{"id": "extra"}')
    peer.send_binary(b"1")


def _bad_buffer_header(peer: Peer, request: dict) -> None:
    peer.send_text(_reply_header(request, num_buffers=1))
    peer.send_text("{}")
    peer.send_text("{}")
    peer.send_text('{"id": "a", "more": 1}')


def _unknown_reqid(peer: Peer, request: dict) -> None:
    peer.send_message("OK", {}, reqid="nobody-asked", msgid="x")


def _second_ack(peer: Peer, request: dict) -> None:
    peer.send_ack()


def _huge_frame_header(peer: Peer, request: dict) -> None:
    peer.send_raw(struct.pack("!BBQ", 0x82, 127, 1 << 40))


def _oversize_message(peer: Peer, request: dict) -> None:
    peer.send_text(_reply_header(request, num_buffers=1))
    peer.send_text("{}")
    peer.send_text("{}")
    peer.send_text('{"id": "a"}')
    # HUGE bytes, sent for real in 1 MiB pieces (so this server holds only one
    # piece): a client that buffers before it checks the size gets all of it.
    peer.send_raw(struct.pack("!BBQ", 0x82, 127, HUGE))
    piece = bytes(1 << 20)
    for _ in range(HUGE // len(piece)):
        peer.send_raw(piece)


CASES = [
    (_bad_binary_header, "expected a text header"),
    (_bad_text_payload, "expected a binary buffer payload"),
    (_bad_json, "not valid JSON"),
    (_no_msgtype, "without msgtype"),
    (_unknown_msgtype, "unknown or malformed"),
    (_too_few_buffers, "malformed buffer header"),
    (_too_many_buffers, "without msgtype"),
    (_bad_buffer_header, "malformed buffer header"),
    (_unknown_reqid, "unknown request"),
    (_second_ack, "unsolicited ACK"),
    (_huge_frame_header, "exceeds max_message_size"),
    (_oversize_message, "exceeds max_message_size"),
]


def _serve(bad) -> callable:
    def script(peer: Peer) -> None:
        peer.upgrade()
        peer.send_ack()
        request = peer.recv_message()
        try:
            bad(peer, request)
        except (BrokenPipeError, ConnectionResetError):
            return  # the client refused the input before all of it was sent: as it may
        # then stay silent: the client must not wait for anything more
        peer.until_closed()
    return script


@pytest.mark.parametrize("bad, what", CASES, ids=[c[0].__name__.strip("_") for c in CASES])
def test_malformed_input_is_named_and_contained(server, bad, what):
    ''' The pending call raises ProtocolViolation saying what was wrong; only that connection closes. '''
    bystander = pull_session(url=server.url("/slider"))
    try:
        with FakeServer(_serve(bad)) as fake:
            session = ClientSession(websocket_url=fake.ws_url, max_message_size=1 << 20, timeout=LONG,
                                    ping_interval=None)
            session.connect()
            with PeakRSS() as memory:
                if bad is _too_many_buffers:
                    # The reply is complete before the extra buffer: the call
                    # succeeds, then the connection closes on the violation.
                    session.force_roundtrip()
                    wait_until(lambda: not session.connected)
                    error = session._connection.error
                else:
                    # ProtocolViolation, not the ReplyTimeout of a call that waited: it failed at once.
                    with pytest.raises(ProtocolViolation) as info:
                        session.force_roundtrip()
                    error = info.value
                wait_until(lambda: fake.done.is_set(), timeout=LONG, what="the fake server to finish sending")
            assert isinstance(error, ProtocolViolation) and what in str(error)
            assert fake.ws_url in str(error)
            assert not session.connected and session.error_reason is ErrorReason.NETWORK_ERROR
            assert memory.growth_mib < MEMORY_BOUND_MIB, f"resident memory grew {memory.growth_mib:.0f} MiB"
            session.close()
        bystander.force_roundtrip()
        assert bystander.connected
    finally:
        bystander.close()


@pytest.mark.parametrize("code", [10000, 10001])
def test_bokeh_close_codes_keep_their_reason(code):
    ''' Closes with Bokeh's out-of-range codes keep code and reason in the error. '''
    def script(peer: Peer) -> None:
        peer.upgrade()
        peer.send_ack()
        peer.recv_message()
        peer.send_close(code, "server failed to parse a message")
    with FakeServer(script) as fake:
        session = ClientSession(websocket_url=fake.ws_url)
        session.connect()
        with pytest.raises(ConnectionLost, match="failed to parse") as info:
            session.force_roundtrip()
        assert session.error_code == code and str(code) in str(info.value)
        assert session.error_reason is ErrorReason.NETWORK_ERROR
        session.close()


def test_garbage_after_close():
    ''' Bytes after the close frame: the connection ends cleanly with an error, nothing hangs. '''
    def script(peer: Peer) -> None:
        peer.upgrade()
        peer.send_ack()
        peer.recv_message()
        peer.send_raw(bytes([0x88, 2]) + struct.pack("!H", 1011) + b"\x81\x05junk!")
    with FakeServer(script) as fake:
        session = ClientSession(websocket_url=fake.ws_url)
        session.connect()
        with pytest.raises((ConnectionLost, ProtocolViolation)):
            session.force_roundtrip(timeout=LONG)
        assert not session.connected and session.error_reason is ErrorReason.NETWORK_ERROR
        session.close()
