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
