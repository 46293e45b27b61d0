''' Replies waited for: one ``Future`` per outstanding request, by msgid. '''
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

__all__ = (
    'Pending',
)

#: How many abandoned (timed-out) request ids are remembered, so that their
#: late replies are dropped quietly instead of being taken for a violation.
_ABANDONED_MEMORY = 4096


class Pending:
    ''' The table of requests waiting for a reply.

    Every method takes ``pending_mutex``; none waits on the network or calls
    user code while holding it.
    '''

    def __init__(self) -> None:
        self.pending_mutex = threading.Lock()
        self._futures: dict[str, tuple[Future[Any], Callable[[Any], Any] | None]] = {}
        self._abandoned: deque[str] = deque(maxlen=_ABANDONED_MEMORY)
        self._abandoned_set: set[str] = set()
        self._failure: BaseException | None = None

    def add(self, msgid: str, on_reply: Callable[[Any], Any] | None = None) -> Future[Any]:
        ''' Register a request before it is sent.

        Args:
            msgid (str) : the request's msgid, which the reply carries as reqid
            on_reply (callable, optional) : run by the reader thread with the
                reply before the future resolves; its result becomes the
                future's result, its exception the future's exception

        Returns:
            Future : resolved by :meth:`resolve`, failed by :meth:`fail_all`
        '''
        future: Future[Any] = Future()
        with self.pending_mutex:
            if self._failure is not None:
                future.set_exception(self._failure)
                return future
            self._futures[msgid] = (future, on_reply)
        return future

    def pop(self, reqid: str) -> tuple[Future[Any], Callable[[Any], Any] | None] | None:
        ''' Take the entry a reply answers, or None for an unknown id. '''
        with self.pending_mutex:
            return self._futures.pop(reqid, None)

    def abandon(self, msgid: str) -> None:
        ''' Forget a request whose caller gave up; its late reply is dropped. '''
        with self.pending_mutex:
            if self._futures.pop(msgid, None) is None:
                return
            if len(self._abandoned) == self._abandoned.maxlen:
                self._abandoned_set.discard(self._abandoned[0])
            self._abandoned.append(msgid)
            self._abandoned_set.add(msgid)

    def was_abandoned(self, reqid: str) -> bool:
        ''' Whether ``reqid`` belongs to a request whose caller gave up. '''
        with self.pending_mutex:
            return reqid in self._abandoned_set

    def fail_all(self, exc: BaseException) -> None:
        ''' Fail every outstanding future, and every later :meth:`add`, with ``exc``. '''
        with self.pending_mutex:
            if self._failure is None:
                self._failure = exc
            entries = list(self._futures.values())
            self._futures.clear()
        for future, _ in entries:
            if not future.done():
                future.set_exception(exc)

    def __len__(self) -> int:
        with self.pending_mutex:
            return len(self._futures)
