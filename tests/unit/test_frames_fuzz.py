''' Structure-aware fuzzing of the websocket frame parser against a reference model.

Uniformly random bytes are rejected at the first two header bytes almost
always, so they never reach payloads, fragmentation, masking or close
handling. These strategies build frame streams the way a server writes them
(valid headers with random opcodes, flags and length encodings; messages split
into fragments with control frames between them; close frames with and
without code and reason) and then break them in targeted ways (reserved bits,
a mask, an unknown opcode, a fragmented or oversize control frame, a
continuation out of place, a message over the limit, invalid UTF-8, a
truncated stream, bytes after the close frame). Each stream is fed in random
pieces; the parser must produce exactly the events of a straightforward
reference model of RFC 6455 (as bokehsync applies it), and raise
ProtocolViolation exactly when the model says the stream is invalid.
'''
from __future__ import annotations

import struct
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bokehsync import ProtocolViolation, _frames
from tests.support.wsframes import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, frame

CONTROL = (OP_CLOSE, OP_PING, OP_PONG)
RESERVED = (0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF)


# The reference model ---------------------------------------------------------------

@dataclass
class Outcome:
    events: list[object]
    violation: bool


def model(data: bytes, max_size: int, discard_binary: bool = False) -> Outcome:
    ''' What the parser must return for ``data`` as a whole: its events, and whether it is invalid. '''
    events: list[object] = []
    pos, n = 0, len(data)
    msg_opcode: int | None = None
    parts: list[bytes] = []
    size = 0

    def bad() -> Outcome:
        return Outcome(events, True)
    while pos < n:
        if n - pos < 2:
            break
        b0, b1 = data[pos], data[pos + 1]
        if b1 & 0x80:
            return bad()  # a server must not mask
        length = b1 & 0x7F
        need = 2 + (2 if length == 126 else 8 if length == 127 else 0)
        if n - pos < need:
            break
        if length == 126:
            length = struct.unpack_from("!H", data, pos + 2)[0]
        elif length == 127:
            length = struct.unpack_from("!Q", data, pos + 2)[0]
            if length >> 63:
                return bad()
        fin, rsv, opcode = bool(b0 & 0x80), b0 & 0x70, b0 & 0x0F
        if rsv:
            return bad()
        if opcode in CONTROL:
            if not fin or length > 125:
                return bad()
        elif opcode in (OP_CONT, OP_TEXT, OP_BINARY):
            if (opcode == OP_CONT) == (msg_opcode is None):
                return bad()  # a continuation of nothing, or a new message inside one
            if size + length > max_size:
                return bad()  # refused from the header, before the payload
        else:
            return bad()
        start = pos + need
        if n - start < length:
            break  # the stream ends inside this frame's payload
        payload = data[start:start + length]
        pos = start + length
        if opcode == OP_PING:
            events.append(_frames.Ping(payload))
        elif opcode == OP_PONG:
            events.append(_frames.Pong(payload))
        elif opcode == OP_CLOSE:
            if len(payload) == 1:
                return bad()
            code = struct.unpack_from("!H", payload)[0] if payload else None
            events.append(_frames.Close(code, payload[2:].decode("utf-8", "replace")))
            if pos < n:
                return bad()  # nothing may follow the close frame
            break
        else:
            if opcode != OP_CONT:
                msg_opcode = opcode
            parts.append(payload)
            size += length
            if fin:
                whole = b"".join(parts)
                if msg_opcode == OP_TEXT:
                    try:
                        events.append(whole.decode("utf-8"))
                    except UnicodeDecodeError:
                        return bad()
                else:
                    events.append(b"" if discard_binary else whole)
                msg_opcode, parts, size = None, [], 0
    return Outcome(events, False)


# Strategies ------------------------------------------------------------------------

@st.composite
def close_payloads(draw) -> bytes:
    kind = draw(st.sampled_from(["empty", "code", "code+reason", "one byte", "bad utf-8 reason",
                                 "bad utf-8 reason"]))
    if kind == "empty":
        return b""
    if kind == "one byte":
        return b"\x03"
    code = struct.pack("!H", draw(st.sampled_from([1000, 1001, 1002, 1009, 1011, 3000, 4999, 10000, 10001, 65535])))
    if kind == "code":
        return code
    if kind == "bad utf-8 reason":
        return code + b"\xff\xfe" + draw(st.binary(max_size=20))
    return code + draw(st.text(max_size=40)).encode("utf-8")[:123]


@st.composite
def control_frames(draw) -> bytes:
    opcode = draw(st.sampled_from(CONTROL))
    payload = draw(close_payloads()) if opcode == OP_CLOSE else draw(st.binary(max_size=125))
    return frame(opcode, payload)


def _length_bytes(draw, n: int) -> int | None:
    ''' Mostly the shortest length encoding, sometimes a longer (non-minimal) one. '''
    choices = [None, None, None, 8] + ([2] if n < 1 << 16 else [])
    return draw(st.sampled_from(choices))


@st.composite
def data_messages(draw) -> bytes:
    ''' One text or binary message, split into fragments, with control frames (not close) between. '''
    text = draw(st.booleans())
    if text:
        body = draw(st.text(max_size=200)).encode("utf-8")
        if draw(st.integers(0, 9)) == 0:
            body += b"\xc3"  # cut in the middle of a character: invalid UTF-8
    else:
        body = draw(st.binary(max_size=300))
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    out = b""
    for i, piece in enumerate(pieces):
        if i:
            for control in draw(st.lists(control_frames().filter(lambda f: f[0] & 0x0F != OP_CLOSE), max_size=2)):
                out += control
        opcode = (OP_TEXT if text else OP_BINARY) if i == 0 else OP_CONT
        out += frame(opcode, piece, fin=i == len(pieces) - 1, length_bytes=_length_bytes(draw, len(piece)))
    return out


@st.composite
def broken_frames(draw) -> bytes:
    ''' One frame that breaks a rule, or sits where it must not. '''
    kind = draw(st.sampled_from(["rsv", "masked", "reserved opcode", "fragmented control", "long control",
                                 "lone continuation", "length top bit", "unfinished start"]))
    payload = draw(st.binary(max_size=20))
    if kind == "rsv":
        return frame(draw(st.sampled_from([OP_TEXT, OP_BINARY, OP_PING])), payload, rsv=draw(st.integers(1, 7)))
    if kind == "masked":
        return frame(draw(st.sampled_from([OP_TEXT, OP_BINARY, OP_PING, OP_CLOSE])), payload, mask=True)
    if kind == "reserved opcode":
        return frame(draw(st.sampled_from(RESERVED)), payload)
    if kind == "fragmented control":
        return frame(draw(st.sampled_from([OP_PING, OP_PONG])), payload, fin=False)
    if kind == "long control":
        return frame(OP_PING, bytes(126))
    if kind == "lone continuation":
        return frame(OP_CONT, payload)
    if kind == "length top bit":
        return bytes([0x82, 127]) + struct.pack("!Q", (1 << 63) | len(payload)) + payload
    return frame(OP_BINARY, payload, fin=False)  # a message left unfinished; what follows breaks it


@st.composite
def streams(draw) -> tuple[bytes, int, bool, list[int]]:
    ''' A server's byte stream, the parser's size limit, discard_binary, and how to cut the stream. '''
    items = draw(st.lists(st.one_of(data_messages(), data_messages(), control_frames().filter(
        lambda f: f[0] & 0x0F != OP_CLOSE), broken_frames()), max_size=8))
    data = b"".join(items)
    if draw(st.integers(0, 3)):  # most streams end with a close frame
        data += frame(OP_CLOSE, draw(close_payloads()))
        if draw(st.integers(0, 3)) == 0:
            data += draw(st.binary(min_size=1, max_size=8))  # bytes after the close frame
    if data and draw(st.integers(0, 4)) == 0:
        data = data[:draw(st.integers(0, len(data) - 1))]  # the stream ends anywhere
    limit = draw(st.sampled_from([0, 10, 100, 250, 1000, 1 << 20]))
    steps = draw(st.lists(st.integers(1, 64), min_size=1, max_size=10))
    return data, limit, draw(st.booleans()), steps


def _feed_in_pieces(parser: _frames.FrameParser, data: bytes, steps: list[int]) -> tuple[list[object], bool]:
    events: list[object] = []
    pos, i = 0, 0
    try:
        while pos < len(data):
            step = steps[i % len(steps)]
            events += parser.feed(data[pos:pos + step])
            pos += step
            i += 1
    except ProtocolViolation:
        return events, True
    return events, False


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_parser_matches_the_reference_model(stream):
    ''' Fed in any pieces, the parser yields exactly the model's events and raises ProtocolViolation
    exactly for the streams the model rejects; nothing else is ever raised. '''
    data, limit, discard, steps = stream
    expected = model(data, limit, discard)
    parser = _frames.FrameParser(limit, "ws://fuzz/ws")
    parser.discard_binary = discard
    events, violated = _feed_in_pieces(parser, data, steps)
    assert violated == expected.violation, (expected, events)
    if violated:
        # Events completed in the same feed() as the violation are lost with it.
        assert events == expected.events[:len(events)]
    else:
        assert events == expected.events


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_splitting_never_changes_the_result(stream):
    ''' The same stream fed whole and fed one byte at a time gives the same events and the same verdict. '''
    data, limit, discard, _ = stream
    whole = _frames.FrameParser(limit)
    whole.discard_binary = discard
    bytewise = _frames.FrameParser(limit)
    bytewise.discard_binary = discard
    a, bad_a = _feed_in_pieces(whole, data, [max(1, len(data))])
    b, bad_b = _feed_in_pieces(bytewise, data, [1])
    assert bad_a == bad_b
    if not bad_a:
        assert a == b


def test_the_strategies_reach_every_path():
    ''' The model sees valid messages, each kind of violation, closes and truncations across examples
    (so the fuzzing above is not stuck rejecting headers). '''
    seen: set[str] = set()

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(streams())
    def collect(stream):
        data, limit, discard, _ = stream
        out = model(data, limit, discard)
        seen.add("violation" if out.violation else "valid")
        for e in out.events:
            seen.add(type(e).__name__)
    collect()
    assert {"valid", "violation", "str", "bytes", "Ping", "Pong", "Close"} <= seen, seen
