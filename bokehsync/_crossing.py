''' Applying a server PATCH-DOC that crosses changes of ours still on their
way, event by event, by the rules of ``_converge``: skip an event, apply it,
or apply it rearranged (a stream's rows before our pending rows, our pending
rows after a data replacement), and say when only a resync can repair the
document. A server PATCH-DOC holding a column assignment comes here too,
crossing or not: it is applied keeping the columns it does not name
(``_column_assignment``).
'''
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bokeh.core.serialization import Deserializer, UnknownReferenceError
from bokeh.document.callbacks import invoke_with_curdoc
from bokeh.document.events import DocumentPatchedEvent

from ._column_assignment import keep_other_columns
from ._converge import Action, Pending, Touch, decide, key_of
from ._streams import concat_rows

if TYPE_CHECKING:
    from bokeh.document import Document
    from bokeh.protocol.message import Message

__all__ = (
    'apply_crossing',
)

_SCALARS = (int, float, str, bool, type(None))


def apply_crossing(doc: Document, message: Message[Any], pending: Pending, setter: Any,
        left_to_resync: set[tuple[str, str]], removed: set[str] | None = None) -> str | None:
    ''' Apply a server PATCH-DOC to ``doc`` while changes of ours are on their
    way, event by event: bokeh's ``Document.apply_json_patch`` with a
    decision of ``_converge`` per event. Called holding the document lock.

    Args:
        doc (Document) : the session's document
        message (Message) : the server's PATCH-DOC
        pending (Pending) : what our changes not yet applied by the server touch
        setter (object) : the session, the setter of the changes made here
        left_to_resync (set) : the (model id, property) keys whose server
            changes wait for the resync, updated here: an event left to the
            resync leaves every later one of its key to it too, until the
            caller has applied the resync's reply and cleared the set
        removed (set, optional) : filled with the ids of the models this
            patch removed on the server (the server drops a patch of ours
            that names one, see ``Outbox.dropped_by_server``)

    Returns:
        str or None : why the document must be resynchronised, if it must

    Raises:
        UnknownReferenceError: the patch names a model the document never had
    '''
    deserializer = Deserializer(list(doc.models), setter=setter)
    try:
        patch = deserializer.deserialize(message.payload)
    except UnknownReferenceError as e:
        if doc.models.seen(e.id):
            if removed is not None:
                removed.update(str(rep["model"]["id"]) for rep in message.content.get("events", [])
                               if rep.get("kind") == "RootRemoved" and isinstance(rep.get("model"), dict)
                               and doc.models.seen(rep["model"].get("id")))
            # bokeh drops the whole patch (a model updated on one side while
            # removed on the other). Its other events are lost here, and if
            # the server removed a model we removed too, it drops our change
            # naming it (with an OK): only a resync brings the two together.
            return ("a server change names a model removed here while changes of ours were on their way "
                    "(the server drops a change that names a removed model)")
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
            key = key_of(event)
            if key is not None and key in left_to_resync:
                # An earlier change to it was left to the resync: the rows
                # here no longer number as the server's, so this one is too.
                if not reasons:
                    reasons.append(f"a server {kind} changed a property left to the resync")
                continue
            action, touch = decide(event, pending)
            if action is Action.SKIP:
                # Ours replaces it on the server if the server applied it
                # first (another client's change); but a server callback
                # reacting to our change is applied after ours, and reaches
                # us before our OK too: nothing tells the two apart, so
                # unless it leaves what we have, the server's document decides.
                if not reasons and not _leaves_ours(event, doc):
                    reasons.append(f"a server {kind} arrived while a change of ours to the same property was on its "
                                   "way: it was applied before ours, or after it (a server callback reacting to ours)")
                continue
            if action in (Action.REORDER, Action.REAPPEND):
                assert touch is not None
                if _transform(action, event, touch, setter):
                    if action is Action.REAPPEND and not reasons:
                        # Exact if another client replaced the data before our
                        # streams; a server callback replacing it in reaction
                        # to them did so after (our rows are gone there).
                        reasons.append("a server data replacement arrived while streams of ours to the source were "
                                       "on their way: it was applied before them, or after them (a server callback "
                                       "reacting to ours)")
                    continue
                action = Action.RESYNC
            if action is Action.RESYNC and touch is not None and touch.streams:
                # Our pending rows must stay the source's last rows, as the
                # resync keeps them (_reconcile): a stream or data replacement
                # goes before them; anything else (a patch, whose row numbers
                # are the server's; a column replaced) is left to the resync
                # rather than applied over them.
                _keep_ours_last(event, touch, setter)
                if key is not None:
                    left_to_resync.add(key)
                if not reasons:
                    reasons.append(f"a server {kind} crossed changes of ours to the same source, and no "
                                   "local rule gives the server's result")
                continue
            if not keep_other_columns(event):
                # It does not describe the server's source: leave the source to the resync.
                if key is not None:
                    left_to_resync.add(key)
                if not reasons:
                    reasons.append("a server column assignment would leave the source's columns with different "
                                   "lengths")
                continue
            DocumentPatchedEvent.handle_event(doc, event, setter)
            if action is Action.RESYNC and not reasons:
                reasons.append(f"a server {kind} crossed a change of ours to the same property, and no "
                               "local rule gives the server's result")
    invoke_with_curdoc(doc, run)
    doc.models.flush_synced(lambda model: not deserializer.has_ref(model))
    gone = before - {model.id for model in doc.models} if removes else set()
    if removed is not None:
        removed.update(gone)
    if gone and not reasons:
        reasons.append("a server change removed models while changes of ours were on their way (the "
                       "server drops a change that names a removed model)")
    return reasons[0] if reasons else None


def _leaves_ours(event: dict[str, Any], doc: Document) -> bool:
    ''' Whether a skipped server event sets what the document already has (a
    scalar property of the same value and type, or the same title): then it
    ends the same whether the server applied it before or after ours.
    '''
    kind = event.get("kind")
    if kind == "TitleChanged":
        return bool(event.get("title") == doc.title)
    if kind != "ModelChanged":
        return False
    new = event.get("new")
    if type(new) not in _SCALARS:
        return False
    current = getattr(event["model"], str(event.get("attr")), None)
    return type(current) is type(new) and bool(current == new)


def _keep_ours_last(event: dict[str, Any], touch: Touch, setter: Any) -> bool:
    ''' A server stream or data replacement that no rule gives exactly (our
    pending patches cross it, or our pending streams have other rollovers than
    it), to a source we have pending streams to: apply it with our pending rows
    after its rows. A naive apply would put them before it, or drop them.

    The result is not the server's (a resync follows), but it keeps what the
    resync relies on: a source's last ``touch.rows`` rows are our pending ones
    (``_reconcile`` puts them after the server's rows).

    Returns:
        bool : whether it applied (False: the event is left to the resync)
    '''
    if not touch.streams or not touch.exact or touch.columns or touch.replaced:
        return False
    kind = event.get("kind")
    if kind == "ColumnsStreamed":
        return _transform(Action.REORDER, event, touch, setter)
    if kind in ("ModelChanged", "ColumnDataChanged") and event.get("cols") is None:
        return _transform(Action.REAPPEND, event, touch, setter)
    return False


def _transform(action: Action, event: dict[str, Any], touch: Touch, setter: Any) -> bool:
    ''' Apply a server stream (REORDER) or data replacement (REAPPEND) so
    that our pending rows come after it, as on the server: the stream's rows
    go after the older rows with the stream's rollover, then ours follow with
    our rollover. If our pending streams have several rollovers, ours are
    kept whole (inexact: the caller resyncs).

    Returns:
        bool : whether it applied (False: the columns differ; resync instead)
    '''
    source = event["model"]
    attr = event["attr"]
    current = getattr(source, attr)
    rows = touch.rows
    ours_rollover = next(iter(touch.rollovers)) if len(touch.rollovers) == 1 else None
    if action is Action.REORDER:
        theirs = event["data"]
        if set(theirs) != set(current):
            return False
        new = {}
        for c in current:
            older = current[c][:max(0, len(current[c]) - rows)]
            ours = current[c][max(0, len(current[c]) - rows):]
            new[c] = concat_rows(concat_rows(older, theirs[c], event.get("rollover")), ours, ours_rollover)
    else:
        theirs = event.get("new", event.get("data"))
        if not isinstance(theirs, dict) or set(theirs) != set(current):
            return False
        new = {c: concat_rows(theirs[c], current[c][max(0, len(current[c]) - rows):], ours_rollover)
               for c in current}
    source.set_from_json(attr, new, setter=setter)
    return True
