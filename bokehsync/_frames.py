''' RFC 6455 websocket framing, without sockets.

websocket-client does the opening handshake (URL, TLS, proxies, headers);
after it, bokehsync frames and parses on its own because it needs things that
websocket-client's frame layer does not give:

* refusing an oversize frame from its header, before its payload is buffered;
* keeping the close code and reason of Bokeh's 10000/10001 closes, which lie
  outside RFC 6455's range and which websocket-client rejects;
* masking large payloads at memory speed (numpy, in chunks) instead of through
  several full-size pure-Python copies;
* one lock-protected socket for reads and writes, which TLS requires (see
  ``_transport``).

Everything here is pure computation on bytes: :class:`FrameParser` is fed
bytes and returns complete websocket messages; :func:`encode_frame` and
:func:`iter_masked_frame` produce the bytes to send.
'''
from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np

from .exceptions import ProtocolViolation

__all__ = (
    'OP_BINARY',
    'OP_CLOSE',
    'OP_PING',
    'OP_PONG',
    'OP_TEXT',
    'Close',
    'FrameParser',
    'Ping',
    'Pong',
    'close_payload',
    'encode_frame',
    'iter_masked_frame',
)

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_DATA_OPCODES = (OP_CONT, OP_TEXT, OP_BINARY)
_CONTROL_OPCODES = (OP_CLOSE, OP_PING, OP_PONG)

#: Payloads up to this size are masked with Python integers in one step and
#: come out of :func:`iter_masked_frame` as one piece, header included;
#: larger ones are masked with numpy, a chunk at a time, after the header.
SMALL_FRAME = 4096

#: How much of a large payload is masked and handed out per step: small
#: enough to keep the extra memory flat, large enough for few syscalls.
MASK_CHUNK = 1 << 20


@dataclass(frozen=True)
class Close:
    ''' The peer sent a close frame. ``code`` is None when it carried none. '''
    code: int | None
    reason: str


@dataclass(frozen=True)
class Ping:
    ''' The peer sent a ping, to be answered with a pong carrying ``payload``. '''
    payload: bytes


@dataclass(frozen=True)
class Pong:
    ''' The peer answered one of our pings. '''
    payload: bytes


#: What :meth:`FrameParser.feed` returns: complete text (``str``) and binary
#: (``bytes``) messages, and control events, in wire order.
Event: TypeAlias = "str | bytes | Close | Ping | Pong"


def _frame_header(opcode: int, length: int, mask_key: bytes, fin: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        return struct.pack("!BB", first, 0x80 | length) + mask_key
    if length < (1 << 16):
        return struct.pack("!BBH", first, 0x80 | 126, length) + mask_key
    return struct.pack("!BBQ", first, 0x80 | 127, length) + mask_key


def _mask_small(data: bytes | bytearray | memoryview, key: bytes) -> bytes:
    n = len(data)
    if n == 0:
        return b""
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")).to_bytes(n, "little")


def _mask_chunk(data: memoryview, key32: np.ndarray, key: bytes) -> bytearray:
    ''' Mask ``data``, which starts at a multiple of 4 in the payload. '''
    n = len(data)
    n4 = n - (n % 4)
    out = bytearray(n)
    if n4:
        np.bitwise_xor(np.frombuffer(data[:n4], dtype=np.uint32), key32,
                       out=np.frombuffer(out, dtype=np.uint32, count=n4 // 4))
    if n4 != n:
        out[n4:] = _mask_small(data[n4:], key)
    return out


def encode_frame(opcode: int, payload: bytes | bytearray | memoryview, mask_key: bytes | None = None) -> bytes:
    ''' Encode one small, final, masked client frame.

    Args:
        opcode (int) : the websocket opcode
        payload (bytes-like) : the payload, at most a few KiB (see :func:`iter_masked_frame`)
        mask_key (bytes, optional) : four bytes; random when None

    Returns:
        bytes : the whole frame
    '''
    key = os.urandom(4) if mask_key is None else mask_key
    return _frame_header(opcode, len(payload), key) + _mask_small(payload, key)


def iter_masked_frame(opcode: int, payload: bytes | bytearray | memoryview,
        mask_key: bytes | None = None, chunk: int = MASK_CHUNK) -> Iterator[bytes | bytearray]:
    ''' Encode one final, masked client frame as a sequence of byte strings
    whose concatenation is the frame, masking at most ``chunk`` bytes at a
    time so a large payload never exists twice in full.

    Args:
        opcode (int) : the websocket opcode
        payload (bytes-like) : the payload, of any size
        mask_key (bytes, optional) : four bytes; random when None
        chunk (int, optional) : bytes masked per step, a multiple of 4

    Yields:
        bytes : the header first, then the masked payload in pieces
    '''
    key = os.urandom(4) if mask_key is None else mask_key
    view = memoryview(payload).cast("B")
    n = len(view)
    header = _frame_header(opcode, n, key)
    if n <= SMALL_FRAME:
        yield header + _mask_small(view, key)
        return
    yield header
    key32 = np.frombuffer(key, dtype=np.uint32)[0]
    for start in range(0, n, chunk):
        yield _mask_chunk(view[start:start + chunk], key32, key)


def close_payload(code: int, reason: str) -> bytes:
    ''' The payload of a close frame: the code, then at most 123 bytes of UTF-8 reason. '''
    raw = reason.encode("utf-8")[:123]
    return struct.pack("!H", code) + raw.decode("utf-8", "ignore").encode("utf-8")


class FrameParser:
    ''' Turn the bytes a server sends into websocket messages and control events.

    Feed it whatever the socket returned; it returns every event that became
    complete. Anything the protocol forbids raises :class:`ProtocolViolation`
    and the parser must not be used again.

    A data frame whose announced length would take its message past
    ``max_message_size`` is refused as soon as its header is read, before any
    of its payload is held in memory.

    Args:
        max_message_size (int) : the largest message accepted, in bytes
        url (str, optional) : named in the exceptions
    '''

    def __init__(self, max_message_size: int, url: str | None = None) -> None:
        self._max = max_message_size
        self._url = url
        self._buf = bytearray()        # bytes of a frame header not yet complete
        self._payload: bytearray | None = None   # the current frame's payload, once allocated
        self._length = -1                        # its length; -1 between frames
        self._filled = 0
        self._opcode = 0
        self._fin = True
        self._msg_opcode: int | None = None   # opcode of a fragmented message in progress
        self._msg_parts: list[bytearray] = []
        self._msg_size = 0
        self._binary = False
        self._discarded = False
        self.closed = False
        #: Set by the owner to drop the payloads of binary messages unread
        #: (their events become ``b""``); checked as the bytes arrive.
        self.discard_binary = False

    def _violation(self, what: str) -> ProtocolViolation:
        self.closed = True
        return ProtocolViolation(f"websocket protocol violation: {what}", self._url)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        ''' Consume bytes from the socket.

        Args:
            data (bytes-like) : the next bytes the server sent

        Returns:
            list : the messages and control events completed by ``data``

        Raises:
            ProtocolViolation
        '''
        if self.closed:
            if len(data):
                raise self._violation("data after the close frame")
            return []
        events: list[Event] = []
        view = memoryview(data).cast("B")
        pos, n = 0, len(view)
        while True:
            if self._length < 0:
                if pos >= n:
                    break
                pos = self._read_header(view, pos)
                if self._length < 0:
                    continue
            take = min(n - pos, self._length - self._filled)
            if take:
                if self.discard_binary and self._binary:
                    self._discarded = True
                else:
                    if self._payload is None:
                        # Allocated at the first byte kept, so a discarded
                        # payload never costs memory.
                        self._payload = bytearray(self._length)
                    self._payload[self._filled:self._filled + take] = view[pos:pos + take]
                self._filled += take
                pos += take
            if self._filled < self._length:
                break
            event = self._finish_frame()
            if event is not None:
                events.append(event)
            if self.closed:
                if pos < n:
                    raise self._violation("data after the close frame")
                break
        return events

    def _read_header(self, view: memoryview, pos: int) -> int:
        ''' Accumulate header bytes; set up ``_payload`` once the header is whole. '''
        need = 2
        buf = self._buf
        while True:
            if len(buf) < need:
                take = min(need - len(buf), len(view) - pos)
                buf += view[pos:pos + take]
                pos += take
                if len(buf) < need:
                    return pos
            b0, b1 = buf[0], buf[1]
            if b1 & 0x80:
                raise self._violation("the server masked a frame")
            length = b1 & 0x7F
            if length == 126:
                need = 4
            elif length == 127:
                need = 10
            if len(buf) >= need:
                break
        if length == 126:
            length = struct.unpack_from("!H", buf, 2)[0]
        elif length == 127:
            length = struct.unpack_from("!Q", buf, 2)[0]
            if length >> 63:
                raise self._violation("frame length has its top bit set")
        self._buf = bytearray()
        fin, opcode = bool(b0 & 0x80), b0 & 0x0F
        if b0 & 0x70:
            raise self._violation("reserved bits set without a negotiated extension")
        if opcode in _CONTROL_OPCODES:
            if not fin or length > 125:
                raise self._violation("fragmented or oversize control frame")
        elif opcode in _DATA_OPCODES:
            if opcode == OP_CONT and self._msg_opcode is None:
                raise self._violation("continuation frame without a message to continue")
            if opcode != OP_CONT and self._msg_opcode is not None:
                raise self._violation("new message before the previous one ended")
            total = self._msg_size + length
            if total > self._max:
                raise self._violation(
                    f"message of at least {total} bytes exceeds max_message_size={self._max}, the largest "
                    "message this client accepts: pass a larger max_message_size= to pull_session(), "
                    "push_session() or ClientSession()")
        else:
            raise self._violation(f"unknown opcode {opcode:#x}")
        self._opcode, self._fin = opcode, fin
        self._binary = opcode == OP_BINARY or (opcode == OP_CONT and self._msg_opcode == OP_BINARY)
        self._payload = None
        self._length = length
        self._filled = 0
        return pos

    def _finish_frame(self) -> Event | None:
        payload = self._payload if self._payload is not None else bytearray()
        length = self._length
        self._payload, self._length = None, -1
        opcode = self._opcode
        if opcode == OP_PING:
            return Ping(bytes(payload))
        if opcode == OP_PONG:
            return Pong(bytes(payload))
        if opcode == OP_CLOSE:
            self.closed = True
            return self._parse_close(payload)
        if opcode != OP_CONT:
            self._msg_opcode = opcode
        self._msg_parts.append(payload)
        self._msg_size += length
        if not self._fin:
            return None
        msg_opcode = self._msg_opcode
        parts = self._msg_parts
        discarded = self._discarded
        self._msg_opcode, self._msg_parts, self._msg_size, self._discarded = None, [], 0, False
        if discarded:
            return b""
        data = parts[0] if len(parts) == 1 else bytearray().join(parts)
        if msg_opcode == OP_TEXT:
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                raise self._violation("text message is not valid UTF-8") from None
        # bokeh's deserializer takes buffers as ``bytes`` only.
        return bytes(data)

    def _parse_close(self, payload: bytearray) -> Close:
        if len(payload) == 0:
            return Close(None, "")
        if len(payload) == 1:
            raise self._violation("close frame with a one-byte payload")
        code = struct.unpack_from("!H", payload)[0]
        reason = bytes(payload[2:]).decode("utf-8", "replace")
        return Close(code, reason)
