''' A scripted raw-websocket server on 127.0.0.1, for what a real Bokeh server
will not do: stall, misbehave, send malformed frames.

A test gives a *script*: a function called (on the server's thread) with a
:class:`Peer` for each accepted connection. The peer speaks just enough
websocket: the upgrade, reading masked client frames, writing frames.
'''
from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

from bokehsync import _frames

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Peer:
    ''' One accepted client connection, seen from the server. '''

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(30)
        self.request = b""
        self._buf = bytearray()

    # handshake ---------------------------------------------------------------
    def read_request(self) -> bytes:
        while b"\r\n\r\n" not in self._buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("client went away during the handshake")
            self._buf += chunk
        end = self._buf.index(b"\r\n\r\n") + 4
        self.request, self._buf = bytes(self._buf[:end]), self._buf[end:]
        return self.request

    def header(self, name: str) -> str | None:
        for line in self.request.decode("latin-1").split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    def upgrade(self) -> None:
        self.read_request()
        key = self.header("Sec-WebSocket-Key") or ""
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        self.sock.sendall((
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: bokeh\r\n\r\n").encode())

    def respond_http(self, status: int, reason: str, body: bytes = b"") -> None:
        self.read_request()
        self.sock.sendall(f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)

    # frames ------------------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True, rsv: int = 0) -> None:
        n = len(payload)
        first = (0x80 if fin else 0) | rsv | opcode
        if n < 126:
            head = struct.pack("!BB", first, n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", first, 126, n)
        else:
            head = struct.pack("!BBQ", first, 127, n)
        self.sock.sendall(head + payload)

    def send_text(self, text: str) -> None:
        self.send_frame(_frames.OP_TEXT, text.encode())

    def send_binary(self, data: bytes) -> None:
        self.send_frame(_frames.OP_BINARY, data)

    def send_close(self, code: int | None, reason: str = "") -> None:
        payload = b"" if code is None else struct.pack("!H", code) + reason.encode()
        self.send_frame(_frames.OP_CLOSE, payload)

    def send_message(self, msgtype: str, content: Any = None, reqid: str | None = None,
            msgid: str = "s1", buffers: list[tuple[str, bytes]] = ()) -> None:
        header: dict[str, Any] = {"msgid": msgid, "msgtype": msgtype}
        if reqid is not None:
            header["reqid"] = reqid
        if buffers:
            header["num_buffers"] = len(buffers)
        self.send_text(json.dumps(header))
        self.send_text("{}")
        self.send_text(json.dumps(content if content is not None else {}))
        for buffer_id, data in buffers:
            self.send_text(json.dumps({"id": buffer_id}))
            self.send_binary(data)

    def send_ack(self) -> None:
        self.send_message("ACK")

    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("client closed")
            self._buf += chunk
        out, self._buf = bytes(self._buf[:n]), self._buf[n:]
        return out

    def recv_frame(self) -> tuple[int, bytes]:
        b0, b1 = self._read_exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read_exact(8))[0]
        key = self._read_exact(4) if b1 & 0x80 else b"\0\0\0\0"
        data = bytearray(self._read_exact(n))
        for i in range(n):
            data[i] ^= key[i % 4]
        return b0 & 0x0F, bytes(data)

    def recv_message(self) -> dict[str, Any]:
        ''' One whole Bokeh message from the client: header, content, buffers. '''
        def text() -> str:
            while True:
                opcode, data = self.recv_frame()
                if opcode == _frames.OP_CLOSE:
                    raise ConnectionError("client sent close")
                if opcode in (_frames.OP_PING, _frames.OP_PONG):
                    continue
                return data.decode()
        header = json.loads(text())
        text()
        content = json.loads(text())
        for _ in range(header.get("num_buffers", 0)):
            text()
            self.recv_frame()
        return {"header": header, "content": content}

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class FakeServer:
    ''' Accept connections on 127.0.0.1 and run ``script(peer)`` for each.

    Use as a context manager; stopping closes the listener and every peer and
    joins the thread.
    '''

    def __init__(self, script: Callable[[Peer], None]) -> None:
        self.script = script
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.peers: list[Peer] = []
        self.errors: list[BaseException] = []
        self.done = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="fakeserver", daemon=True)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/app/ws"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/app"

    def _run(self) -> None:
        while not self._stop:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            peer = Peer(sock)
            self.peers.append(peer)
            threading.Thread(target=self._serve, args=(peer,), name="fakeserver-peer", daemon=True).start()

    def _serve(self, peer: Peer) -> None:
        try:
            self.script(peer)
        except (ConnectionError, OSError):
            pass
        except BaseException as e:
            self.errors.append(e)
        finally:
            self.done.set()

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for peer in self.peers:
            peer.close()
        self._thread.join(10)


def hold_open(peer: Peer) -> None:
    ''' Keep reading until the client goes away (answers nothing). '''
    try:
        while True:
            opcode, _ = peer.recv_frame()
            if opcode == _frames.OP_CLOSE:
                peer.send_close(1000)
                return
    except (ConnectionError, OSError):
        return
