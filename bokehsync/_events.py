''' Which document changes to serialize when, and how many go in one PATCH-DOC.

Light changes (a scalar property) are queued as events and serialized when
sent, so a burst costs one serialization. Column changes keep the column's old
and new values alive (in their ``callback_invoker``) until serialized, so they
are serialized at once. Merged runs are split so no PATCH-DOC nears the
server's message size limit, and so that a PATCH-DOC the server rejects
changed nothing there (:class:`Grouping`).
'''
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bokeh.document.events import ColumnDataChangedEvent, ColumnsPatchedEvent, ColumnsStreamedEvent

__all__ = (
    'EAGER_BYTES',
    'PATCH_BYTES',
    'Grouping',
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
    ''' Split ``events``, in order, into runs of about ``PATCH_BYTES`` at most,
    that :class:`Grouping` lets share a PATCH-DOC.
    '''
    group: list[Any] = []
    total = 0
    grouping = Grouping()
    for event in events:
        size = event_bytes(event)
        risk = risk_of_event(event)
        if group and (total + size > PATCH_BYTES or not grouping.admits(risk)):
            yield group
            group, total, grouping = [], 0, Grouping()
        grouping.add(risk)
        group.append(event)
        total += size
    if group:
        yield group


#: What a change risks on the server: None if applying it cannot fail there
#: because of other clients' changes; ``("stream", model id, columns)`` for a
#: stream (it fails if the columns changed); ``("patch",)`` for a patch (it
#: fails if the rows it names are gone).
Risk = tuple[Any, ...] | None


def risk_of_event(event: Any) -> Risk:
    ''' The :data:`Risk` of a bokeh change event. '''
    if isinstance(event, ColumnsStreamedEvent):
        return ("stream", event.model.id, frozenset(event.data))
    if isinstance(event, ColumnsPatchedEvent):
        return ("patch",)
    return None


def risk_of_rep(rep: dict[str, Any]) -> Risk:
    ''' The :data:`Risk` of a serialized change event. '''
    kind = rep.get("kind")
    if kind == "ColumnsStreamed":
        data = rep.get("data")
        entries = data.get("entries", []) if isinstance(data, dict) and data.get("type") == "map" \
            else list((data or {}).items())
        return ("stream", rep["model"]["id"], frozenset(k for k, _ in entries))
    if kind == "ColumnsPatched":
        return ("patch",)
    return None


class Grouping:
    ''' Which changes may share a PATCH-DOC.

    The Bokeh server applies a PATCH-DOC's events in order; when one fails,
    the server answers ERROR, but keeps the events applied before it and
    never broadcasts them (``bokeh/server/session.py``: the pending writes are
    dropped with the exception). The other clients would then never learn of
    them. So a change that can fail (:data:`Risk`) only goes first in a
    PATCH-DOC, where its failure leaves nothing applied; the exception is a
    run of streams to one source with the same columns, which fail or pass
    together. Changes that cannot fail may follow.
    '''

    def __init__(self) -> None:
        self._state: Risk | str = "empty"

    def admits(self, risk: Risk) -> bool:
        ''' Whether a change of ``risk`` may join the PATCH-DOC built so far. '''
        return risk is None or self._state == "empty" or (self._state == risk and risk[0] == "stream")

    def add(self, risk: Risk) -> None:
        ''' A change of ``risk`` joined (:meth:`admits` said yes). '''
        if risk is not None:
            self._state = risk if self._state in ("empty", risk) else "closed"
        elif self._state != "empty":
            self._state = "closed" if self._state != "plain" else "plain"
        else:
            self._state = "plain"

    def admits_all(self, risks: list[Risk]) -> bool:
        ''' Whether changes of ``risks``, in order, may all join. '''
        probe = Grouping()
        probe._state = self._state
        for risk in risks:
            if not probe.admits(risk):
                return False
            probe.add(risk)
        return True
