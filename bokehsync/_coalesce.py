''' Streams to one source, queued while a PATCH-DOC waits for its OK, merged
into one stream. No sockets.

Each ``source.stream(rows, rollover)`` is a change the server applies, and
broadcasts to every other client of the session, one at a time: N writers
streaming into one shared source cost the server N² broadcasts, and each
receiver a copy of the column per stream. While our previous PATCH-DOC is
unacknowledged, consecutive streams into the same source with the same
columns and ``rollover`` wait anyway; they go as one stream of all their rows.
The server, and every client, ends with the same column: keeping the last
``rollover`` rows after each stream, or once after all of them, leaves the
same rows (``_streams.join_rows``). What changes is the granularity: a
server-side ``on_change("data")`` callback, and other viewers, see one
stream of the merged rows where there were several.

The rows are copied when queued (only the new rows: the caller may reuse its
arrays), and the bokeh event is not kept: it holds the column's old value.
'''
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from bokeh.document.events import ColumnsStreamedEvent

from ._streams import join_rows

if TYPE_CHECKING:
    from bokeh.document import Document
    from bokeh.model import Model

__all__ = (
    'QueuedStream',
)


def _copy(rows: Any) -> Any:
    ''' The rows of one column, as a list or a numpy array the caller cannot change. '''
    if isinstance(rows, list):
        return list(rows)
    return np.array(rows, copy=True)


class QueuedStream:
    ''' One or more streams to one source, waiting to be sent as one.

    Args:
        event (ColumnsStreamedEvent) : the first stream
    '''

    __slots__ = ('attr', 'columns', 'count', 'document', 'model', 'rollover', 'rows')

    def __init__(self, event: ColumnsStreamedEvent) -> None:
        self.document: Document = event.document
        self.model: Model = event.model
        self.attr: str = event.attr
        self.rollover: int | None = event.rollover
        self.columns: dict[str, list[Any]] = {name: [_copy(rows)] for name, rows in event.data.items()}
        #: How many streams were merged (changes, for counting).
        self.count = 1
        #: Rows of each column so far.
        self.rows = len(next(iter(event.data.values()), ()))

    def accepts(self, event: ColumnsStreamedEvent) -> bool:
        ''' Whether ``event`` can join: the same source, columns and rollover. '''
        return event.model is self.model and event.attr == self.attr and event.rollover == self.rollover \
            and event.data.keys() == self.columns.keys()

    def add(self, event: ColumnsStreamedEvent) -> None:
        ''' Append the rows of ``event`` (:meth:`accepts` said yes). '''
        for name, rows in event.data.items():
            self.columns[name].append(_copy(rows))
        self.count += 1
        self.rows += len(next(iter(event.data.values()), ()))

    def event(self) -> ColumnsStreamedEvent:
        ''' One stream event of all the rows, to serialize (holding the document lock). '''
        data = {name: join_rows(parts, None) if len(parts) > 1 else parts[0] for name, parts in self.columns.items()}
        return ColumnsStreamedEvent(self.document, self.model, self.attr, data, self.rollover)
