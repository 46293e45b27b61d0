''' The session's side of the document: its lock, its change hooks, and
applying the server's changes to it.

bokeh's ``Document`` has no lock of its own. Each session has one, the
re-entrant ``session.lock`` (:attr:`DocumentSync.lock`):

* the reader thread holds it while it applies a server change or a pulled
  document (:meth:`DocumentSync.apply_patch`, :meth:`DocumentSync.apply_pull`);
* document session callbacks (periodic, timeout, next-tick) run holding it,
  on the io_loop shim (``_loop``, ``_callbacks``);
* queueing a local change, and serializing queued changes for the server,
  hold it, so changes reach the server in the order they were made;
* user code holds it to make several changes atomic with respect to server
  updates.

Local changes come in through bokeh's ``on_change_dispatch_to`` hook, in the
thread that made them (:meth:`DocumentSync.on_change`), and go to the
session's :class:`~bokehsync._outbox.Outbox`. Server changes are applied with
the session as ``setter``, as bokeh.client does, so they are not sent back.

The document never stays diverged silently. A server change that crosses a
change of ours still on its way is treated by the rules of ``_converge``
(skip it, reorder rows, or resynchronise); a server change that cannot be
applied at all (a reference to a model we lack...) makes the session
resynchronise: it pulls the server's document and brings ours to it in
place (``_reconcile``), keeping the model objects the program holds.
'''
from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from bokeh.core.serialization import DeserializationError, Serialized
from bokeh.document.events import ColumnsStreamedEvent

from ._column_assignment import as_sent, assigns_columns
from ._converge import Pending
from ._crossing import apply_crossing
from ._events import is_heavy, size_groups
from ._outbox import Outbox
from ._reconcile import reconcile, unknown_model_error, unknown_model_types
from ._wire import PROTOCOL

if TYPE_CHECKING:
    from collections.abc import Callable

    from bokeh.document import Document
    from bokeh.document.events import DocumentPatchedEvent
    from bokeh.protocol.message import Message

    from ._callbacks import SessionCallbacks
    from ._loop import LoopThread

__all__ = (
    'DocumentSync',
)

log = logging.getLogger(__name__)


class DocumentSync:
    ''' One session's document, kept in step with the server's.

    Args:
        setter (object) : the ``setter`` of server changes applied here (the
            ``ClientSession``), by which the change hooks know not to send them back
        loop (LoopThread) : the io_loop shim that runs document session callbacks
        url (str, optional) : named in exceptions and logs
    '''

    def __init__(self, setter: object, loop: LoopThread, url: str | None = None) -> None:
        # Any: bokeh types setters as its own session classes; ours is neither.
        self._setter: Any = setter
        self.loop = loop
        self._url = url
        self.lock = threading.RLock()
        self.document: Document | None = None
        #: How the session got its document: ``"pull"`` (the server's state
        #: wins a resync) or ``"push"`` (ours wins); None before either.
        self.mode: Literal["pull", "push"] | None = None
        self.outbox = Outbox(self.serialize, url)
        self._applying = threading.local()
        self._callbacks: SessionCallbacks | None = None
        self._batch: list[Any] | None = None
        self._batch_patches: list[Message[Any]] = []
        #: ``resync(reason)``: pull the server's document without waiting (set
        #: by the connection); called holding no lock, on the reader thread.
        self.resync: Callable[[str], None] = lambda reason: None
        #: The (model id, property) keys whose server changes wait for the
        #: resync on its way (``_crossing``); guarded by :attr:`lock`, read and
        #: changed on the reader thread, emptied when the document is brought
        #: to the server's state (:meth:`_reconcile`, :meth:`forget_left_to_resync`).
        self._left_to_resync: set[tuple[str, str]] = set()

    def holds_lock(self) -> bool:
        ''' Whether the calling thread holds :attr:`lock`. '''
        # RLock._is_owned is CPython's (C and Python RLocks alike), used by
        # threading.Condition itself.
        return self.lock._is_owned()  # type: ignore[attr-defined, no-any-return]

    def after_fork(self, accept_changes: bool) -> None:
        ''' In a forked child: drop the parent's queue, release a lock held by
        a thread that does not exist here, forget the loop thread.

        Args:
            accept_changes (bool) : queue the child's changes (its connection
                opens on first use) rather than drop them
        '''
        if self.lock.acquire(blocking=False):
            self.lock.release()
        elif not self.holds_lock():
            # Held by a parent thread, which the child does not have: it would
            # never be released. _at_fork_reinit is how CPython resets its own
            # locks after a fork.
            self.lock._at_fork_reinit()  # type: ignore[attr-defined]
        self.outbox.reset()
        if accept_changes:
            self.outbox.online()
        self.loop.forget()

    # Binding a document ------------------------------------------------------

    def attach(self, document: Document) -> None:
        ''' Listen to ``document``'s changes and run its session callbacks.
        Any thread; the caller holds :attr:`lock`.
        '''
        self.document = document
        document.callbacks.on_change_dispatch_to(self._setter)
        if document.session_callbacks:
            self.callbacks.add_session_callbacks(document.session_callbacks)

    def detach(self) -> None:
        ''' Stop listening and stop the session callbacks (the session is
        closed). Idempotent.
        '''
        if self.document is not None:
            try:
                self.document.remove_on_change(self._setter)
            except KeyError:
                pass  # removed already
        self.stop_callbacks()

    def stop_callbacks(self) -> None:
        ''' Stop the document's session callbacks (the connection is gone). Idempotent. '''
        if self._callbacks is not None:
            self._callbacks.remove_all_callbacks()

    @property
    def callbacks(self) -> SessionCallbacks:
        ''' The runner of document session callbacks, created on first use. '''
        if self._callbacks is None:
            from ._callbacks import SessionCallbacks
            self._callbacks = SessionCallbacks(self.loop, self.lock)
        return self._callbacks

    # Local changes (the thread that made them) -------------------------------

    def on_change(self, event: DocumentPatchedEvent) -> None:
        ''' A change of the document: queue it for the server, and send it
        unless it waits for an acknowledgement or a batch. Runs in the thread
        that made it.
        '''
        if event.setter is self._setter or getattr(self._applying, "active", False):
            return
        event = as_sent(event)
        with self.lock:
            if self._batch is not None:
                self._batch.append(event)
                if is_heavy(event):
                    # Serialize now rather than keep the column's versions alive.
                    self._batch_patches.extend(self.serialize(self._batch))
                    self._batch = []
                return
            self._queue([event])
        self.outbox.wake()

    def _queue(self, events: list[Any]) -> None:
        ''' Queue change events, in order (holding :attr:`lock`).

        Light events are queued as they are and serialized when sent, so a
        burst costs one serialization. A stream queues a copy of its new rows,
        merged with the streams to the same source that wait with it. Other
        column events (and any large change) are serialized now, together with
        the light ones queued before them: such an event keeps the column's
        old and new values alive until it is serialized, which for numpy
        columns is a full copy per event.
        '''
        if len(events) == 1 and isinstance(events[0], ColumnsStreamedEvent):
            # Its new rows only, merged with the streams that wait with it (_coalesce).
            self.outbox.add_stream(events[0])
        elif any(is_heavy(event) for event in events):
            run = self.outbox.take_events() + events
            self.outbox.add_patches(self.serialize(run))
        else:
            self.outbox.add_events(events)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        ''' Queue the changes made inside the block together, when the
        outermost block ends, holding :attr:`lock` for the whole block.
        '''
        with self.lock:
            outer = self._batch is None
            if outer:
                self._batch = []
                self._batch_patches = []
            try:
                yield
            finally:
                if outer:
                    events, self._batch = self._batch or [], None
                    patches = self._batch_patches + (self.serialize(events) if events else [])
                    self._batch_patches = []
                    if patches:
                        # Queued together, they go out merged into one PATCH-DOC
                        # (or a few, if they add up to more than a few MiB).
                        self.outbox.add_patches(patches)
        if outer:
            self.outbox.wake()

    def serialize(self, events: list[Any]) -> list[Message[Any]]:
        ''' PATCH-DOCs for change events, oldest first, each of a bounded size.
        Holds :attr:`lock`, so the document does not change meanwhile.
        '''
        with self.lock:
            return [PROTOCOL.create('PATCH-DOC', group) for group in size_groups(events)]

    # Server changes (the reader thread) --------------------------------------

    def apply_patch(self, message: Message[Any]) -> None:
        ''' Apply a server PATCH-DOC to the document (the reader thread). '''
        doc = self.document
        if doc is None:
            log.debug("dropping a server patch: no document yet")
            return
        removed: set[str] = set()
        with self.lock:
            try:
                if self.outbox.has_pending() or assigns_columns(message):
                    reason = apply_crossing(doc, message, self.outbox.pending(), self._setter, self._left_to_resync,
                                            removed)
                else:
                    message.apply_to_document(doc, self._setter)  # type: ignore[attr-defined]  # a PATCH-DOC
                    reason = None
            except Exception as e:
                log.debug("applying a server change failed", exc_info=True)
                reason = f"a server change could not be applied to the document: {e!r}"
        if removed:
            self.outbox.dropped_by_server(removed)
        if reason is not None:
            self.resync(reason)

    def apply_resync(self, reply: Message[Any]) -> bool:
        ''' Bring the document to a PULL-DOC-REPLY's state in place, keeping
        our changes made since the request (the reader thread).

        Returns:
            bool : whether to resynchronise again once our pending changes
            are acknowledged (one was kept inexactly)

        Raises:
            UnknownModelType: the server's document has model types this process lacks
        '''
        doc = self.document
        if doc is None:
            return False
        with self.lock:
            return self._reconcile(reply, doc)

    def _reconcile(self, reply: Message[Any], document: Document) -> bool:
        ''' ``_reconcile.reconcile`` of a PULL-DOC-REPLY into ``document``,
        holding :attr:`lock`, with our pending changes if it is the session's.
        '''
        ours = document is self.document
        pending = self.outbox.pending() if ours else Pending()
        self._applying.active = True
        try:
            again = reconcile(document, Serialized(reply.content["doc"], reply.buffers), self._setter, pending)
            if ours and not again:
                self._left_to_resync.clear()
            return again
        except DeserializationError as e:
            unknown = unknown_model_types(reply.content)
            if not unknown:
                raise
            raise unknown_model_error(unknown, self._url) from e
        finally:
            self._applying.active = False

    def forget_left_to_resync(self) -> None:
        ''' The server has our document (pushed again): nothing waits for a resync. '''
        with self.lock:
            self._left_to_resync.clear()

    def apply_pull(self, reply: Message[Any], document: Document) -> bool:
        ''' Apply a PULL-DOC-REPLY to ``document``, in order with server
        patches (the reader thread), and bind it if the session has no
        document yet. The document is brought to the server's state in place
        (``_reconcile``), so the model objects the program holds stay in it
        (bokeh's ``push_to_document`` would replace them all).

        Returns:
            bool : whether to resynchronise again (see :meth:`apply_resync`)

        Raises:
            UnknownModelType: the server's document has model types this process lacks
        '''
        with self.lock:
            again = self._reconcile(reply, document)
            if self.document is None:
                self.attach(document)
        return again

