''' The items of an outbox's queue besides serialized messages, and what
any queued or unacknowledged item touches (for ``_converge``). No sockets.
'''
from __future__ import annotations

from typing import Any

from bokeh.protocol.message import Message

from ._coalesce import QueuedStream
from ._converge import Pending

__all__ = (
    'Events',
    'Summary',
    'changes_in',
    'named_in',
    'touches_of',
)


class Events(list):  # type: ignore[type-arg]
    ''' A run of queued document change events, serialized when taken. '''

    #: What the first ``counted`` events touch (``touches_of``; events are only appended).
    touches: Pending | None = None
    counted: int = 0


def touches_of(item: Message[Any] | Events | QueuedStream) -> Pending:
    ''' What one queued or unacknowledged item touches, counted once per item
    (for a run of events, once per event): a server patch asks for all of it
    (``Outbox.pending``), and with thousands of our changes waiting, counting
    them again per server patch made applying 10,000 server patches
    quadratic.
    '''
    if isinstance(item, QueuedStream):
        pending = Pending()
        pending.add_stream(item.model.id, item.attr, item.rows, item.rollover)
        return pending
    if isinstance(item, Events):
        if item.touches is None:
            item.touches = Pending()
        for event in item[item.counted:]:
            model = getattr(event, "model", None)
            item.touches.add_event(event.kind, model.id if model is not None else None, getattr(event, "attr", None))
        item.counted = len(item)
        return item.touches
    cached: Pending | None = getattr(item, "_bokehsync_touches", None)
    if cached is None:
        cached = Pending()
        if item.msgtype == "PATCH-DOC":
            for rep in item.content["events"]:
                cached.add_rep(rep)
        item._bokehsync_touches = cached  # type: ignore[attr-defined]
    return cached


def changes_in(item: Message[Any] | Events | QueuedStream) -> int:
    ''' How many document changes an item carries (0 for a request). '''
    if isinstance(item, Events):
        return len(item)
    if isinstance(item, QueuedStream):
        return item.count
    return len(item.content["events"]) if item.msgtype == "PATCH-DOC" else 0


class Summary:
    ''' What a list of queued and unacknowledged items touches, computed again
    only when the items change. The server writes many patches between two of
    its OKs (a callback per change of ours): the same items, the same answer.
    An item is the same if it is the same object with as many changes (runs of
    events and queued streams only grow, messages never change); the cache
    holds the items, so no id is reused. Called holding the document lock.
    '''

    def __init__(self) -> None:
        self._cached: tuple[list[Any], list[int], Pending] | None = None

    def of(self, items: list[Message[Any] | Events | QueuedStream]) -> Pending:
        ''' The merged :func:`touches_of` of ``items`` (read only: it may be shared). '''
        sizes = [changes_in(item) for item in items]
        cached = self._cached
        if cached is not None and len(cached[0]) == len(items) and cached[1] == sizes \
                and all(a is b for a, b in zip(cached[0], items, strict=True)):
            return cached[2]
        pending = Pending()
        for item in items:
            pending.merge(touches_of(item))
        self._cached = (items, sizes, pending)
        return pending

    def forget(self) -> None:
        ''' Drop the cache (it holds the items, an acknowledged message among them). '''
        self._cached = None


def named_in(message: Message[Any], ids: set[str]) -> set[str]:
    ''' The models of ``ids`` a serialized message refers to by reference
    (``{"id": ...}``, as bokeh writes a model the receiver already has; lists
    are looked into when their first item is a dict or a list, so columns of
    numbers are skipped). The Bokeh server drops a whole PATCH-DOC naming a
    model it has removed (bokeh's ``Document.apply_json_patch``, "previously
    known reference"), with an OK.
    '''
    found: set[str] = set()
    stack: list[Any] = [message.content]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            if len(item) == 1 and item.get("id") in ids:
                found.add(item["id"])
            stack.extend(value for value in item.values() if type(value) in (dict, list))
        elif type(item) is list and item and type(item[0]) in (dict, list):
            stack.extend(value for value in item if type(value) in (dict, list))
    return found
