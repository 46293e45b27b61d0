''' Just enough RFC 6455 for the test side: build frames, and follow a byte
stream of frames (either direction) to count websocket and Bokeh messages.

Written independently of ``bokehsync._frames`` on purpose: the tests' view of
the wire must not share the code under test.
'''
from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from typing import Any

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bool = False,
        length_bytes: int | None = None) -> bytes:
    ''' One websocket frame.

    Args:
        opcode (int) : any 4-bit value, valid or not
        payload (bytes) : the payload
        fin (bool) : the FIN bit
        rsv (int) : the three reserved bits, 0-7
        mask (bool) : mask it with a random key (as a client must)
        length_bytes (int, optional) : force the length encoding: 0 (7-bit),
            2 (16-bit) or 8 (64-bit); by default the shortest
    '''
    n = len(payload)
    first = (0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0x0F)
    if length_bytes is None:
        length_bytes = 0 if n < 126 else 2 if n < 1 << 16 else 8
    maskbit = 0x80 if mask else 0
    if length_bytes == 0:
        head = struct.pack("!BB", first, maskbit | n)
    elif length_bytes == 2:
        head = struct.pack("!BBH", first, maskbit | 126, n)
    else:
        head = struct.pack("!BBQ", first, maskbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class FrameFollower:
    ''' Follow one direction of a websocket connection, fed its bytes in any
    pieces (HTTP upgrade first). Cheap on large payloads: only the header
    message of each Bokeh message and control frames are decoded.

    ``msgtypes`` lists the ``msgtype`` of every Bokeh message seen, in order;
    ``controls`` the opcode of every control frame; ``close_codes`` the code of
    each close frame (None if it had none). ``on_message(header)`` is called
    with each Bokeh header as it completes.
    '''

    def __init__(self, on_message: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.msgtypes: list[str] = []
        self.headers: list[dict[str, Any]] = []
        self.controls: list[int] = []
        self.close_codes: list[int | None] = []
        self.on_message = on_message
        self._http = bytearray()
        self._upgraded = False
        self._buf = bytearray()
        self._need = 2          # bytes wanted next (header, or payload to skip/keep)
        self._in_payload = False
        self._opcode = 0
        self._fin = True
        self._key: bytes | None = None
        self._keep = False      # keep this payload (control frames, Bokeh headers)
        self._kept = bytearray()
        self._msg_opcode: int | None = None
        self._msg_kept = bytearray()
        self._msg_keep = False
        self._remaining = 0     # websocket messages left in the current Bokeh message

    def feed(self, data: bytes) -> None:
        if not self._upgraded:
            self._http += data
            end = self._http.find(b"\r\n\r\n")
            if end < 0:
                return
            data = bytes(self._http[end + 4:])
            self._upgraded = True
            self._http = bytearray()
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            if self._in_payload:
                take = min(self._need, len(view) - pos)
                if self._keep:
                    self._kept += view[pos:pos + take]
                self._need -= take
                pos += take
                if self._need == 0:
                    self._end_frame()
                continue
            take = min(self._need - len(self._buf), len(view) - pos)
            self._buf += view[pos:pos + take]
            pos += take
            if len(self._buf) < self._need:
                continue
            self._parse_header()

    def _parse_header(self) -> None:
        b0, b1 = self._buf[0], self._buf[1]
        n = b1 & 0x7F
        need = 2 + (2 if n == 126 else 8 if n == 127 else 0) + (4 if b1 & 0x80 else 0)
        if len(self._buf) < need:
            self._need = need
            return
        if n == 126:
            n = struct.unpack_from("!H", self._buf, 2)[0]
        elif n == 127:
            n = struct.unpack_from("!Q", self._buf, 2)[0]
        self._key = bytes(self._buf[need - 4:need]) if b1 & 0x80 else None
        self._opcode, self._fin = b0 & 0x0F, bool(b0 & 0x80)
        self._buf = bytearray()
        if self._opcode >= 0x8:
            self._keep = True
        else:
            if self._opcode != OP_CONT:
                self._msg_opcode = self._opcode
                self._msg_keep = self._remaining == 0 and self._opcode == OP_TEXT
                self._msg_kept = bytearray()
            self._keep = self._msg_keep
        self._kept = bytearray()
        self._in_payload = True
        self._need = n
        if n == 0:
            self._end_frame()

    def _unmasked(self) -> bytes:
        data = bytes(self._kept)
        if self._key is None:
            return data
        key = self._key
        return bytes(b ^ key[i % 4] for i, b in enumerate(data))

    def _end_frame(self) -> None:
        self._in_payload = False
        self._need = 2
        payload = self._unmasked() if self._keep else b""
        if self._opcode >= 0x8:
            self.controls.append(self._opcode)
            if self._opcode == OP_CLOSE:
                self.close_codes.append(struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None)
            return
        if self._msg_keep:
            self._msg_kept += payload
        if not self._fin:
            return
        if self._remaining == 0:
            header: dict[str, Any] = {}
            if self._msg_keep:
                try:
                    header = json.loads(bytes(self._msg_kept))
                except ValueError:
                    header = {}
            if not isinstance(header, dict):
                header = {}
            self._remaining = 2 + 2 * int(header.get("num_buffers", 0) or 0)
            self.msgtypes.append(str(header.get("msgtype", "?")))
            self.headers.append(header)
            if self.on_message is not None:
                self.on_message(header)
        else:
            self._remaining -= 1
        self._msg_keep = False
        self._msg_kept = bytearray()
