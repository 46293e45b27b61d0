''' The user's callbacks for a session's connection events. '''
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

__all__ = (
    'Hooks',
    'Kind',
)

log = logging.getLogger(__name__)

#: The events: ``disconnect`` (an unexpected loss, and reconnecting giving
#: up), ``reconnect`` (reconnected and resynchronised), ``resync`` (the
#: document was brought to the server's state after it had diverged).
Kind = Literal["disconnect", "reconnect", "resync"]


class Hooks:
    ''' Callbacks registered with ``session.on_disconnect`` / ``on_reconnect`` / ``on_resync``.

    Args:
        session (object) : the ``ClientSession``, the first argument of every callback
    '''

    def __init__(self, session: object) -> None:
        self._session = session
        self._callbacks: dict[str, list[Callable[..., Any]]] = {"disconnect": [], "reconnect": [], "resync": []}

    def add(self, kind: Kind, callback: Callable[..., Any]) -> None:
        ''' Register ``callback`` for ``kind`` events (any thread). '''
        self._callbacks[kind].append(callback)

    def run(self, kind: Kind, *args: Any) -> None:
        ''' Call every ``kind`` callback with ``(session, *args)``; never raises.
        Runs on a bokehsync thread (the reader or the reconnect thread).
        '''
        for callback in list(self._callbacks[kind]):
            try:
                callback(self._session, *args)
            except Exception:
                log.exception("%s callback %r of %r failed", kind, callback, self._session)
