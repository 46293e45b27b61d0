''' A scripted raw-websocket server on 127.0.0.1, for what a real Bokeh server
will not do: stall, misbehave, send malformed frames.

A test gives a *script*: a function called (on a thread of its own) with a
:class:`Peer` for each accepted connection. The peer speaks just enough
websocket: the upgrade, reading masked client frames, writing frames.

A script that raises fails the test: leaving the ``with FakeServer(...)``
block raises the first error of any script (a broken fake server must not
pass for a broken client). Two endings are not errors: the client going away
while the script reads from it (:class:`ClientGone`, the normal end of a
connection; a script that needed more from the client fails the test from
the client's side), and errors caused by the server's own shutdown at the end
of the block. Anything else a script does not expect, a reset while it
writes included, must be caught by the script itself.
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

from tests.support import LONG
from tests.support.wsframes import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class ClientGone(ConnectionError):
    ''' The client closed the connection (or sent a close frame) while the script read. '''


class Peer:
    ''' One accepted client connection, seen from the server. '''

    def __init__(self, sock: socket.socket, index: int) -> None:
        self.sock = sock
        self.sock.settimeout(LONG)
        self.index = index
        self.request = b""
        self._buf = bytearray()

    # handshake ---------------------------------------------------------------
    def read_request(self) -> bytes:
        while b"\r\n\r\n" not in self._buf:
            chunk = self._recv(4096)
            if not chunk:
                raise ClientGone("client went away during the handshake")
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

    def accept_key(self) -> str:
        key = self.header("Sec-WebSocket-Key") or ""
        return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()

    def upgrade(self, read: bool = True) -> None:
        ''' Answer the upgrade request (read it first, unless ``read`` is False: read already). '''
        if read:
            self.read_request()
        self.sock.sendall((
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {self.accept_key()}\r\nSec-WebSocket-Protocol: bokeh\r\n\r\n").encode())

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
        self.send_frame(OP_TEXT, text.encode())

    def send_binary(self, data: bytes) -> None:
        self.send_frame(OP_BINARY, data)

    def send_close(self, code: int | None, reason: str = "") -> None:
        payload = b"" if code is None else struct.pack("!H", code) + reason.encode()
        self.send_frame(OP_CLOSE, payload)

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

    def reply(self, request: dict[str, Any], msgtype: str = "OK", content: Any = None) -> None:
        ''' Answer ``request`` (from :meth:`recv_message`) with a message carrying its id as reqid. '''
        msgid = request["header"]["msgid"]
        self.send_message(msgtype, content, reqid=msgid, msgid=f"re-{msgid}")

    def _recv(self, n: int) -> bytes:
        try:
            return self.sock.recv(n)
        except ConnectionResetError as e:
            raise ClientGone("client reset the connection") from e

    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self._recv(65536)
            if not chunk:
                raise ClientGone("client closed the connection")
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
        ''' One whole Bokeh message from the client: header, content, buffers.

        Raises:
            ClientGone: the client sent a close frame (answered) or closed the socket
        '''
        def text() -> str:
            while True:
                opcode, data = self.recv_frame()
                if opcode == OP_CLOSE:
                    self._answer_close()
                    raise ClientGone("client sent close")
                if opcode == OP_PING:
                    self.send_frame(OP_PONG, data)
                    continue
                if opcode == OP_PONG:
                    continue
                return data.decode()
        header = json.loads(text())
        text()
        content = json.loads(text())
        for _ in range(header.get("num_buffers", 0)):
            text()
            self.recv_frame()
        return {"header": header, "content": content}

    def _answer_close(self) -> None:
        try:
            self.send_close(1000)
        except OSError:
            pass

    def until_closed(self) -> None:
        ''' Keep reading, answering nothing but pings and the close frame, until the client goes away. '''
        try:
            while True:
                opcode, data = self.recv_frame()
                if opcode == OP_CLOSE:
                    self._answer_close()
                    return
                if opcode == OP_PING:
                    self.send_frame(OP_PONG, data)
        except (ClientGone, ConnectionResetError, BrokenPipeError):
            return

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def hold_open(peer: Peer) -> None:
    ''' Keep reading until the client goes away (answers nothing but pings and close). '''
    peer.until_closed()


class FakeServer:
    ''' Accept connections on 127.0.0.1 (port 0, reported in ``port``) and run
    ``script(peer)`` on a thread of its own for each.

    Use as a context manager; leaving it closes the listener and every peer,
    joins every thread, and raises the first error a script raised before
    that (as an ``AssertionError`` chained to it), unless the block is
    leaving with an exception already.
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
        self._stopping = False
        self._mutex = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._run, name="fakeserver", daemon=True)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/app/ws"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/app"

    @property
    def connections(self) -> int:
        ''' How many connections were accepted so far. '''
        with self._mutex:
            return len(self.peers)

    def _run(self) -> None:
        while not self._stopping:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self._mutex:
                peer = Peer(sock, len(self.peers))
                self.peers.append(peer)
                thread = threading.Thread(target=self._serve, args=(peer,), name="fakeserver-peer", daemon=True)
                self._threads.append(thread)
            thread.start()

    def _serve(self, peer: Peer) -> None:
        try:
            self.script(peer)
        except ClientGone:
            pass
        except BaseException as e:
            if not self._stopping:
                with self._mutex:
                    self.errors.append(e)
        finally:
            self.done.set()

    def check(self) -> None:
        ''' Raise now if a script failed. '''
        with self._mutex:
            errors = list(self.errors)
        if errors:
            raise AssertionError(f"the fake server's script failed: {errors[0]!r}") from errors[0]

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        with self._mutex:
            errors = list(self.errors)
            self._stopping = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self._thread.join(LONG)
        with self._mutex:
            peers, threads = list(self.peers), list(self._threads)
        for peer in peers:
            peer.close()
        for thread in threads:
            thread.join(LONG)
        stuck = [t for t in threads if t.is_alive()]
        if exc_type is not None:
            return
        if errors:
            raise AssertionError(f"the fake server's script failed: {errors[0]!r}") from errors[0]
        assert not stuck, f"{len(stuck)} fake server script(s) did not end"
