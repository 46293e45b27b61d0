''' Joining rows of ``ColumnDataSource`` columns as bokeh's ``stream()`` does
(``bokeh/core/property/wrappers.py``, ``PropertyValueColumnData._stream``):
numpy if either side is an array, a list otherwise, then the rollover.
'''
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = (
    'concat_rows',
    'join_rows',
)


def join_rows(parts: Sequence[Any], rollover: int | None) -> Any:
    ''' The rows of ``parts`` one after the other, then only the last
    ``rollover`` of them if there are more (None: all).

    Args:
        parts (sequence) : columns (numpy arrays, lists, or other sequences)
        rollover (int or None) : the largest length kept, as ``stream(rollover=)``

    Returns:
        a numpy array if any part is one (empty parts are skipped, as bokeh
        does), else a list
    '''
    if any(isinstance(part, np.ndarray) for part in parts):
        arrays = [part for part in parts if len(part)]
        seq: Any = np.concatenate([np.asarray(part) for part in arrays]) if len(arrays) > 1 \
            else (arrays[0] if arrays else np.asarray(parts[0]))
    else:
        seq = [row for part in parts for row in part]
    if rollover is not None and len(seq) > rollover:
        seq = seq[len(seq) - rollover:]
    return seq


def concat_rows(first: Any, second: Any, rollover: int | None) -> Any:
    ''' ``first`` then ``second``, with the rollover (see :func:`join_rows`). '''
    return join_rows([first, second], rollover)
