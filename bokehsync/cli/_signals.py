''' Stopping the demo's main process cleanly on Ctrl-C and SIGTERM. '''
from __future__ import annotations

import contextlib
import select
import signal
import socket
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

__all__ = (
    'StopSignals',
    'sigint_ignored',
)


class StopSignals:
    ''' While active (in the main thread): the first SIGINT or SIGTERM asks
    the demo to stop (:attr:`requested` names it) and wakes :meth:`pause` at
    once; a second one raises ``KeyboardInterrupt`` (stop waiting for the
    clean stop). Elsewhere than the main thread it does nothing.

    A flag rather than an exception, so a signal never interrupts the main
    process in the middle of a document change or a send; the wakeup socket
    (``signal.set_wakeup_fd``) ends the pause without polling.
    '''

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}
        self._previous_fd = -1
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self._previous:
            signal.set_wakeup_fd(self._previous_fd)
        self._reader.close()
        self._writer.close()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def pause(self, seconds: float) -> None:
        ''' Wait ``seconds``, or less if a stop is requested. '''
        if self.requested is None and seconds > 0:
            select.select([self._reader], [], [], seconds)
        with contextlib.suppress(BlockingIOError):
            while self._reader.recv(512):
                pass


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    ''' Children started inside inherit an ignored SIGINT (main thread only). '''
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to do
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
