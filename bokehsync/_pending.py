''' Replies waited for: one ``Future`` per outstanding request, by msgid.

Every message the server answers (requests, and each PATCH-DOC) is entered
here before it is sent; the reader thread takes the entry whose msgid a reply
carries as ``reqid`` and resolves its future. An entry also says what the
reader should do while the request is outstanding: report the bytes of the
reply as they arrive (``progress``), or drop the server's PATCH-DOCs, which
echo a document being pushed (``drops_patches``).
'''
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

__all__ = (
    'Entry',
    'Pending',
)

#: How many abandoned (timed-out) request ids are remembered, so that their
#: late replies are dropped quietly instead of being taken for a violation.
_ABANDONED_MEMORY = 4096


@dataclass(frozen=True)
class Entry:
    ''' One outstanding request.

    Args:
        future (Future) : resolved with the reply (or what ``on_reply`` made of it)
        on_reply (callable, optional) : run by the reader thread with the
            reply before the future resolves; its result becomes the
            future's result, its exception the future's exception
        progress (callable, optional) : ``progress(bytes_received, None)`` as
            the reply arrives (see ``_wire.Progress``)
        drops_patches (bool) : while outstanding, the server's unsolicited
            PATCH-DOCs are dropped (they echo a document being pushed)
    '''
    future: Future[Any]
    on_reply: Callable[[Any], Any] | None = None
    progress: Callable[[int, int | None], Any] | None = None
    drops_patches: bool = False


class Pending:
    ''' The table of requests waiting for a reply.

    Every method takes ``pending_mutex``; none waits on the network or calls
    user code while holding it.
    '''

    def __init__(self) -> None:
        self.pending_mutex = threading.Lock()
        self._entries: dict[str, Entry] = {}
        self._abandoned: deque[str] = deque(maxlen=_ABANDONED_MEMORY)
        self._abandoned_set: set[str] = set()
        self._failure: BaseException | None = None
        self._pushes = 0
        self._reporting = 0

    def add(self, msgid: str, on_reply: Callable[[Any], Any] | None = None, *,
            progress: Callable[[int, int | None], Any] | None = None, drops_patches: bool = False) -> Future[Any]:
        ''' Register a request before it is sent.

        Args:
            msgid (str) : the request's msgid, which the reply carries as reqid
            on_reply, progress, drops_patches : see :class:`Entry`

        Returns:
            Future : resolved by the reader thread, failed by :meth:`fail_all`
            (at once, if :meth:`fail_all` was called already)
        '''
        future: Future[Any] = Future()
        with self.pending_mutex:
            if self._failure is not None:
                future.set_exception(self._failure)
                return future
            self._entries[msgid] = Entry(future, on_reply, progress, drops_patches)
            self._pushes += drops_patches
            self._reporting += progress is not None
        return future

    def pop(self, reqid: str) -> Entry | None:
        ''' Take the entry a reply answers, or None for an unknown id. '''
        with self.pending_mutex:
            return self._take(reqid)

    def _take(self, msgid: str) -> Entry | None:
        assert self.pending_mutex.locked()
        entry = self._entries.pop(msgid, None)
        if entry is not None:
            self._pushes -= entry.drops_patches
            self._reporting -= entry.progress is not None
        return entry

    def peek(self, reqid: str) -> Entry | None:
        ''' The entry a reply being assembled answers, left in place. '''
        with self.pending_mutex:
            return self._entries.get(reqid)

    @property
    def pushing(self) -> bool:
        ''' Whether a request that drops server PATCH-DOCs is outstanding.
        Read without the mutex: the reader asks for every message.
        '''
        return self._pushes > 0

    @property
    def reporting(self) -> bool:
        ''' Whether a request with a ``progress`` callback is outstanding.
        Read without the mutex: the reader asks after every read.
        '''
        return self._reporting > 0

    def abandon(self, msgid: str) -> None:
        ''' Forget a request whose caller gave up; its late reply is dropped. '''
        with self.pending_mutex:
            if self._take(msgid) is None:
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
            entries = list(self._entries.values())
            self._entries.clear()
            self._pushes = self._reporting = 0
        for entry in entries:
            if not entry.future.done():
                entry.future.set_exception(exc)

    def __len__(self) -> int:
        with self.pending_mutex:
            return len(self._entries)
