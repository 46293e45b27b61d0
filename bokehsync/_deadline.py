''' One monotonic deadline spread over the steps of a blocking call. '''
from __future__ import annotations

import math
import time

__all__ = (
    'Deadline',
    'check_timeout',
)


def check_timeout(timeout: float, name: str = "timeout") -> float:
    ''' Validate a timeout in seconds: a positive, finite number.

    Raises:
        ValueError
    '''
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


class Deadline:
    ''' A point in ``time.monotonic()`` time, ``timeout`` seconds from now.

    Args:
        timeout (float) : seconds
    '''

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.at = time.monotonic() + timeout

    def remaining(self) -> float:
        ''' Seconds left, never below zero. '''
        return max(0.0, self.at - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.at
