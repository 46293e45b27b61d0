''' Document session callbacks (periodic, timeout, next-tick) on the io_loop shim.

bokeh's ``DocumentCallbackGroup`` schedules them on a Tornado loop; its
methods are not thread-safe, so every call is handed to the loop's own thread.
Each callback runs holding ``session.lock``, as the Bokeh server runs them
holding its document lock.
'''
from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from bokeh.server.callbacks import (
    DocumentCallbackGroup,
    NextTickCallback,
    PeriodicCallback,
    SessionCallback,
    TimeoutCallback,
)

if TYPE_CHECKING:
    from ._loop import LoopThread

__all__ = (
    'SessionCallbacks',
)


def _locked(callback: Callable[..., Any], lock: threading.RLock) -> Callable[..., Any]:
    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return callback(*args, **kwargs)
    return run


def _with_lock(obj: SessionCallback, lock: threading.RLock) -> SessionCallback:
    ''' A copy of ``obj`` (same id) whose callable holds ``lock``. '''
    fn = _locked(obj.callback, lock)
    if isinstance(obj, PeriodicCallback):
        return PeriodicCallback(fn, obj.period, callback_id=obj.id)
    if isinstance(obj, TimeoutCallback):
        return TimeoutCallback(fn, obj.timeout, callback_id=obj.id)
    if isinstance(obj, NextTickCallback):
        return NextTickCallback(fn, callback_id=obj.id)
    raise ValueError(f"Expected callback of type PeriodicCallback, TimeoutCallback, NextTickCallback, got: {obj!r}")


class SessionCallbacks:
    ''' The session callbacks of one document, run on the connection's loop.

    Any thread may call these methods; the work is done on the loop thread.

    Args:
        loop (LoopThread) : the connection's loop shim, started on first use
        lock (RLock) : ``session.lock``
    '''

    def __init__(self, loop: LoopThread, lock: threading.RLock) -> None:
        self._loop = loop
        self._lock = lock
        self._group: DocumentCallbackGroup | None = None

    def _on_loop(self, fn: Callable[[DocumentCallbackGroup], None]) -> None:
        def run() -> None:
            if self._group is None:
                self._group = DocumentCallbackGroup(self._loop.get())
            fn(self._group)
        self._loop.call_soon(run)

    def add_session_callbacks(self, callbacks: Sequence[SessionCallback]) -> None:
        for callback in callbacks:
            self.add_session_callback(callback)

    def add_session_callback(self, callback: SessionCallback) -> None:
        wrapped = _with_lock(callback, self._lock)
        self._on_loop(lambda group: group.add_session_callback(wrapped))

    def remove_session_callback(self, callback: SessionCallback) -> None:
        self._on_loop(lambda group: group.remove_session_callback(callback))

    def remove_all_callbacks(self) -> None:
        if not self._loop.started:
            return
        self._on_loop(lambda group: group.remove_all_callbacks())
