''' A fault-injection TCP proxy on 127.0.0.1, in front of a real server, that
also watches the websocket traffic it forwards.

Faults can be switched on at any time, or when a number of bytes has passed
in one direction: stall (stop forwarding, keep the sockets open), hold (keep
reading one direction but forward nothing until released), cut (reset both
sides), half-close (end the stream towards the client), corrupt (set the
reserved bits of the next websocket frame header sent to the client), inject
(write raw bytes towards the server).

What passes is counted from outside, as a user's network would see it:
``messages("up")`` lists the Bokeh messages clients sent (by msgtype),
``controls("up")`` their ping/pong/close frames; ``"down"`` the same for the
server. The proxy's own port stays bound for its whole life; the server
behind it can change (``target_port``), which is how tests "restart" a server
without reusing a just-killed port.
'''
from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

from tests.support.wsframes import FrameFollower

_POLL = 0.05  # seconds a pump waits on a socket before re-checking its switches


class _Link:
    ''' One proxied connection: client socket, server socket, two pumps. '''

    def __init__(self, proxy: FaultProxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.closed = False
        self.followers = {"up": FrameFollower(), "down": FrameFollower()}
        self.send_mutex = {"up": threading.Lock(), "down": threading.Lock()}
        self.held: dict[str, list[bytes]] = {"up": [], "down": []}
        self._tick = threading.Event()  # never set: a wait of _POLL seconds
        for s in (client, upstream):
            s.settimeout(_POLL)
        self.threads = [
            threading.Thread(target=self._pump, args=(client, upstream, "up"), name="faultproxy-up", daemon=True),
            threading.Thread(target=self._pump, args=(upstream, client, "down"), name="faultproxy-down",
                             daemon=True),
        ]
        for t in self.threads:
            t.start()

    def _send(self, dst: socket.socket, direction: str, data: bytes) -> None:
        ''' All of ``data``. The sockets time out after ``_POLL`` (for the
        switches), so a peer busy for longer than that (a server handling a
        large message) must not end the pump: a timed-out send is retried.
        '''
        with self.send_mutex[direction]:
            view = memoryview(data)
            while view and not self.closed:
                try:
                    view = view[dst.send(view):]
                except TimeoutError:
                    continue

    def _pump(self, src: socket.socket, dst: socket.socket, direction: str) -> None:
        proxy = self.proxy
        try:
            while not self.closed:
                if self.held[direction] and not proxy.holding[direction]:
                    pending, self.held[direction] = self.held[direction], []
                    self._send(dst, direction, b"".join(pending))
                if proxy.stalled:
                    proxy.resumed.wait(_POLL)
                    continue
                try:
                    data = src.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    # The sender ended its stream: forward what was held first.
                    while proxy.holding[direction] and not self.closed:
                        self._tick.wait(_POLL)
                    if self.held[direction]:
                        pending, self.held[direction] = self.held[direction], []
                        self._send(dst, direction, b"".join(pending))
                    if direction == "up":
                        try:
                            dst.shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                    break
                if direction == "down" and proxy.corrupt_next:
                    proxy.corrupt_next = False
                    data = bytes([data[0] | 0x70]) + data[1:]
                with proxy._mutex:
                    self.followers[direction].feed(data)
                if proxy.holding[direction]:
                    self.held[direction].append(data)
                else:
                    if self.held[direction]:  # released since the check above: what was held goes first
                        data = b"".join([*self.held[direction], data])
                        self.held[direction] = []
                    self._send(dst, direction, data)
                proxy._count(direction, len(data))
        except OSError:
            pass
        finally:
            if direction == "down":
                # The server side ended: end the client side too (after what was held).
                self.shutdown_client()

    def inject(self, direction: str, data: bytes) -> None:
        dst = self.upstream if direction == "up" else self.client
        self._send(dst, direction, data)

    def shutdown_client(self) -> None:
        try:
            self.client.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def reset(self) -> None:
        self.closed = True
        for s in (self.client, self.upstream):
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            s.close()

    def join(self) -> None:
        for t in self.threads:
            t.join(10)


class FaultProxy:
    ''' Forward 127.0.0.1:<port> to 127.0.0.1:<target_port>, with faults on demand.

    Args:
        target_port (int) : the real server's port; may be changed later (new
            connections go to the new one)
    '''

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.links: list[_Link] = []
        self.accepted = 0
        self.stalled = False
        self.holding = {"up": False, "down": False}
        self.resumed = threading.Event()
        self.corrupt_next = False
        self.bytes = {"up": 0, "down": 0}
        self._triggers: list[tuple[str, int, Callable[[], Any]]] = []
        self._mutex = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="faultproxy", daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}/ws"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            self.links.append(_Link(self, client, upstream))

    def _count(self, direction: str, n: int) -> None:
        with self._mutex:
            self.bytes[direction] += n
            total = self.bytes[direction]
            due = [t for t in self._triggers if t[0] == direction and total >= t[1]]
            self._triggers = [t for t in self._triggers if t not in due]
        for _, _, action in due:
            action()

    # What passed --------------------------------------------------------------

    def messages(self, direction: str) -> list[str]:
        ''' The msgtype of every Bokeh message seen in ``direction`` ("up": client to
        server), over all connections, in order per connection. '''
        with self._mutex:
            return [m for link in self.links for m in link.followers[direction].msgtypes]

    def controls(self, direction: str) -> list[int]:
        ''' The opcode of every control frame seen in ``direction`` (0x8 close, 0x9 ping, 0xA pong). '''
        with self._mutex:
            return [c for link in self.links for c in link.followers[direction].controls]

    def count(self, direction: str, msgtype: str) -> int:
        return self.messages(direction).count(msgtype)

    # Faults -------------------------------------------------------------------

    def when(self, direction: str, nbytes: int, action: Callable[[], Any]) -> None:
        ''' Run ``action()`` once ``nbytes`` more bytes passed ``direction`` ("up"/"down"). '''
        with self._mutex:
            self._triggers.append((direction, self.bytes[direction] + nbytes, action))

    def stall(self) -> None:
        ''' Stop forwarding in both directions; sockets stay open, nothing is read. '''
        self.resumed.clear()
        self.stalled = True

    def resume(self) -> None:
        self.stalled = False
        self.resumed.set()

    def hold(self, direction: str) -> None:
        ''' Keep reading ``direction`` (so it is counted) but forward nothing until :meth:`release`. '''
        self.holding[direction] = True

    def release(self, direction: str) -> None:
        ''' Forward what was held in ``direction``, in order, then everything as usual. '''
        self.holding[direction] = False

    def inject(self, direction: str, data: bytes) -> None:
        ''' Write ``data`` into every connection in ``direction``, as if its sender had
        (call it while that side is idle, so it does not split a frame). '''
        for link in list(self.links):
            link.inject(direction, data)

    def cut(self) -> None:
        ''' Reset every proxied connection (RST to both sides). '''
        for link in list(self.links):
            link.reset()

    def half_close(self) -> None:
        ''' End the stream towards every client (FIN), leave the rest open. '''
        for link in list(self.links):
            link.shutdown_client()

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.resume()
        self.holding = {"up": False, "down": False}
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self._thread.join(10)
        self.cut()
        for link in self.links:
            link.join()
