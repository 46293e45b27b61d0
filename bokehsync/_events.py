''' Which document changes to serialize when, and how many go in one PATCH-DOC.

Light changes (a scalar property) are queued as events and serialized when
sent, so a burst costs one serialization. Column changes keep the column's old
and new values alive (in their ``callback_invoker``) until serialized, so they
are serialized at once. Merged runs are split so no PATCH-DOC nears the
server's message size limit.
'''
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bokeh.document.events import ColumnDataChangedEvent, ColumnsPatchedEvent, ColumnsStreamedEvent

__all__ = (
    'EAGER_BYTES',
    'PATCH_BYTES',
    'event_bytes',
    'is_heavy',
    'size_groups',
)


#: Changes merged into one PATCH-DOC add up to about this many bytes at most.
PATCH_BYTES = 4 * 1024 * 1024


def event_bytes(event: Any) -> int:
    ''' A cheap estimate of an event's serialized size. '''
    size = 256
    for name in ("data", "new", "patches"):
        value = getattr(event, name, None)
        if isinstance(value, dict):
            for column in value.values():
                nbytes = getattr(column, "nbytes", None)
                if nbytes is None:
                    try:
                        nbytes = 16 * len(column)
                    except TypeError:
                        nbytes = 16
                size += nbytes
        elif value is not None:
            size += getattr(value, "nbytes", 0)
    return size


#: A change estimated above this many bytes is serialized as soon as it happens.
EAGER_BYTES = 64 * 1024


_SCALARS = (int, float, str, bool, type(None))

_COLUMN_EVENTS = (ColumnsStreamedEvent, ColumnsPatchedEvent, ColumnDataChangedEvent)


def is_heavy(event: Any) -> bool:
    ''' Whether ``event`` holds column data (or is large): serialize it at once.
    Runs for every change, so the common case (a scalar property) is quick.
    '''
    if isinstance(event, _COLUMN_EVENTS):
        return True
    if isinstance(getattr(event, "new", None), _SCALARS) and not hasattr(event, "data"):
        return False
    return event_bytes(event) > EAGER_BYTES


def size_groups(events: list[Any]) -> Iterator[list[Any]]:
    ''' Split ``events``, in order, into runs of about ``PATCH_BYTES`` at most. '''
    group: list[Any] = []
    total = 0
    for event in events:
        size = event_bytes(event)
        if group and total + size > PATCH_BYTES:
            yield group
            group, total = [], 0
        group.append(event)
        total += size
    if group:
        yield group
