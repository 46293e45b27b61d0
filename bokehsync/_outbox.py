''' What a connection sends, in order, and what the server acknowledged. No sockets.

The threads that change the document queue change events and serialized
PATCH-DOCs; the threads that make requests queue them; the sender takes what
may go now (:meth:`Outbox.take`) and writes it; the reader thread reports each
PATCH-DOC's reply (:meth:`Outbox.settled`). Rules kept here:

* **Order.** Everything goes out in the order it was queued. Change events
  are queued holding the document lock, and taken holding it, so the order of
  the queue is the order in which the document changed.
* **Window and merging.** While ``PATCH_WINDOW`` PATCH-DOCs are
  unacknowledged, further changes wait; when an OK opens the window they go,
  merged into as few PATCH-DOCs as fit ``PATCH_BYTES``. A queued request
  sends everything before it at once (it must not wait behind the window).
* **Acknowledgement.** Each PATCH-DOC written is tracked until the server's
  reply; a rejection is kept for the next :meth:`take_errors` (``flush()``
  and ``close()`` raise it).
* **Nothing dropped silently.** When the connection is lost for good, the
  changes still queued, those written but never acknowledged, and every
  change made afterwards are counted, and :meth:`take_errors` reports them
  as one ``ConnectionLost`` saying how many and why.
* **Offline changes.** While the connection is down and being re-established,
  changes are counted, not queued: the resync after the reconnect decides
  their fate (a re-push includes them; a re-pull loses them, and says so).
* **What is pending.** :meth:`pending` summarises what our changes not yet
  applied by the server touch, for ``_converge``.

Locks: ``outbox_mutex`` guards all state here; methods that serialize or
queue change events also need the document lock, held by the caller. The
serializer is called holding the document lock and not ``outbox_mutex``.
'''
from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from bokeh.protocol.message import Message

from ._converge import Pending
from ._wire import merge_runs
from .exceptions import BokehSyncError, ConnectionLost, ServerError

__all__ = (
    'PATCH_WINDOW',
    'Outbox',
)

log = logging.getLogger(__name__)

#: PATCH-DOCs in flight before further changes wait, merged, for an OK.
PATCH_WINDOW = 1

#: Turns queued change events into PATCH-DOCs, oldest first (see ``_docsync``).
Serializer = Callable[[list[Any]], list[Message[Any]]]


class _Events(list):  # type: ignore[type-arg]
    ''' A run of queued document change events, serialized when taken. '''


class Outbox:
    ''' The queue of outgoing messages of one session, and its acknowledgements.

    Args:
        serialize (callable) : ``serialize(events) -> list[Message]``, the
            PATCH-DOCs for change events (called holding the document lock)
        url (str, optional) : named in the exceptions
    '''

    def __init__(self, serialize: Serializer, url: str | None = None) -> None:
        self._serialize = serialize
        self._url = url
        self._writer: Callable[[], None] | None = None
        self.reset()

    def reset(self) -> None:
        ''' Empty everything, with a fresh mutex (also in a forked child,
        where the parent's queue and acknowledgements are not ours).
        '''
        self.outbox_mutex = threading.Lock()
        self._queue: deque[Message[Any] | _Events] = deque()
        self._unacked: dict[Future[Any], Message[Any]] = {}
        self._errors: list[BokehSyncError] = []
        self._requests_queued = False
        self._online = False
        self._reconnecting = False
        self._offline_changes = 0
        self._unsent = 0        # changes that could not be sent: the connection was gone
        self._unconfirmed = 0   # changes written whose acknowledgement never came
        self._cause: BokehSyncError | None = None

    # Producers (any thread) --------------------------------------------------

    def set_writer(self, writer: Callable[[], None]) -> None:
        ''' Set the callable that :meth:`wake` calls (the sender's ``send_queued``). '''
        self._writer = writer

    def wake(self) -> None:
        ''' Changes were queued: let the writer send them if it may. Call it
        without holding the document lock where possible.
        '''
        if self._writer is not None:
            self._writer()

    def add_events(self, events: list[Any]) -> None:
        ''' Queue change events, serialized when taken. The caller holds the
        document lock, which keeps the queue in the order of the changes.
        '''
        with self.outbox_mutex:
            if not self._online:
                self._count_offline(len(events))
                return
            if self._queue and isinstance(self._queue[-1], _Events):
                self._queue[-1].extend(events)
            else:
                self._queue.append(_Events(events))

    def take_events(self) -> list[Any]:
        ''' Remove and return the change events queued last and not yet
        serialized (the caller holds the document lock and serializes them
        with what it queues next).
        '''
        with self.outbox_mutex:
            if self._queue and isinstance(self._queue[-1], _Events):
                return list(self._queue.pop())  # type: ignore[arg-type]  # an _Events, checked above
        return []

    def add_patches(self, messages: list[Message[Any]]) -> None:
        ''' Queue serialized PATCH-DOCs (the caller holds the document lock). '''
        with self.outbox_mutex:
            if not self._online:
                self._count_offline(sum(len(m.content["events"]) for m in messages))
                return
            self._queue.extend(messages)

    def add_request(self, message: Message[Any]) -> None:
        ''' Queue a request: it goes, with everything queued before it, at the next take. '''
        with self.outbox_mutex:
            self._queue.append(message)
            self._requests_queued = True

    def _count_offline(self, n: int) -> None:
        assert self.outbox_mutex.locked()
        if self._reconnecting:
            self._offline_changes += n
        else:
            self._unsent += n
            log.debug("not connected: %d document change(s) for %s not sent", n, self._url)

    # The sender --------------------------------------------------------------

    def window_full(self) -> bool:
        ''' Whether queued changes must wait for an acknowledgement. Read
        without the mutex: it is asked after every change.
        '''
        return len(self._unacked) >= PATCH_WINDOW and not self._requests_queued

    def ready(self, force: bool) -> bool:
        ''' Whether :meth:`take` would return something. '''
        with self.outbox_mutex:
            return bool(self._queue) and (force or not self.window_full())

    def take(self, force: bool) -> list[Message[Any]]:
        ''' Everything that may be written now, serialized and merged, in order;
        empty if nothing is queued or (unless ``force``) the window is full.
        The caller holds the send lock and the document lock.
        '''
        with self.outbox_mutex:
            if not self._queue or (not force and self.window_full()):
                return []
            batch = list(self._queue)
            self._queue.clear()
            self._requests_queued = False
        messages: list[Message[Any]] = []
        for item in batch:
            if isinstance(item, _Events):
                messages.extend(self._serialize(item))
            else:
                messages.append(item)
        return merge_runs(messages)

    def track(self, future: Future[Any], message: Message[Any]) -> None:
        ''' The PATCH-DOC ``message`` was written: ``future`` resolves with the server's reply. '''
        with self.outbox_mutex:
            self._unacked[future] = message

    def settled(self, future: Future[Any]) -> bool:
        ''' A tracked PATCH-DOC was answered (or failed).

        Returns:
            bool : whether queued changes may go now
        '''
        error = future.exception()
        with self.outbox_mutex:
            message = self._unacked.pop(future, None)
            if isinstance(error, ServerError):
                self._errors.append(error)
            elif error is not None:
                self._unconfirmed += len(message.content["events"]) if message is not None else 1
                self._set_cause(error if isinstance(error, BokehSyncError) else ConnectionLost(repr(error), self._url))
            may_send = error is None and bool(self._queue)
        if isinstance(error, ServerError):
            log.error("the server at %s rejected a document patch: %s", self._url, error.text)
        return may_send

    # flush() -----------------------------------------------------------------

    def unacked(self) -> list[Future[Any]]:
        ''' The futures of the PATCH-DOCs written and not yet answered. '''
        with self.outbox_mutex:
            return list(self._unacked)

    def queued(self) -> int:
        ''' How many items wait to be written. '''
        with self.outbox_mutex:
            return len(self._queue)

    def add_error(self, error: BokehSyncError) -> None:
        ''' Report ``error`` at the next flush. '''
        with self.outbox_mutex:
            self._errors.append(error)

    def take_errors(self) -> list[BokehSyncError]:
        ''' The errors to report since the last call, oldest first: the server's
        rejections, then one ``ConnectionLost`` for every change that may not
        be on the server because the connection was lost.
        '''
        with self.outbox_mutex:
            errors, self._errors = self._errors, []
            unsent, unconfirmed, cause = self._unsent, self._unconfirmed, self._cause
            self._unsent = self._unconfirmed = 0
        if unsent or unconfirmed:
            parts = ([f"{unconfirmed} sent but never acknowledged"] if unconfirmed else []) \
                + ([f"{unsent} not sent"] if unsent else [])
            why = cause.message if cause is not None else "the connection is closed"
            lost = ConnectionLost(f"{unsent + unconfirmed} document change(s) may not be on the server "
                                  f"({', '.join(parts)}): {why}", self._url, unsent=unsent,
                                  unacknowledged=unconfirmed)
            lost.__cause__ = cause
            errors.append(lost)
        return errors

    def _set_cause(self, cause: BokehSyncError) -> None:
        assert self.outbox_mutex.locked()
        if self._cause is None:
            self._cause = cause

    def pending(self) -> Pending:
        ''' What our changes not yet applied by the server touch: those
        written and unacknowledged, and those queued. Called holding the
        document lock, so no change is queued meanwhile.
        '''
        pending = Pending()
        with self.outbox_mutex:
            items: list[Message[Any] | _Events] = [*self._unacked.values(), *self._queue]
        for item in items:
            if isinstance(item, _Events):
                for event in item:
                    model = getattr(event, "model", None)
                    pending.add_event(event.kind, model.id if model is not None else None,
                                      getattr(event, "attr", None))
            elif item.msgtype == "PATCH-DOC":
                for rep in item.content["events"]:
                    pending.add_rep(rep)
        return pending

    def has_pending(self) -> bool:
        ''' Whether any change of ours is unacknowledged or queued (read without the mutex). '''
        return bool(self._unacked) or bool(self._queue)

    # The connection's state --------------------------------------------------

    def online(self) -> None:
        ''' The connection is open: changes are queued from now on. '''
        with self.outbox_mutex:
            self._online = True
            self._reconnecting = False
            self._cause = None

    def offline(self, reconnecting: bool, cause: BokehSyncError | None = None) -> None:
        ''' The connection closed. While ``reconnecting``, changes are counted
        for the resync and the queue waits for the new connection; otherwise
        the queued changes, and every later one, count as not sent because of
        ``cause`` (requests left in the queue are dropped: their callers
        have failed already).
        '''
        with self.outbox_mutex:
            self._online = False
            self._reconnecting = reconnecting
            if cause is not None:
                self._set_cause(cause)
            if reconnecting:
                return
            self._unsent += self._offline_changes  # made while reconnecting, which gave up
            self._offline_changes = 0
            for item in self._queue:
                if isinstance(item, _Events):
                    self._unsent += len(item)
                elif item.msgtype == "PATCH-DOC":
                    self._unsent += len(item.content["events"])
            self._queue.clear()
            self._requests_queued = False

    def take_offline_changes(self) -> int:
        ''' How many changes were made while reconnecting; resets the count. '''
        with self.outbox_mutex:
            count, self._offline_changes = self._offline_changes, 0
            return count

    def forget_lost(self) -> None:
        ''' Drop the errors and acknowledgements of patches lost with the old
        connection (a re-push supersedes them).
        '''
        with self.outbox_mutex:
            self._errors = [e for e in self._errors if not isinstance(e, ConnectionLost)]
            self._unacked.clear()
            self._unsent = self._unconfirmed = 0
            self._cause = None
