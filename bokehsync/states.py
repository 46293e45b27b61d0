''' Connection states, named as in ``bokeh.client.states``.

``ErrorReason`` is bokeh's own enum, so comparisons written against
``bokeh.client.states.ErrorReason`` keep working.
'''
from __future__ import annotations

from bokeh.client.states import ErrorReason

__all__ = (
    'CONNECTED_AFTER_ACK',
    'CONNECTED_BEFORE_ACK',
    'DISCONNECTED',
    'NOT_YET_CONNECTED',
    'ErrorReason',
    'State',
)


class State:
    ''' Base class of the connection states. '''

    def __repr__(self) -> str:
        return type(self).__name__


class NOT_YET_CONNECTED(State):
    ''' ``connect()`` has not been called yet. '''


class CONNECTED_BEFORE_ACK(State):
    ''' The websocket is open; the server's ACK has not arrived yet. '''


class CONNECTED_AFTER_ACK(State):
    ''' The session is open: the server sent its ACK. '''


class DISCONNECTED(State):
    ''' The connection is closed, or never opened.

    Args:
        reason (ErrorReason) : why
        error_code (int, optional) : HTTP status or websocket close code
        error_detail (str) : the cause in words
    '''

    def __init__(self, reason: ErrorReason = ErrorReason.NO_ERROR, error_code: int | None = None,
            error_detail: str = "") -> None:
        self.error_reason = reason
        self.error_code = error_code
        self.error_detail = error_detail

    def __repr__(self) -> str:
        return f"DISCONNECTED({self.error_reason.name}, {self.error_code!r}, {self.error_detail!r})"
