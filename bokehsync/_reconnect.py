''' Reconnecting after an unexpected loss (opt-in): the policy, and the thread that follows it. '''
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .exceptions import BokehSyncError, ConnectionLost

__all__ = (
    'Reconnect',
    'Reconnector',
    'as_policy',
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reconnect:
    ''' Reconnect after an unexpected loss, with exponential backoff.

    After reconnecting the session resynchronises: a pulled session pulls
    again (the server's state wins, as BokehJS does), a pushed session pushes
    its document again (the local state wins).

    Args:
        attempts (int) : attempts before giving up (default: 5)
        initial_delay (float) : seconds before the first attempt (default: 0.2)
        max_delay (float) : the longest wait between attempts (default: 5)
        factor (float) : growth of the wait per attempt (default: 2)
    '''
    attempts: int = 5
    initial_delay: float = 0.2
    max_delay: float = 5.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.initial_delay < 0 or self.max_delay < 0 or self.factor < 1:
            raise ValueError(f"invalid reconnect policy {self!r}")

    def delays(self) -> Iterator[float]:
        ''' The wait before each attempt, in seconds. '''
        delay = self.initial_delay
        for _ in range(self.attempts):
            yield min(delay, self.max_delay)
            delay *= self.factor


def as_policy(value: Reconnect | bool | int | None) -> Reconnect | None:
    ''' The policy a ``reconnect=`` argument asks for.

    ``None``/``False``: none (the default, as ``bokeh.client``); ``True``: the
    default policy; an int: that many attempts; a :class:`Reconnect`: itself.

    Raises:
        TypeError: ``value`` is of none of the accepted types
        ValueError: a policy with attempts below 1, negative delays or a factor below 1
    '''
    if value is None or value is False:
        return None
    if value is True:
        return Reconnect()
    if isinstance(value, Reconnect):
        return value
    if isinstance(value, int):
        return Reconnect(attempts=value)
    raise TypeError(f"reconnect must be None, a bool, an int or a Reconnect, got {value!r}")


#: ``attempt() -> error or None``: one try to reconnect and resynchronise.
Attempt = Callable[[], "BokehSyncError | None"]


class Reconnector:
    ''' The thread ``bokehsync-reconnect-<session>`` that re-establishes a
    lost connection: attempts with backoff until one succeeds, the policy
    gives up, or :meth:`stop` is called (``close()``).

    Args:
        policy (Reconnect) : attempts and delays
        name (str) : the thread's name
        url (str) : named in logs and exceptions
        attempt (callable) : see :data:`Attempt`; runs on the thread
        finish (callable) : ``finish(error)``, called once on the thread when
            an attempt succeeded (None) or the policy gave up (the
            ``ConnectionLost`` to report); not called after :meth:`stop`
    '''

    def __init__(self, policy: Reconnect, name: str, url: str, attempt: Attempt,
            finish: Callable[[BokehSyncError | None], None]) -> None:
        self._policy = policy
        self._url = url
        self._attempt = attempt
        self._finish = finish
        self._stop = threading.Event()
        # A daemon, like the reader: waiting between attempts must not keep
        # the interpreter alive.
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._cause: BaseException | None = None

    def start(self, cause: BaseException) -> None:
        self._cause = cause
        self.thread.start()

    def stop(self, timeout: float) -> None:
        ''' Stop attempting, and wait up to ``timeout`` seconds for the thread
        (unless called from it).
        '''
        self._stop.set()
        if self.thread is not threading.current_thread() and self.thread.ident is not None:
            self.thread.join(timeout)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        policy = self._policy
        last = self._cause
        try:
            for number, delay in enumerate(policy.delays(), 1):
                if self._stop.wait(delay):
                    return
                error = self._attempt()
                if self._stop.is_set():
                    return
                if error is None:
                    log.info("reconnected to %s (attempt %d)", self._url, number)
                    self._finish(None)
                    return
                last = error
                log.info("reconnect attempt %d/%d to %s failed: %s", number, policy.attempts, self._url, error)
            gave_up = ConnectionLost(f"gave up reconnecting after {policy.attempts} attempts: {last}", self._url)
            gave_up.__cause__ = last
            log.error("%s", gave_up)
            self._finish(gave_up)
        except BaseException as e:
            log.exception("the reconnect thread of %s failed", self._url)
            failed = ConnectionLost(f"the reconnect thread failed: {e!r}", self._url)
            failed.__cause__ = e
            self._finish(failed)

