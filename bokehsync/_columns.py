''' Serialized columns of a ``ColumnDataSource`` (bokeh's representations of
them, as a PATCH-DOC or PUSH-DOC carries them): how big they are on the wire,
and how to cut them into chunks of rows without copying them. No sockets, no
document.

A column is one of:

* an ndarray over a buffer: ``{"type": "ndarray", "array": {"type": "bytes",
  "data": Buffer}, "shape": [n, ...], "dtype": ..., "order": ...}`` (numpy
  columns; with bokeh < 3.9 a PUSH-DOC inlines the bytes as base64 instead of
  a ``Buffer``);
* an ndarray over a list (string and object arrays): ``"array": [...]``;
* a ``typed_array`` (Python ``array.array``) over a buffer;
* a plain list of values: numbers, strings, None, nested lists, or nested
  representations such as one 2-D ndarray per row (an image column).

A chunk of rows of a buffer column is a ``memoryview`` slice of bokeh's own
buffer (no copy); of a list, a list slice (the values are shared). Sizes are
exact for buffers and an upper bound for JSON (:func:`json_bound`), so a
chunk planned under a limit is under it on the wire.
'''
from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from bokeh.core.serialization import Buffer, Deserializer
from bokeh.util.serialization import make_id

__all__ = (
    'Column',
    'Unsplittable',
    'boundaries',
    'buffers_in',
    'event_json_bound',
    'json_bound',
)

#: JSON-escapes a str exactly as bokeh's encoder does (``json`` with
#: ``ensure_ascii``), in C.
_encode_str = json.encoder.encode_basestring_ascii

#: The longest JSON a number takes, with its comma: ``-2.2250738585072014e-308,``
#: (bokeh sends integers above 2**53 as floats).
_NUMBER = 25


class Unsplittable(Exception):
    ''' One value that cannot be cut is larger than allowed.

    Args:
        what (str) : the value, e.g. ``"row 0"`` or ``"an array of shape (2, 3)"``
        size (int) : its size in bytes
        column (str, optional) : the column it is in
    '''

    def __init__(self, what: str, size: int, column: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.size = size
        self.column = column


def json_bound(value: Any, inline: bool = False) -> int:
    ''' An upper bound of the length of ``value``'s JSON as bokeh writes it
    (compact separators, ASCII), exact except for numbers, which count as
    their longest form. Buffers count as their reference ``{"id": ...}``,
    or with ``inline`` as base64 text (how bokeh < 3.9 writes the arrays of a
    PUSH-DOC, which carries no buffers; gzip only makes that shorter).
    '''
    t = type(value)
    if t is float or t is int:
        return _NUMBER - 1
    if t is str:
        return len(_encode_str(value))
    if value is None or t is bool:
        return 5
    if t is list or t is tuple:
        n = len(value)
        if n == 0:
            return 2
        types = _types(value)
        if types <= _NUMBERS:
            return 1 + n * _NUMBER
        if types == _STR:
            return 1 + n + sum(map(len, map(_encode_str, value)))
        return 1 + n + sum(json_bound(item, inline) for item in value)
    if t is dict:
        if not value:
            return 2
        return 1 + sum(json_bound(k) + json_bound(v, inline) + 2 for k, v in value.items())
    if isinstance(value, Buffer):
        if inline:
            n = memoryview(value.data).nbytes
            return 4 * ((n + n // 64 + 64) // 3 + 1) + 2  # base64 of gzip's worst case, quoted
        return 9 + len(_encode_str(str(value.id)))
    if isinstance(value, dict):  # TypedDict reps are plain dicts; other mappings, to be safe
        return json_bound(dict(value), inline)
    from bokeh.core.json_encoder import serialize_json
    return len(serialize_json(value))


#: The JSON of a scalar property set, without its id, property name and value.
_MODEL_CHANGED = len('{"kind":"ModelChanged","model":{"id":},"attr":,"new":}')


def event_json_bound(rep: dict[str, Any]) -> int:
    ''' :func:`json_bound` of one serialized change event, quick for the
    common one in a burst: a scalar property set
    (``{"kind": "ModelChanged", "model": {"id": ...}, "attr": ..., "new": ...}``),
    counted without walking it. A burst of 10,000 of them is measured before
    it is sent.
    '''
    if rep.get("kind") == "ModelChanged" and len(rep) == 4:
        model = rep.get("model")
        model_id: Any = model.get("id") if type(model) is dict and len(model) == 1 else None
        attr = rep.get("attr")
        new: Any = rep.get("new")
        if isinstance(model_id, str) and isinstance(attr, str):
            if isinstance(new, bool) or new is None:
                value = 5
            elif type(new) is int or type(new) is float:
                value = _NUMBER - 1
            elif type(new) is str:
                value = len(_encode_str(new))
            else:
                return json_bound(rep)
            return _MODEL_CHANGED + len(_encode_str(model_id)) + len(_encode_str(attr)) + value
    return json_bound(rep)


def _types(values: Any) -> set[type]:
    ''' The types of the items of a list (in C: lists of millions are common). '''
    return set(map(type, values))


_NUMBERS = frozenset((int, float))
_STR = {str}
_SCALAR_TYPES = frozenset((int, float, str, bool, type(None)))


def buffers_in(value: Any) -> Iterator[Buffer]:
    ''' The buffers a representation refers to, in order. '''
    stack = [value]
    while stack:
        item = stack.pop()
        t = type(item)
        if t is dict:
            stack.extend(reversed(list(item.values())))
        elif t is list or t is tuple:
            if item and not _types(item) <= _SCALAR_TYPES:
                stack.extend(reversed(item))
        elif isinstance(item, Buffer):
            yield item


def _nbytes(buffer: Buffer) -> int:
    return memoryview(buffer.data).nbytes


@dataclass
class Column:
    ''' One serialized column, ready to be cut into row chunks.

    Use :meth:`of` to make one.
    '''
    name: str
    rep: Any
    rows: int
    #: Bytes per row of a buffer column (None for JSON columns).
    row_bytes: int | None = None
    #: The buffer's bytes (buffer columns).
    data: memoryview | None = None
    #: The list holding the rows (JSON columns: the list itself, or an ndarray's list).
    items: list[Any] | None = None

    @classmethod
    def of(cls, name: str, rep: Any) -> Column:
        ''' The column of representation ``rep``.

        Raises:
            Unsplittable: a multi-dimensional array (its rows cannot be
                streamed: bokeh appends flat arrays)
        '''
        if isinstance(rep, dict) and rep.get("type") in ("ndarray", "typed_array"):
            array = rep.get("array")
            if isinstance(array, list):  # an ndarray of strings or objects
                return cls(name, rep, len(array), items=array)
            data = _bytes_of(rep)
            shape = rep.get("shape")
            if rep["type"] == "ndarray" and isinstance(shape, list) and len(shape) != 1:
                raise Unsplittable(f"an array of shape {tuple(shape)}, which cannot be sent in parts "
                                   "(bokeh streams flat arrays only)", data.nbytes, name)
            itemsize = np.dtype(rep["dtype"]).itemsize if rep.get("dtype") not in (None, "object") else 1
            rows = shape[0] if isinstance(shape, list) and shape else data.nbytes // max(1, itemsize)
            return cls(name, rep, rows, row_bytes=itemsize, data=data)
        if isinstance(rep, (list, tuple)):
            return cls(name, rep, len(rep), items=list(rep) if isinstance(rep, tuple) else rep)
        raise Unsplittable(f"a value of type {type(rep).__name__}, not a column of rows",
                           json_bound(rep), name)

    def cut(self, start: int, stop: int) -> Any:
        ''' The representation of rows ``start`` to ``stop`` (a view or slice,
        never a copy of the data).
        '''
        rep = self.rep
        if self.data is not None:
            assert self.row_bytes is not None
            view = self.data[start * self.row_bytes:stop * self.row_bytes]
            out = dict(rep, array={"type": "bytes", "data": Buffer(make_id(), view)})
            if rep["type"] == "ndarray":
                out["shape"] = [stop - start]
                if isinstance(rep["array"].get("data"), str):
                    out["order"] = sys.byteorder  # decoded by bokeh into this machine's order
            return out
        assert self.items is not None
        rows = self.items[start:stop]
        if isinstance(rep, dict):
            return dict(rep, array=rows, shape=[stop - start])
        return rows

    def empty(self) -> Any:
        ''' The representation of no rows, of the same type. '''
        if self.data is not None and isinstance(self.rep["array"].get("data"), str):
            # Inline (bokeh < 3.9 PUSH-DOC): an empty list of the same dtype,
            # which every bokeh release decodes without a buffer.
            return {"type": "ndarray", "array": [], "shape": [0], "dtype": self.rep["dtype"],
                    "order": sys.byteorder}
        return self.cut(0, 0)

    def costs(self, room: int, budget: int) -> tuple[int, np.ndarray | None, np.ndarray | None]:
        ''' What each row costs in a part: JSON (a constant, plus an array of
        per-row bounds for JSON columns) and the bytes of the buffers inside
        its cells (an array, or None if it has none).

        Raises:
            Unsplittable: one row alone is over ``room`` bytes of JSON or has
                buffers over ``budget`` bytes
        '''
        if self.data is not None:
            return 0, None, None
        items = self.items
        assert items is not None
        n = len(items)
        if n == 0:
            return 0, None, None
        types = _types(items)
        if types <= _NUMBERS:
            return _NUMBER, None, None
        if types == _STR:
            sizes = np.fromiter(map(len, map(_encode_str, items)), dtype=np.int64, count=n)
            sizes += 1
            self._check_rows(sizes, room)
            return 0, sizes, None
        json_sizes = np.empty(n, dtype=np.int64)
        bin_sizes: np.ndarray | None = None
        for i, value in enumerate(items):
            json_sizes[i] = json_bound(value) + 1
            if type(value) is dict or type(value) is list:
                held = sum(_nbytes(b) for b in buffers_in(value))
                if held:
                    if held > budget:
                        raise Unsplittable(f"row {i} ({_describe_cell(value)})", held, self.name)
                    if bin_sizes is None:
                        bin_sizes = np.zeros(n, dtype=np.int64)
                    bin_sizes[i] = held
        self._check_rows(json_sizes, room)
        return 0, json_sizes, bin_sizes

    def _check_rows(self, sizes: np.ndarray, room: int) -> None:
        ''' Raise for a row whose JSON alone is over ``room``; a row whose
        bound is over but whose exact JSON is not gets its exact size.
        '''
        from bokeh.core.json_encoder import serialize_json
        assert self.items is not None
        for i in np.flatnonzero(sizes > room):
            exact = len(serialize_json(self.items[int(i)])) + 1
            if exact > room:
                raise Unsplittable(f"row {int(i)} ({_describe_cell(self.items[int(i)])})", exact - 1, self.name)
            sizes[i] = exact


def _describe_cell(value: Any) -> str:
    if isinstance(value, str):
        return f"a string of {len(value):,} characters"
    if isinstance(value, dict) and value.get("type") == "ndarray":
        shape = value.get("shape")
        return f"an array of shape {tuple(shape) if isinstance(shape, list) else shape}"
    if isinstance(value, list):
        return f"a list of {len(value):,} items"
    return f"a {type(value).__name__}"


def _bytes_of(rep: dict[str, Any]) -> memoryview:
    ''' The bytes of a buffer-backed ndarray or typed_array representation. '''
    data = rep["array"].get("data") if isinstance(rep.get("array"), dict) else None
    if isinstance(data, Buffer):
        return memoryview(data.data).cast("B")
    # Inline base64 (a PUSH-DOC of bokeh < 3.9): let bokeh decode it, gzip and
    # byte order included; a copy, as bokeh's base64 was already.
    array = Deserializer().deserialize(rep)
    return memoryview(np.ascontiguousarray(array).data).cast("B")


def boundaries(columns: list[Column], rows: int, budget: int, room: int) -> list[int]:
    ''' Cut ``rows`` rows of ``columns`` (all advanced together) into chunks.

    Each chunk's slice of a buffer column is at most ``budget`` bytes, the
    buffers inside one JSON column's cells add up to at most ``budget`` bytes,
    and the JSON of all columns together is at most ``room`` bytes.

    Args:
        columns (list[Column]) : the columns of one source
        rows (int) : their length
        budget (int) : bytes a websocket message may carry
        room (int) : bytes of JSON the chunk may take

    Returns:
        list[int] : ``[0, b1, ..., rows]``, the first row of each chunk, then ``rows``

    Raises:
        Unsplittable: one row alone is over a limit
    '''
    cap = rows
    const = 0
    json_arrays: list[np.ndarray] = []
    bin_arrays: list[np.ndarray] = []
    for column in columns:
        if column.row_bytes:
            if column.row_bytes > budget:
                raise Unsplittable("row 0", column.row_bytes, column.name)
            cap = min(cap, budget // column.row_bytes)
        c, js, bs = column.costs(room, budget)
        const += c
        if js is not None:
            json_arrays.append(js)
        if bs is not None:
            bin_arrays.append(bs)
    if const:
        if const > room:
            raise Unsplittable("row 0", const, columns[0].name if columns else None)
        cap = min(cap, room // const)
    cap = max(cap, 1)
    if rows == 0:
        return [0, 0]
    if not json_arrays and not bin_arrays:
        return [*range(0, rows, cap), rows]
    limits: list[tuple[np.ndarray, int]] = []
    if json_arrays:
        per_row = json_arrays[0] if len(json_arrays) == 1 else np.sum(json_arrays, axis=0)
        if const:
            per_row = per_row + const
        if int(per_row.max()) > room:
            raise Unsplittable("one row of all its columns", int(per_row.max()), None)
        limits.append((np.cumsum(per_row), room))
    limits.extend((np.cumsum(b), budget) for b in bin_arrays)
    out = [0]
    start = 0
    while start < rows:
        stop = min(rows, start + cap)
        for cumulative, limit in limits:
            before = int(cumulative[start - 1]) if start else 0
            fits = int(np.searchsorted(cumulative, before + limit, side="right"))
            stop = min(stop, max(fits, start + 1))
        out.append(stop)
        start = stop
    return out
