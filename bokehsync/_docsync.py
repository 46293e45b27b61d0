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

from bokeh.core.serialization import DeserializationError, Deserializer, Serialized, UnknownReferenceError
from bokeh.document.callbacks import invoke_with_curdoc
from bokeh.document.events import DocumentPatchedEvent

from ._converge import Action, Touch, decide
from ._events import is_heavy, size_groups
from ._outbox import Outbox
from ._reconcile import reconcile
from ._streams import concat_rows, join_rows
from ._wire import PROTOCOL
from .exceptions import UnknownModelType

if TYPE_CHECKING:
    from collections.abc import Callable

    from bokeh.document import Document
    from bokeh.document.events import DocumentPatchedEvent
    from bokeh.protocol.message import Message

    from ._callbacks import SessionCallbacks
    from ._loop import LoopThread

__all__ = (
    'DocumentSync',
    'unknown_model_error',
    'unknown_model_types',
)

log = logging.getLogger(__name__)

_SCALARS = (int, float, str, bool, type(None))


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
        burst costs one serialization. Column events (and any large change)
        are serialized now, together with the light ones queued before them:
        such an event keeps the column's old and new values alive until it
        is serialized, which for numpy columns is a full copy per event.
        '''
        if any(is_heavy(event) for event in events):
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
        with self.lock:
            try:
                if self.outbox.has_pending():
                    reason = self._apply_crossing(message, doc)
                else:
                    message.apply_to_document(doc, self._setter)  # type: ignore[attr-defined]  # a PATCH-DOC
                    reason = None
            except Exception as e:
                log.debug("applying a server change failed", exc_info=True)
                reason = f"a server change could not be applied to the document: {e!r}"
        if reason is not None:
            self.resync(reason)

    def _apply_crossing(self, message: Message[Any], doc: Document) -> str | None:
        ''' Apply a server PATCH-DOC while changes of ours are on their way,
        event by event (``_converge``); bokeh's ``Document.apply_json_patch``
        with a decision per event.

        Returns:
            str or None : why the document must be resynchronised, if it must
        '''
        pending = self.outbox.pending()
        deserializer = Deserializer(list(doc.models), setter=self._setter)
        try:
            patch = deserializer.deserialize(message.payload)
        except UnknownReferenceError as e:
            if doc.models.seen(e.id):  # as bokeh: updated on one side while removed on the other
                return None
            raise
        reasons: list[str] = []
        # The server drops a whole PATCH-DOC of ours, with an OK and no ERROR,
        # if it names a model another client removed meanwhile (bokeh's
        # Document.apply_json_patch, "previously known reference"): if this
        # patch may remove models, look for removed ones afterwards.
        removes = any(event.get("kind") == "RootRemoved"
                      or (event.get("kind") == "ModelChanged" and not isinstance(event.get("new"), _SCALARS))
                      for event in patch["events"])
        before = {model.id for model in doc.models} if removes else set()

        def run() -> None:
            for event in patch["events"]:
                kind = event.get("kind")
                action, touch = decide(event, pending)
                if action is Action.SKIP:
                    continue
                if action in (Action.REORDER, Action.REAPPEND):
                    assert touch is not None
                    if self._transform(action, event, touch):
                        continue
                    action = Action.RESYNC
                if action is Action.RESYNC and touch is not None and self._keep_ours_last(event, touch):
                    # Applied with our pending rows kept last, as on the server
                    # (a resync keeps a source's last rows as ours); resync for the rest.
                    if not reasons:
                        reasons.append(f"a server {kind} crossed changes of ours to the same source, and no "
                                       "local rule gives the server's result")
                    continue
                DocumentPatchedEvent.handle_event(doc, event, self._setter)
                if action is Action.RESYNC and not reasons:
                    reasons.append(f"a server {kind} crossed a change of ours to the same property, and no "
                                   "local rule gives the server's result")
        invoke_with_curdoc(doc, run)
        doc.models.flush_synced(lambda model: not deserializer.has_ref(model))
        if removes and not reasons and before - {model.id for model in doc.models}:
            reasons.append("a server change removed models while changes of ours were on their way (the "
                           "server drops a change that names a removed model)")
        return reasons[0] if reasons else None

    def _keep_ours_last(self, event: dict[str, Any], touch: Touch) -> bool:
        ''' A server stream or data replacement that no rule gives exactly
        (our pending patches cross it), to a source we have pending streams to:
        apply it as if they did not, with our pending rows after its rows
        (a naive apply would put them before, or drop them).

        Returns:
            bool : whether it applied (False: apply it as it is)
        '''
        if not touch.streams or not touch.exact or touch.columns or touch.replaced or len(touch.rollovers) != 1:
            return False
        kind = event.get("kind")
        if kind == "ColumnsStreamed":
            return self._transform(Action.REORDER, event, touch)
        if kind in ("ModelChanged", "ColumnDataChanged") and event.get("cols") is None:
            return self._transform(Action.REAPPEND, event, touch)
        return False

    def _transform(self, action: Action, event: dict[str, Any], touch: Touch) -> bool:
        ''' Apply a server stream (REORDER) or data replacement (REAPPEND) so
        that our pending rows come after it, as on the server.

        Returns:
            bool : whether it applied (False: the columns differ; resync instead)
        '''
        source = event["model"]
        attr = event["attr"]
        current = getattr(source, attr)
        rows = touch.rows
        [rollover] = touch.rollovers
        if action is Action.REORDER:
            theirs = event["data"]
            if set(theirs) != set(current):
                return False
            new = {c: join_rows([current[c][:max(0, len(current[c]) - rows)], theirs[c],
                                 current[c][max(0, len(current[c]) - rows):]], rollover) for c in current}
        else:
            theirs = event.get("new", event.get("data"))
            if not isinstance(theirs, dict) or set(theirs) != set(current):
                return False
            new = {c: concat_rows(theirs[c], current[c][max(0, len(current[c]) - rows):], rollover)
                   for c in current}
        source.set_from_json(attr, new, setter=self._setter)
        return True

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
            self._applying.active = True
            try:
                return reconcile(doc, Serialized(reply.content["doc"], reply.buffers), self._setter,
                                 self.outbox.pending())
            except DeserializationError as e:
                unknown = unknown_model_types(reply.content)
                if not unknown:
                    raise
                raise unknown_model_error(unknown, self._url) from e
            finally:
                self._applying.active = False

    def apply_pull(self, reply: Message[Any], document: Document) -> bool:
        ''' Apply a PULL-DOC-REPLY to ``document``, in order with server
        patches (the reader thread), and bind it if the session has no
        document yet. The session's own document, if it has content, is
        brought to the server's state in place (:meth:`apply_resync`), so the
        model objects the program holds stay in it; any other is replaced.

        Returns:
            bool : whether to resynchronise again (see :meth:`apply_resync`)

        Raises:
            UnknownModelType: the server's document has model types this process lacks
        '''
        if document is self.document and document.roots:
            return self.apply_resync(reply)
        with self.lock:
            self._applying.active = True
            try:
                reply.push_to_document(document)  # type: ignore[attr-defined]  # a PULL-DOC-REPLY
            except DeserializationError as e:
                unknown = unknown_model_types(reply.content)
                if not unknown:
                    raise
                raise unknown_model_error(unknown, self._url) from e
            finally:
                self._applying.active = False
            if self.document is None:
                self.attach(document)
        return False


def unknown_model_types(content: Any) -> list[str]:
    ''' The model type names in serialized document content (a PULL-DOC-REPLY's,
    or a PATCH-DOC's) that no model class of this process has, sorted.
    '''
    from bokeh.model import Model
    known = Model.model_class_reverse_map
    found: set[str] = set()
    stack = [content]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            name = item.get("name")
            if item.get("type") == "object" and isinstance(name, str) and name not in known and name != "Figure":
                found.add(name)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return sorted(found)


def unknown_model_error(names: list[str], url: str | None) -> UnknownModelType:
    ''' The error for a document whose model types ``names`` this process lacks. '''
    modules = sorted({name.rsplit(".", 1)[0] for name in names if "." in name})
    packages = sorted({module.split(".", 1)[0] for module in modules})
    types = ", ".join(repr(name) for name in names)
    if modules:
        todo = (f"import {', '.join(modules)} before pulling (i.e. `import {', '.join(packages)}`)"
                if modules != packages else f"`import {', '.join(packages)}` before pulling")
    else:
        todo = "define or import the model classes of those names before pulling"
    message = (f"the session's document uses model type(s) {types}, which this process does not define: "
               f"{todo}. A client needs the same model classes as the server (bokehsync does not import "
               "modules named by a server)")
    first = names[0]
    return UnknownModelType(message, url, type_name=first,
                            module=first.rsplit(".", 1)[0] if "." in first else "", type_names=tuple(names))
