''' A tiny HTTP CONNECT proxy on 127.0.0.1 that counts its tunnels.

Only ``CONNECT host:port`` to a loopback address is served (anything else
gets 403); each tunnel relays bytes both ways on a thread of its own. Stopping
closes the listener and every socket and joins every thread.
'''
from __future__ import annotations

import select
import socket
import threading
from typing import Any

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ConnectProxy:
    ''' Use as a context manager. ``tunnels`` lists the ``host:port`` of each
    CONNECT it served, in order.

    Args:
        status (int, optional) : answer every CONNECT with this status
            instead of 200 (e.g. 407 to play a proxy that wants credentials)
    '''

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port: int = self.listener.getsockname()[1]
        self.tunnels: list[str] = []
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stop = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ConnectProxy:
        self._spawn(self._accept, "proxy-accept")
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop = True
        with self._lock:
            socks = [self.listener, *self._socks]
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for t in list(self._threads):
            t.join(10)

    def _spawn(self, target: Any, name: str, *args: Any) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self._socks.append(client)
            self._spawn(self._tunnel, "proxy-tunnel", client)

    def _tunnel(self, client: socket.socket) -> None:
        try:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = client.recv(4096)
                if not chunk:
                    return
                request += chunk
            head, _, rest = request.partition(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n")[0].decode("latin-1").split(" ", 2)
            host, _, port = target.rpartition(":")
            if method != "CONNECT" or host.strip("[]") not in _LOOPBACK:
                client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            if self.status != 200:
                client.sendall(f"HTTP/1.1 {self.status} Refused\r\nContent-Length: 0\r\n\r\n".encode())
                return
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
            with self._lock:
                self._socks.append(upstream)
            self.tunnels.append(target)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                upstream.sendall(rest)
            self._relay(client, upstream)
        except OSError:
            return

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        while not self._stop:
            ready, _, _ = select.select([a, b], [], [], 1.0)
            for s in ready:
                data = s.recv(65536)
                if not data:
                    return
                peer[s].sendall(data)
