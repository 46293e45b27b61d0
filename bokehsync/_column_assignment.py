''' Column assignments (``source.data["y"] = ...``, ``source.data.update(...)``)
in both directions, so that they mean on the server and here what they mean
in the program that made them. No sockets.

bokeh sends a column assignment as a ``ColumnDataChanged`` event naming the
columns assigned (``cols``) and carrying only those columns
(``PropertyValueColumnData.update``, ``ColumnDataChangedEvent.to_serializable``).
Applying one, bokeh's Python side ignores ``cols`` and sets ``data`` to the
columns it carries (``ColumnDataChangedEvent._handle_event`` calls
``set_from_json(attr, data)``): the other columns are lost. Measured on a
Bokeh 3.9 server:

* a client's ``source.data["y"] = ...`` leaves the server's source with the
  column ``y`` only (and every other client and browser gets that);
* a server app's ``source.data["y"] = ...`` leaves a Python client's source
  with ``y`` only, while the server keeps ``x``.

bokeh.client does both. bokehsync sends an assignment as a replacement of
the whole ``data`` (:func:`as_sent`: the server ends with what the program
has, at the cost of sending the columns not assigned too), and applies a
server assignment as one of the columns it names, keeping the others
(:func:`keep_other_columns`, what ``cols`` says). Sent, an assignment is a
whole replacement, as ``source.data = {...}`` is: a change another client
made meanwhile to another column of the source is overwritten.
'''
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bokeh.document.events import ColumnDataChangedEvent

if TYPE_CHECKING:
    from bokeh.document.events import DocumentPatchedEvent
    from bokeh.protocol.message import Message

__all__ = (
    'as_sent',
    'assigns_columns',
    'keep_other_columns',
)


def as_sent(event: DocumentPatchedEvent) -> DocumentPatchedEvent:
    ''' The event to send for a local change: a column assignment becomes a
    replacement of the whole ``data`` as it is now; anything else is sent as
    it is. Runs for every local change, in the thread that made it.

    Args:
        event (DocumentPatchedEvent) : a change of the session's document

    Returns:
        DocumentPatchedEvent : ``event``, or a ``ColumnDataChangedEvent`` of
        the same source and property with no ``cols`` and the property's
        value as ``data`` (the live value: bokehsync serializes column events
        at once, holding the document lock; sized by ``_events.event_bytes``)
    '''
    if type(event) is ColumnDataChangedEvent and event.cols is not None:
        # The live value, not a copy: it is serialized before any later change
        # (not so under document.hold(): bokeh hands us held events at unhold()).
        return ColumnDataChangedEvent(event.document, event.model, event.attr, getattr(event.model, event.attr),
                                      setter=event.setter, callback_invoker=event.callback_invoker)
    return event


def assigns_columns(message: Message[Any]) -> bool:
    ''' Whether a server PATCH-DOC holds a column assignment (a
    ``ColumnDataChanged`` with ``cols``), which bokeh's own
    ``apply_to_document`` would apply as a replacement of the whole ``data``.
    '''
    return any(rep.get("kind") == "ColumnDataChanged" and rep.get("cols") is not None
               for rep in message.content.get("events", ()))


def keep_other_columns(event: dict[str, Any]) -> bool:
    ''' Make a decoded server ``ColumnDataChanged`` that names columns replace
    only those: its ``data`` gets the source's other columns as they are
    here. Other events are left as they are. Called holding the document
    lock, just before the event is applied.

    Args:
        event (dict) : one decoded event of a server PATCH-DOC (``model`` is
            the model object), changed in place

    Returns:
        bool : False if the columns then differ in length where the ones the
        server sent did not: the event does not describe the server's source
        (a server app that assigned a column, then streamed, inside
        ``document.hold()``: bokeh serializes the held assignment with the
        rows streamed after it), and the caller resynchronises
    '''
    if event.get("kind") != "ColumnDataChanged" or event.get("cols") is None:
        return True
    current = getattr(event["model"], event["attr"], None)
    theirs = event.get("data")
    if not isinstance(current, dict) or not isinstance(theirs, dict):
        return True
    event["data"] = merged = {**current, **theirs}
    return len(_lengths(merged)) <= 1 or len(_lengths(theirs)) > 1


def _lengths(data: dict[str, Any]) -> set[int]:
    ''' The distinct lengths of the columns of ``data`` (a column without one counts as none). '''
    out: set[int] = set()
    for column in data.values():
        try:
            out.add(len(column))
        except TypeError:
            pass
    return out
