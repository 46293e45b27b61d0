''' Websocket framing without sockets: masking, parsing, limits, close codes.
(Fuzzing against a reference model: test_frames_fuzz.py.) '''
from __future__ import annotations

import os
import struct

import pytest
from websocket import ABNF

from bokehsync import ProtocolViolation, _frames
from tests.support import PeakRSS


def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    ''' An unmasked frame as a server sends it. '''
    # Positional: the mask flag is ``mask`` in websocket-client 1.6, ``mask_value`` from 1.7 on.
    frame = ABNF(int(fin), 0, 0, 0, opcode, 0, payload)
    return frame.format()


@pytest.mark.parametrize("size", [0, 1, 3, 125, 126, 4095, 4096, 4097, 65535, 65536, 70001, 3 * (1 << 20) + 7])
def test_masked_frames_match_websocket_client(size):
    ''' Our masked frame is byte for byte what websocket-client would send with the same key. '''
    payload = os.urandom(size)
    key = b"\x01\x82\x43\xf4"
    ours = b"".join(_frames.iter_masked_frame(_frames.OP_BINARY, payload, mask_key=key, chunk=1 << 16))
    theirs = ABNF.create_frame(payload, ABNF.OPCODE_BINARY)
    theirs.get_mask_key = lambda n: key
    assert ours == theirs.format()


def test_parser_assembles_fragmented_messages():
    ''' Continuation frames join into one message; text decodes as UTF-8. '''
    parser = _frames.FrameParser(1 << 20)
    data = server_frame(_frames.OP_TEXT, "hé".encode(), fin=False) + server_frame(0, b"llo")
    data += server_frame(_frames.OP_BINARY, b"\x00\x01")
    assert parser.feed(data) == ["héllo", b"\x00\x01"]


def test_parser_handles_byte_by_byte_input():
    ''' Any split of the byte stream gives the same events. '''
    data = server_frame(_frames.OP_TEXT, b"x" * 300) + server_frame(_frames.OP_PING, b"p")
    parser = _frames.FrameParser(1 << 20)
    events = []
    for i in range(len(data)):
        events += parser.feed(data[i:i + 1])
    assert events == ["x" * 300, _frames.Ping(b"p")]


def test_oversize_frame_refused_from_its_header():
    ''' A header announcing more than max_message_size is refused before any payload arrives. '''
    parser = _frames.FrameParser(1000)
    header = struct.pack("!BBQ", 0x82, 127, 1 << 40)
    with pytest.raises(ProtocolViolation, match="exceeds max_message_size"):
        parser.feed(header)


def test_fragmented_message_over_the_limit_is_refused():
    ''' The limit counts a fragmented message as a whole. '''
    parser = _frames.FrameParser(1000)
    parser.feed(server_frame(_frames.OP_BINARY, b"a" * 600, fin=False))
    with pytest.raises(ProtocolViolation, match="exceeds"):
        parser.feed(server_frame(0, b"a" * 600)[:4])


@pytest.mark.parametrize("code", [1000, 1009, 10000, 10001])
def test_close_codes_outside_rfc_range_are_kept(code):
    ''' Bokeh's 10000/10001 closes keep their code and reason. '''
    parser = _frames.FrameParser(1000)
    payload = struct.pack("!H", code) + b"server failed to parse a message"
    assert parser.feed(server_frame(_frames.OP_CLOSE, payload)) == [
        _frames.Close(code, "server failed to parse a message")]


@pytest.mark.parametrize("data, what", [
    (b"\x82\x85abcd", "masked"),
    (b"\xc2\x00", "reserved"),
    (b"\x83\x00", "unknown opcode"),
    (b"\x80\x00", "continuation"),
    (b"\x09\x00", "control"),
    (bytes([0x81, 2]) + b"\xff\xfe", "UTF-8"),
])
def test_protocol_violations_are_named(data, what):
    ''' Each frame the protocol forbids gives a ProtocolViolation naming it. '''
    with pytest.raises(ProtocolViolation, match=what):
        _frames.FrameParser(1000).feed(data)


@pytest.mark.parametrize("data, message", [
    (b"\x82\x85abcd", "the server masked a frame"),
    (b"\xc2\x00", "reserved bits set without a negotiated extension"),
    (b"\x83\x00", "unknown opcode 0x3"),
    (b"\x80\x00", "continuation frame without a message to continue"),
    (b"\x09\x00", "fragmented or oversize control frame"),
    (b"\x02\x00\x81\x00", "new message before the previous one ended"),
    (bytes([0x81, 2]) + b"\xff\xfe", "text message is not valid UTF-8"),
    (b"\x82\x7f" + struct.pack("!Q", 1 << 63), "frame length has its top bit set"),
    (b"\x82\x7f" + struct.pack("!Q", 1001), "message of at least 1001 bytes exceeds max_message_size=1000, the "
     "largest message this client accepts: pass a larger max_message_size= to pull_session(), push_session() "
     "or ClientSession()"),
    (b"\x88\x01\x03", "close frame with a one-byte payload"),
    (b"\x88\x00!", "data after the close frame"),
])
def test_violation_messages_exactly(data, message):
    ''' The exact message of each violation, with the URL. '''
    with pytest.raises(ProtocolViolation) as info:
        _frames.FrameParser(1000, "ws://h/ws").feed(data)
    assert str(info.value) == f"websocket protocol violation: {message} [ws://h/ws]"
    assert info.value.url == "ws://h/ws"


def test_data_fed_after_the_close_frame_is_a_violation():
    ''' Bytes fed in a later call, after a close frame completed, are refused too; nothing is. '''
    parser = _frames.FrameParser(1000, "ws://h/ws")
    assert parser.feed(server_frame(_frames.OP_CLOSE, b"")) == [_frames.Close(None, "")]
    assert parser.feed(b"") == []
    with pytest.raises(ProtocolViolation) as info:
        parser.feed(b"x")
    assert str(info.value) == "websocket protocol violation: data after the close frame [ws://h/ws]"


@pytest.mark.parametrize("size", [125, 126, 32767, 32768, 65535, 65536, 70_000])
def test_every_length_encoding_parses(size):
    ''' Payloads around the 7-, 16- and 64-bit length encodings (16-bit lengths above 32767 included)
    come out whole. '''
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert _frames.FrameParser(1 << 20).feed(server_frame(_frames.OP_BINARY, payload)) == [payload]


def test_control_frames_up_to_125_bytes_are_accepted():
    ''' A ping, pong or close of exactly 125 bytes (the largest RFC 6455 allows) is accepted; 126 is not. '''
    parser = _frames.FrameParser(1000)
    assert parser.feed(server_frame(_frames.OP_PING, b"p" * 125)) == [_frames.Ping(b"p" * 125)]
    assert parser.feed(server_frame(_frames.OP_PONG, b"q" * 125)) == [_frames.Pong(b"q" * 125)]
    assert parser.feed(server_frame(_frames.OP_CLOSE, b"\x03\xe8" + b"r" * 123)) == [_frames.Close(1000, "r" * 123)]
    with pytest.raises(ProtocolViolation, match="oversize control frame"):
        _frames.FrameParser(1000).feed(server_frame(_frames.OP_PING, b"p" * 126))


def test_data_after_close_is_a_violation():
    ''' Garbage after the close frame is refused. '''
    parser = _frames.FrameParser(1000)
    with pytest.raises(ProtocolViolation, match="after the close"):
        parser.feed(server_frame(_frames.OP_CLOSE, struct.pack("!H", 1000)) + b"junk")


def test_empty_frames_complete_at_once():
    ''' A zero-length frame at the end of the input completes without waiting for more bytes. '''
    parser = _frames.FrameParser(1000)
    assert parser.feed(server_frame(_frames.OP_TEXT, b"")) == [""]
    assert parser.feed(server_frame(_frames.OP_CLOSE, b"")) == [_frames.Close(None, "")]


def test_discarded_binary_payload_is_never_stored():
    ''' With discard_binary set, a 256 MiB binary message is consumed without keeping its bytes:
    resident memory grows far less than its size; text and later binary messages are kept. '''
    size = 256 << 20
    parser = _frames.FrameParser(1 << 30)
    parser.discard_binary = True
    piece = bytes(1 << 20)  # the same piece fed again and again: the feeding holds 1 MiB
    events = []
    with PeakRSS() as memory:
        events += parser.feed(struct.pack("!BBQ", 0x82, 127, size))
        for _ in range(size // len(piece)):
            events += parser.feed(piece)
    assert memory.growth_mib < 32, f"resident memory grew {memory.growth_mib:.0f} MiB"
    parser.discard_binary = False
    events += parser.feed(server_frame(_frames.OP_TEXT, b"text") + server_frame(_frames.OP_BINARY, b"kept"))
    assert events == [b"", "text", b"kept"]
