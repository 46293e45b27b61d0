''' When to ping, and when a silent peer counts as dead. Pure timing logic.

The reader thread asks :meth:`Keepalive.deadline` how long it may wait for
data, tells :meth:`Keepalive.traffic` whenever bytes arrive, and calls
:meth:`Keepalive.expired` when the wait ran out.
'''
from __future__ import annotations

import time

__all__ = (
    'Keepalive',
)


class Keepalive:
    ''' Idle-ping schedule of one connection.

    Args:
        interval (float or None) : seconds of silence before a ping; None
            turns keepalive off
        timeout (float) : seconds to wait for any answer to a ping
    '''

    def __init__(self, interval: float | None, timeout: float) -> None:
        self.interval = interval
        self.timeout = timeout
        self._last = time.monotonic()
        self._pinged: float | None = None

    def traffic(self) -> None:
        ''' Bytes arrived: the peer is alive. '''
        self._last = time.monotonic()
        self._pinged = None

    def deadline(self) -> float | None:
        ''' The ``time.monotonic()`` time to stop waiting for data, or None. '''
        if self.interval is None:
            return None
        if self._pinged is not None:
            return self._pinged + self.timeout
        return self._last + self.interval

    def expired(self) -> bool:
        ''' The wait ran out: True if a ping went unanswered for ``timeout``
        (the peer is dead), False if it is time to send a ping.
        '''
        return self._pinged is not None and time.monotonic() >= self._pinged + self.timeout

    def pinged(self) -> None:
        ''' A ping was sent now. '''
        self._pinged = time.monotonic()
