''' The connected socket: every byte in and out of one connection.

Reads and writes may come from different threads (the reader thread reads,
callers write). An ``ssl.SSLSocket`` must not be entered by two threads at
once, so every call into the socket object holds ``socket_mutex``, and the
socket is non-blocking so that no thread ever waits for the network while
holding it: waiting happens in ``select`` with the mutex released. Plain
``ws://`` sockets take the same path, so there is one design to test.

Only the reader thread closes the socket (after it stopped reading), except
when there is no reader thread; a wake-up socket pair interrupts its
``select`` when the connection is being closed.
'''
from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from collections.abc import Iterable

__all__ = (
    'Transport',
    'WouldBlockTimeout',
)

_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)

#: Bytes asked of the socket per read.
RECV_SIZE = 1 << 18

#: Bytes handed to one ``send`` call.
SEND_SIZE = 1 << 20

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


class WouldBlockTimeout(TimeoutError):
    ''' The socket did not become ready before the deadline. '''


class Transport:
    ''' Thread-safe, deadline-bounded I/O on one connected socket.

    Args:
        sock (socket.socket) : the socket, after the websocket handshake
    '''

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.socket_mutex = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._closed = False
        self._quickack = _QUICKACK is not None and sock.family in (socket.AF_INET, socket.AF_INET6)
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._rearm_quickack()

    def _rearm_quickack(self) -> None:
        # Bokeh's server writes each message as several small frames with
        # Nagle's algorithm on; a delayed ACK here holds its next frame back
        # for ~40 ms. Linux clears TCP_QUICKACK after use, so re-arm it
        # after every read.
        if self._quickack:
            try:
                self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)  # type: ignore[arg-type]
            except OSError:
                self._quickack = False

    def recv(self, buf: bytearray | memoryview, deadline: float | None = None) -> int:
        ''' Read into ``buf``; block (mutex released) until something arrives.

        Called by one thread at a time (the reader thread, or the connecting
        thread before there is one).

        Args:
            buf (bytearray) : where to put the bytes
            deadline (float, optional) : a ``time.monotonic()`` limit

        Returns:
            int : bytes read; 0 at end of stream or once :meth:`wake` was called

        Raises:
            WouldBlockTimeout, OSError
        '''
        while True:
            if self._closed:
                return 0
            with self.socket_mutex:
                try:
                    n = self.sock.recv_into(buf)
                except _WOULD_BLOCK:
                    n = -1
                else:
                    self._rearm_quickack()
            if n >= 0:
                return n
            self._wait(read=True, deadline=deadline)

    def send(self, chunks: Iterable[bytes | bytearray | memoryview], deadline: float | None = None) -> None:
        ''' Write every chunk completely, in order.

        The caller holds the connection's send lock so that chunks of two
        messages never interleave.

        Args:
            chunks (iterable of bytes-like) : what to write
            deadline (float, optional) : a ``time.monotonic()`` limit

        Raises:
            WouldBlockTimeout, OSError
        '''
        for chunk in chunks:
            view = memoryview(chunk).cast("B")
            off, n = 0, len(view)
            while off < n:
                if self._closed:
                    raise BrokenPipeError("the connection is closed")
                piece = view[off:off + SEND_SIZE]
                with self.socket_mutex:
                    try:
                        sent = self.sock.send(piece)
                    except ssl.SSLWantReadError:
                        sent = -1
                    except _WOULD_BLOCK:
                        sent = 0
                if sent > 0:
                    off += sent
                else:
                    self._wait(read=sent < 0, deadline=deadline, write=sent == 0)

    def _wait(self, read: bool, deadline: float | None, write: bool = False) -> None:
        timeout = None
        if deadline is not None:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                raise WouldBlockTimeout("the socket did not become ready in time")
        rlist = [self._wake_r]
        if read:
            rlist.append(self.sock)
        wlist = [self.sock] if write else []
        ready, _, _ = select.select(rlist, wlist, [], timeout)
        if self._wake_r in ready:
            try:
                self._wake_r.recv(64)
            except _WOULD_BLOCK:
                pass

    def wake(self) -> None:
        ''' Interrupt a thread waiting in :meth:`recv` or :meth:`send` (any thread). '''
        try:
            self._wake_w.send(b"x")
        except (OSError, ValueError):
            pass

    def mark_closing(self) -> None:
        ''' Make every later read return 0 and every write fail; wake waiters. '''
        self._closed = True
        self.wake()

    def close(self) -> None:
        ''' Shut the socket down and release it (the owner of the socket only). '''
        self._closed = True
        with self.socket_mutex:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
        self._wake_r.close()
        self._wake_w.close()

    def forget(self) -> None:
        ''' Release this process's copy of the descriptors without shutting the
        connection down (a forked child holding its parent's socket).
        '''
        self._closed = True
        for s in (self.sock, self._wake_r, self._wake_w):
            # close() releases only this process's descriptor; unlike
            # shutdown() it leaves the parent's connection untouched.
            try:
                s.close()
            except OSError:
                pass
