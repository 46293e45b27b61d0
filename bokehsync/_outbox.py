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
  and ``close()`` raise it), and so is a patch the server drops with an OK
  (:meth:`dropped_by_server`).
* **Nothing dropped silently.** When the connection is lost for good, the
  changes still queued, those written but never acknowledged, and every
  change made afterwards are counted, and :meth:`take_errors` reports them
  as one ``ConnectionLost`` saying how many and why.
* **Offline changes.** While the connection is down and being re-established,
  changes are counted, not queued: the resync after the reconnect decides
  their fate (a re-push includes them; a re-pull loses them, and says so).
* **What is pending.** :meth:`pending` summarises what our changes not yet
  applied by the server touch, for ``_converge``.
* **Size.** No websocket message may exceed the server's limit
  (:meth:`configure`). A PATCH-DOC that would is cut into parts when taken
  (``_split``): they go in order, never merged with other changes, and are
  tracked like any PATCH-DOC; what of a cut change the server acknowledged is
  reported with its failure. A change holding a value that cannot be cut is
  not sent: ``MessageTooBig`` is reported at the next flush. The document
  keeps the value (no resync: pulling a document large enough for this could
  itself be over the client's ``max_message_size``). A push's parts
  (:meth:`add_parts`) are its caller's to wait for and report.

Locks: ``outbox_mutex`` guards all state here; methods that serialize or
queue change events also need the document lock, held by the caller. The
serializer is called holding the document lock and not ``outbox_mutex``.
'''
from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any

from bokeh.document.events import ColumnsStreamedEvent
from bokeh.protocol.message import Message

from ._coalesce import QueuedStream
from ._converge import Pending
from ._events import PATCH_BYTES
from ._ledger import Ledger
from ._parts import DEFAULT_SERVER_MAX_MESSAGE_SIZE, Split, budget_of, describe_in, part_of
from ._queued import Events, Summary, changes_in, named_in
from ._split import fit_patches
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
        self._limit = DEFAULT_SERVER_MAX_MESSAGE_SIZE
        self._document: Callable[[], Any] = lambda: None
        self.reset()

    def configure(self, limit: int, document: Callable[[], Any] | None = None) -> None:
        ''' Set the server's message size limit.

        Args:
            limit (int) : the largest websocket message the server accepts,
                in bytes (its ``websocket_max_message_size``)
            document (callable, optional) : ``document()``, the session's
                document, to name models in errors
        '''
        self._limit = limit
        if document is not None:
            self._document = document

    @property
    def limit(self) -> int:
        ''' The largest websocket message the server accepts, in bytes. '''
        return self._limit

    def reset(self) -> None:
        ''' Empty everything, with a fresh mutex (also in a forked child,
        where the parent's queue and acknowledgements are not ours).
        '''
        self.outbox_mutex = threading.Lock()
        self._queue: deque[Message[Any] | Events | QueuedStream] = deque()
        self._unacked: dict[Future[Any], Message[Any]] = {}
        self._ledger = Ledger(self._url)  # what the next flush reports
        self._requests_queued = False
        self._online = False
        self._reconnecting = False
        self._summary = Summary()  # what the items touch, for pending()

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
            if self._queue and isinstance(self._queue[-1], Events):
                self._queue[-1].extend(events)
            else:
                self._queue.append(Events(events))

    def add_stream(self, event: ColumnsStreamedEvent) -> None:
        ''' Queue a stream, merged with the stream queued last if it goes to the
        same source with the same columns and rollover (``_coalesce``). The
        caller holds the document lock.
        '''
        with self.outbox_mutex:
            if not self._online:
                self._count_offline(1)
                return
            last = self._queue[-1] if self._queue else None
            if isinstance(last, QueuedStream) and last.accepts(event):
                last.add(event)
            else:
                self._queue.append(QueuedStream(event))

    def take_events(self) -> list[Any]:
        ''' Remove and return the change events queued last and not yet
        serialized (the caller holds the document lock and serializes them
        with what it queues next).
        '''
        with self.outbox_mutex:
            if self._queue and isinstance(self._queue[-1], Events):
                return list(self._queue.pop())  # type: ignore[arg-type]  # an Events, checked above
        return []

    def add_patches(self, messages: list[Message[Any]]) -> None:
        ''' Queue serialized PATCH-DOCs (the caller holds the document lock). '''
        with self.outbox_mutex:
            if not self._online:
                self._count_offline(sum(len(m.content["events"]) for m in messages))
                return
            self._queue.extend(messages)

    def add_parts(self, messages: list[Message[Any]]) -> None:
        ''' Queue the parts of a push after its PUSH-DOC (the caller holds
        the document lock and waits for them: see :meth:`discard`).
        '''
        with self.outbox_mutex:
            self._queue.extend(messages)

    def acknowledged(self, split: Split, index: int) -> None:
        ''' Part ``index`` of ``split``, sent as a request (a PUSH-DOC), was acknowledged. '''
        with self.outbox_mutex:
            split.settled(index, None)
        if split.complete:
            _resolve(split)

    def discard(self, split: Split) -> None:
        ''' Drop the parts of ``split`` not written yet (its call failed). '''
        with self.outbox_mutex:
            kept = [item for item in self._queue
                    if isinstance(item, (Events, QueuedStream)) or (part_of(item) or (None,))[0] is not split]
            self._queue = deque(kept)

    def add_request(self, message: Message[Any]) -> None:
        ''' Queue a request: it goes, with everything queued before it, at the next take. '''
        with self.outbox_mutex:
            self._queue.append(message)
            self._requests_queued = True

    def _count_offline(self, n: int) -> None:
        assert self.outbox_mutex.locked()
        if self._reconnecting:
            self._ledger.offline_changes += n
        else:
            self._ledger.unsent(n)
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
            if isinstance(item, Events):
                messages.extend(self._serialize(item))
            elif isinstance(item, QueuedStream):
                messages.extend(self._serialize([item.event()]))
            else:
                messages.append(item)
        return merge_runs(self._fit(messages), limit=min(PATCH_BYTES, budget_of(self._limit)))

    def _fit(self, messages: list[Message[Any]]) -> list[Message[Any]]:
        ''' ``messages`` fitted to the server's limit (``_split.fit_patches``);
        the changes that cannot be cut are reported at the next flush. The
        caller holds the send and document locks.
        '''
        out, too_big = fit_patches(messages, self._limit, self._describe, self._url)
        if too_big:
            with self.outbox_mutex:
                self._ledger.errors.extend(too_big)
            for error in too_big:
                log.error("a change was not sent: %s", error)
        return out

    def _describe(self, model_id: str, type_name: str | None) -> str:
        ''' A model of the session's document, for errors. '''
        return describe_in(self._document(), model_id, type_name)

    def track(self, future: Future[Any], message: Message[Any]) -> None:
        ''' The PATCH-DOC ``message`` was written: ``future`` resolves with the server's reply. '''
        with self.outbox_mutex:
            self._unacked[future] = message
            part = part_of(message)
            if part is not None:
                part[0].written += 1

    def owned_by_call(self, future: Future[Any]) -> bool:
        ''' Whether a tracked PATCH-DOC is a part of a push, whose call
        reports its failure (ask before :meth:`settled`).
        '''
        with self.outbox_mutex:
            message = self._unacked.get(future)
        part = part_of(message) if message is not None else None
        return part is not None and part[0].by_call

    def dropped_by_server(self, ids: set[str]) -> None:
        ''' The server has removed the models ``ids`` before applying our
        unacknowledged PATCH-DOCs (a server patch removing them arrived while
        ours were on their way, and the server applies one connection's
        messages in order): those naming one of them will be dropped by the
        server with an OK (bokeh's ``Document.apply_json_patch``). Each is
        reported at the next flush, as a rejection is, when its OK arrives.
        Called by the reader thread.
        '''
        with self.outbox_mutex:
            for future, message in self._unacked.items():
                if message.msgtype == "PATCH-DOC" and not self._ledger.dropping(future):
                    named = named_in(message, ids)
                    if named:
                        self._ledger.will_drop(future, named, changes_in(message), message.header.get("msgid"))

    def settled(self, future: Future[Any]) -> bool:
        ''' A tracked PATCH-DOC was answered (or failed).

        Returns:
            bool : whether queued changes may go now
        '''
        error = answer = future.exception()
        finished: Split | None = None
        with self.outbox_mutex:
            dropped = self._ledger.dropped(future)
            if error is None and dropped is not None:
                error = dropped  # answered OK, but not applied: as if rejected
            message = self._unacked.pop(future, None)
            self._summary.forget()  # it holds the message: let it go
            part = part_of(message) if message is not None else None
            report = error
            if part is not None:
                split, index = part
                first_failure = split.settled(index, error)
                if split.complete or first_failure:
                    finished = split
                if split.by_call or not first_failure:
                    report = None  # the push reports it; or the split failed already
                elif isinstance(error, ServerError):
                    self._ledger.rejected_part(error, split)
                else:
                    self._ledger.failed_part(split)
            if isinstance(report, ServerError):
                self._ledger.errors.append(report)
            elif report is not None:
                self._ledger.unconfirmed(
                    1 if part is not None or message is None else len(message.content["events"]), report)
            may_send = answer is None and bool(self._queue)
        if finished is not None:
            _resolve(finished)
        if isinstance(report, ServerError):
            log.error("the server at %s rejected a document patch: %s", self._url, report.text)
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
            self._ledger.errors.append(error)

    def take_errors(self) -> list[BokehSyncError]:
        ''' The errors to report since the last call, oldest first: the server's
        rejections, then one ``ConnectionLost`` for every change that may not
        be on the server because the connection was lost.
        '''
        with self.outbox_mutex:
            errors, lost = self._ledger.take()
        return errors if lost is None else [*errors, lost]

    def pending(self) -> Pending:
        ''' What our changes not yet applied by the server touch: those
        written and unacknowledged, and those queued. Called holding the
        document lock, so no change is queued meanwhile.
        '''
        with self.outbox_mutex:
            items: list[Message[Any] | Events | QueuedStream] = [*self._unacked.values(), *self._queue]
        return self._summary.of(items)

    def has_pending(self) -> bool:
        ''' Whether any change of ours is unacknowledged or queued (read without the mutex). '''
        return bool(self._unacked) or bool(self._queue)

    # The connection's state --------------------------------------------------

    def online(self) -> None:
        ''' The connection is open: changes are queued from now on. '''
        with self.outbox_mutex:
            self._online = True
            self._reconnecting = False
            self._ledger.clear_cause()

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
                self._ledger.set_cause(cause)
            if reconnecting:
                return
            self._ledger.gave_up()
            failed: list[Split] = []
            for item in self._queue:
                part = part_of(item) if not isinstance(item, (Events, QueuedStream)) else None
                if part is None:
                    self._ledger.unsent(changes_in(item))
                elif part[0].settled(part[1], cause or ConnectionLost("the connection is closed", self._url)):
                    failed.append(part[0])  # a push's part: its call reports it
            self._queue.clear()
            self._requests_queued = False
        for split in failed:
            _resolve(split)

    def take_offline_changes(self) -> int:
        ''' How many changes were made while reconnecting; resets the count. '''
        with self.outbox_mutex:
            return self._ledger.take_offline_changes()

    def forget_lost(self) -> None:
        ''' Drop the errors and acknowledgements of patches lost with the old
        connection (a re-push supersedes them).
        '''
        with self.outbox_mutex:
            self._ledger.forget_lost()
            self._unacked.clear()


def _resolve(split: Split) -> None:
    ''' Resolve the future of a split that completed or failed (holding no lock). '''
    try:
        if split.failure is not None:
            split.future.set_exception(split.failure)
        elif split.complete:
            split.future.set_result(None)
    except InvalidStateError:
        pass  # resolved by another thread already
