''' A minimal Bokeh protocol client over a raw websocket: the physical floor.

websocket-client does the opening handshake and reads frames; frames are
written here with an all-zero mask key (legal: RFC 6455 only asks the key
to be unpredictable), so the payload goes to the socket without being copied
or masked. No reader thread, no futures, no document sync: what is left is
serialization, the kernel and the server.
'''
from __future__ import annotations

import json
import socket
import struct
from typing import Any

import websocket
from bokeh.protocol import Protocol
from bokeh.protocol.message import Message
from bokeh.util.token import generate_jwt_token, generate_session_id

__all__ = (
    'RawClient',
)

PROTOCOL = Protocol()

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)
_ZERO_KEY = b"\x00\x00\x00\x00"


def _header(opcode: int, length: int) -> bytes:
    first = 0x80 | opcode
    if length < 126:
        return struct.pack("!BB", first, 0x80 | length) + _ZERO_KEY
    if length < (1 << 16):
        return struct.pack("!BBH", first, 0x80 | 126, length) + _ZERO_KEY
    return struct.pack("!BBQ", first, 0x80 | 127, length) + _ZERO_KEY


class RawClient:
    ''' One websocket to a Bokeh app, speaking the protocol by hand.

    Args:
        ws_url (str) : ``ws://.../app/ws``
        session_id (str, optional) : None for a new random one
        quickack (bool, optional) : re-arm ``TCP_QUICKACK`` before and after
            every read
        timeout (float, optional) : socket timeout in seconds
    '''

    def __init__(self, ws_url: str, session_id: str | None = None, quickack: bool = True,
            timeout: float = 60.0) -> None:
        self.session_id = session_id or generate_session_id()
        self.quickack = quickack and _QUICKACK is not None
        self.ws = websocket.WebSocket(skip_utf8_validation=True)
        self.ws.connect(ws_url, subprotocols=["bokeh", generate_jwt_token(self.session_id)],
                        suppress_origin=True, timeout=timeout)
        self.sock: socket.socket = self.ws.sock
        ack = self.recv_message()
        if ack.msgtype != "ACK":
            raise RuntimeError(f"expected ACK, got {ack.msgtype}")

    def _arm(self) -> None:
        if self.quickack:
            self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)  # type: ignore[arg-type]

    def send_message(self, message: Message[Any]) -> None:
        ''' Write every fragment of ``message``; small frames in one ``sendall``. '''
        parts: list[bytes | memoryview] = []
        texts = [message.header_json, message.metadata_json, message.content_json]
        for text in texts:
            data = text.encode("utf-8")
            parts += [_header(0x1, len(data)), data]
        for buffer in message.buffers:
            ref = json.dumps(buffer.ref).encode("utf-8")
            payload = memoryview(buffer.data).cast("B")
            parts += [_header(0x1, len(ref)), ref, _header(0x2, len(payload))]
            self.sock.sendall(b"".join(parts))  # type: ignore[arg-type]
            parts = []
            self.sock.sendall(payload)
        if parts:
            self.sock.sendall(b"".join(parts))  # type: ignore[arg-type]

    def send_many(self, messages: list[Message[Any]]) -> None:
        ''' Write several messages, small frames joined into large writes. '''
        parts: list[bytes] = []
        size = 0
        for message in messages:
            if message.buffers:
                if parts:
                    self.sock.sendall(b"".join(parts))
                    parts, size = [], 0
                self.send_message(message)
                continue
            for text in (message.header_json, message.metadata_json, message.content_json):
                data = text.encode("utf-8")
                parts += [_header(0x1, len(data)), data]
                size += len(data) + 14
            if size >= 1 << 18:
                self.sock.sendall(b"".join(parts))
                parts, size = [], 0
        if parts:
            self.sock.sendall(b"".join(parts))

    def recv_message(self) -> Message[Any]:
        ''' Read one complete Bokeh message (header, metadata, content, buffers). '''
        frames: list[Any] = []
        for _ in range(3):
            frames.append(self._recv())
        header = json.loads(frames[0])
        message = PROTOCOL.assemble(*frames)
        for _ in range(header.get("num_buffers", 0)):
            ref = json.loads(self._recv())
            message.assemble_buffer(ref, self._recv())
        return message

    def _recv(self) -> Any:
        self._arm()
        data = self.ws.recv()
        self._arm()
        return data

    def request(self, message: Message[Any]) -> Message[Any]:
        ''' Send ``message`` and return the reply to it, skipping anything else. '''
        msgid = message.header["msgid"]
        self.send_message(message)
        for _ in range(1_000_000):
            reply = self.recv_message()
            if reply.header.get("reqid") == msgid:
                return reply
        raise RuntimeError("no reply")

    def close(self) -> None:
        ''' Close the websocket. '''
        try:
            self.ws.close(timeout=2)
        except Exception:
            self.sock.close()
