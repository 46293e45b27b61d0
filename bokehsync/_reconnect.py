''' The opt-in reconnect policy: how many attempts, how far apart. '''
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = (
    'Reconnect',
    'as_policy',
)


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
        TypeError, ValueError
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
