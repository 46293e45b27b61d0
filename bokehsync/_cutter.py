''' Cutting one serialized event (bokeh's representations) into events that
each fit a websocket message under the server's limit: data replaced, streams,
patches and model graphs; see ``_split`` for what is cut and how. Buffers are
sliced as views of bokeh's buffers, lists as list slices: no column is copied.
'''
from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from bokeh.core.json_encoder import serialize_json
from bokeh.core.serialization import Buffer
from bokeh.protocol.message import Message
from bokeh.protocol.messages.patch_doc import patch_doc

from ._columns import Column, Unsplittable, boundaries, buffers_in, json_bound
from ._compat import add_buffers
from ._parts import Describe, Split, budget_of
from .exceptions import MessageTooBig

__all__ = (
    'Cutter',
    'Source',
    'nbytes',
    'patch_of',
)


def patch_of(reps: list[Any]) -> Message[Any]:
    ''' A PATCH-DOC of serialized events. '''
    message = patch_doc(patch_doc.create_header(), {}, {"events": reps})
    buffers = [b for rep in reps for b in buffers_in(rep)]
    if buffers:
        add_buffers(message, buffers)
    return message


def nbytes(buffer: Buffer) -> int:
    ''' The size of a buffer's data, bytes. '''
    return memoryview(buffer.data).nbytes


def _entries(data: Any) -> list[tuple[str, Any]]:
    ''' A serialized map (``{"type": "map", "entries": [...]}``) as (name, rep) pairs. '''
    if isinstance(data, dict) and data.get("type") == "map":
        return [(str(k), v) for k, v in data.get("entries", [])]
    if isinstance(data, dict):
        return [(str(k), v) for k, v in data.items()]
    return []


def _map(entries: list[tuple[str, Any]]) -> dict[str, Any]:
    return {"type": "map", "entries": [[k, v] for k, v in entries]} if entries else {"type": "map"}


@dataclass
class Source:
    ''' A data source whose rows go in streams after the part that defines it. '''
    ref: dict[str, Any]
    name: str
    columns: list[Column]
    rows: int


class Cutter:
    ''' Cuts serialized events for one limit. '''

    def __init__(self, limit: int, describe: Describe, url: str | None) -> None:
        self.limit = limit
        self.budget = budget_of(limit)
        self.describe = describe
        self.url = url

    # Errors ---------------------------------------------------------------

    def too_big(self, model: str, attr: str, what: str, size: int, column: str | None = None) -> MessageTooBig:
        place = f"{model}.{attr}" + (f"[{column!r}]" if column is not None else "")
        message = (f"{place}: {what} takes {size:,} bytes, over the server's limit of {self.limit:,} bytes per "
                   "websocket message, and a single value cannot be sent in parts; nothing of this change was "
                   "sent. Start the server with a larger limit (bokeh serve --websocket-max-message-size=N, or "
                   "websocket_max_message_size=N of bokeh.server.server.Server) and pass the same N as "
                   "server_max_message_size=N, or make the value smaller")
        return MessageTooBig(message, self.url, model=model, attr=attr, column=column, size=size, limit=self.limit)

    def _unsplittable(self, e: Unsplittable, model: str, attr: str = "data") -> MessageTooBig:
        return self.too_big(model, attr, e.what, e.size, e.column)

    # Events ---------------------------------------------------------------

    def split_event(self, rep: dict[str, Any]) -> Split | None:
        ''' The parts of one event too big for a message (None: it fits alone).

        Raises:
            MessageTooBig
        '''
        kind = rep.get("kind")
        if kind in ("ColumnDataChanged", "ColumnsStreamed"):
            return self.split_data(rep)
        if kind == "ColumnsPatched":
            return self.split_patches(rep)
        if kind == "RootAdded" and isinstance(rep.get("model"), dict):
            obj = rep["model"]
            model = self.describe(str(obj.get("id")), obj.get("name"))
            return self.split_graph(rep, f"the root {model} added")
        if kind == "ModelChanged" and _sources(rep.get("new")):
            model = self._model(rep)
            return self.split_graph(rep, f"{model}.{rep.get('attr')} set")
        self.check_alone(rep)
        return None

    def _model(self, rep: dict[str, Any]) -> str:
        ref = rep.get("model")
        return self.describe(str(ref.get("id")), ref.get("name")) if isinstance(ref, dict) else "the document"

    def check_alone(self, rep: dict[str, Any]) -> None:
        ''' Raise MessageTooBig unless ``rep`` fits a message of its own (exactly measured). '''
        size = len(serialize_json({"events": [rep]}))
        biggest = max((nbytes(b) for b in buffers_in(rep)), default=0)
        if size <= self.budget and biggest <= self.budget:
            return
        kind = rep.get("kind")
        if kind == "TitleChanged":
            raise self.too_big("the document", "title", f"the title ({_describe_value(rep.get('title'))})", size)
        if kind == "RootAdded":
            raise self.graph_too_big(rep.get("model"), max(size, biggest))
        top = (self._model(rep), str(rep.get("attr", kind)), rep.get("new", rep))
        raise self.graph_too_big(rep, max(size, biggest), top)

    def graph_too_big(self, root: Any, size: int, top: tuple[str, str, Any] | None = None) -> MessageTooBig:
        ''' The error for a value (or a graph of models, its sources emptied)
        too big for a message: names the innermost property value that is
        over the limit alone, else the property (or document) holding it all.
        '''
        over: list[tuple[int, str, str, Any]] = []
        if top is not None:
            over.append((size, *top))
        objects = _objects(root)
        for obj in objects:
            model = self.describe(str(obj.get("id")), obj.get("name"))
            for attr, value in (obj.get("attributes") or {}).items():
                value_size = max(json_bound(value), max((nbytes(b) for b in buffers_in(value)), default=0))
                if value_size > self.budget:
                    over.append((value_size, model, attr, value))
        if not over:
            return self.too_big("the document", "roots", f"the JSON of its {len(objects):,} models", size)
        value_size, model, attr, value = min(over, key=lambda o: o[0])
        biggest = max((nbytes(b) for b in buffers_in(value)), default=0)
        exact = max(len(serialize_json(value)), biggest)
        what = f"an array of {biggest:,} bytes in" if biggest > self.budget else "the value"
        return self.too_big(model, attr, f"{what} ({_describe_value(value)})", exact)

    # Columns --------------------------------------------------------------

    def _columns(self, data: Any, model: str) -> tuple[list[Column], int]:
        ''' The columns of a serialized data map, and their (common) length.

        Raises:
            MessageTooBig: a column cannot be cut, or lengths differ
        '''
        try:
            columns = [Column.of(name, rep) for name, rep in _entries(data)]
        except Unsplittable as e:
            raise self._unsplittable(e, model) from None
        lengths = {c.rows for c in columns}
        if len(lengths) > 1:
            shown = ", ".join(f"{c.name!r}: {c.rows:,}" for c in columns)
            size = sum(c.data.nbytes if c.data is not None else json_bound(c.items) for c in columns)
            raise self.too_big(model, "data", f"data whose columns differ in length ({shown}), which cannot "
                               "be streamed in parts,", size)
        return columns, (lengths.pop() if lengths else 0)

    def _bounds(self, columns: list[Column], rows: int, wrapper: dict[str, Any], model: str) -> list[int]:
        ''' Row boundaries of chunks that fit a message with ``wrapper``
        (the event with every column empty).
        '''
        room = self.budget - len(serialize_json({"events": [wrapper]})) - 48 * len(columns) - 64
        try:
            return boundaries(columns, rows, self.budget, room)
        except Unsplittable as e:
            raise self._unsplittable(e, model) from None

    @staticmethod
    def _stream(ref: dict[str, Any], columns: list[Column], start: int, stop: int, rollover: Any) -> dict[str, Any]:
        return {"kind": "ColumnsStreamed", "model": ref, "attr": "data",
                "data": _map([(c.name, c.cut(start, stop)) for c in columns]), "rollover": rollover}

    def split_data(self, rep: dict[str, Any]) -> Split:
        ''' A data replacement (first chunk, then streams) or a stream (streams). '''
        model = self._model(rep)
        columns, rows = self._columns(rep.get("data"), model)
        replace = rep["kind"] == "ColumnDataChanged"
        rollover = None if replace else rep.get("rollover")
        empty = _map([(c.name, c.empty()) for c in columns])
        bounds = self._bounds(columns, rows, dict(rep, data=empty), model)
        what = f"{model}.data replaced by {rows:,} rows" if replace else f"a stream of {rows:,} rows to {model}"
        split = Split(what, self.limit)
        chunks = list(pairwise(bounds))
        if replace:
            start, stop = chunks.pop(0)
            first = dict(rep, data=_map([(c.name, c.cut(start, stop)) for c in columns]))
            split.add(patch_of([first]), model, stop - start)
        for start, stop in chunks:
            split.add(patch_of([self._stream(rep["model"], columns, start, stop, rollover)]), model, stop - start)
        return split

    def split_patches(self, rep: dict[str, Any]) -> Split:
        ''' A patch as patches of some of its values each. '''
        model = self._model(rep)
        room = self.budget - len(serialize_json({"events": [dict(rep, patches={"type": "map"})]})) - 64
        entries: list[tuple[str, Any, int, int]] = []  # column, [index, value], json, buffer bytes
        for name, patches in _entries(rep.get("patches")):
            for entry in patches if isinstance(patches, list) else []:
                size = json_bound(entry) + 1 + len(name) + 8
                held = sum(nbytes(b) for b in buffers_in(entry))
                if size <= room and held <= self.budget:
                    entries.append((name, entry, size, held))
                    continue
                for sub in self._cut_patch(name, entry, room, model):
                    entries.append((name, sub, json_bound(sub) + 1 + len(name) + 8,
                                    sum(nbytes(b) for b in buffers_in(sub))))
        split = Split(f"a patch of {len(entries):,} values of {model}", self.limit)
        part: list[tuple[str, Any]] = []
        json_size = held_size = 0
        for name, entry, size, held in entries:
            if part and (json_size + size > room or held_size + held > self.budget):
                split.add(patch_of([self._patches(rep, part)]))
                part, json_size, held_size = [], 0, 0
            part.append((name, entry))
            json_size += size
            held_size += held
        if part:
            split.add(patch_of([self._patches(rep, part)]))
        return split

    @staticmethod
    def _patches(rep: dict[str, Any], part: list[tuple[str, Any]]) -> dict[str, Any]:
        grouped: list[tuple[str, list[Any]]] = []
        for name, entry in part:
            if grouped and grouped[-1][0] == name:
                grouped[-1][1].append(entry)
            else:
                grouped.append((name, [entry]))
        return dict(rep, patches=_map([(name, entries) for name, entries in grouped]))

    def _cut_patch(self, name: str, entry: Any, room: int, model: str) -> list[Any]:
        ''' A patch value too big alone: a slice ``start:stop`` (step 1) of
        rows is cut into slices; anything else raises.
        '''
        index, value = entry[0], entry[1]
        if isinstance(index, dict) and index.get("type") == "slice" and index.get("step") in (None, 1):
            start, stop = index.get("start") or 0, index.get("stop")
            if isinstance(start, int) and isinstance(stop, int) and 0 <= start < stop:
                try:
                    column = Column.of(name, value)
                except Unsplittable as e:
                    raise self._unsplittable(e, model) from None
                if column.rows == stop - start:
                    try:
                        bounds = boundaries([column], column.rows, self.budget, room - 128)
                    except Unsplittable as e:
                        raise self._unsplittable(e, model) from None
                    return [[dict(index, start=start + a, stop=start + b), column.cut(a, b)]
                            for a, b in pairwise(bounds)]
        size = max(json_bound(value), sum(nbytes(b) for b in buffers_in(value)))
        raise self.too_big(model, "data", f"the patch of index {_describe_index(index)} "
                                   f"({_describe_value(value)})", size, name)

    # Graphs of models -----------------------------------------------------

    def split_graph(self, rep: dict[str, Any], what: str) -> Split:
        ''' An event defining models (root added, property set to models):
        the event with its large sources emptied, then their streams.
        '''
        split = Split(what, self.limit)
        streams = self.empty_sources(rep, what)
        split.add(patch_of([rep]))
        self.add_streams(split, streams)
        return split

    def empty_sources(self, content: Any, what: str, inline: bool = False) -> list[Source]:
        ''' Empty, in ``content``, the data of as many sources as it takes
        (largest first) for ``content`` to fit a message; their rows to stream.
        With ``inline``, buffers are written into the JSON (see :func:`json_bound`).

        Raises:
            MessageTooBig: a source cannot be cut, or ``content`` is too big
                even with every source emptied
        '''
        found = []
        for obj in _sources(content):
            data = obj["attributes"]["data"]
            biggest = 0 if inline else max((nbytes(b) for b in buffers_in(data)), default=0)
            found.append((obj, data, json_bound(data, inline), biggest))
        total = json_bound(content, inline)
        # Sources with a buffer over the limit must go in parts; then the
        # largest others, until the rest fits.
        must = [f for f in found if f[3] > self.budget]
        others = sorted((f for f in found if f[3] <= self.budget), key=lambda f: f[2], reverse=True)
        out: list[Source] = []
        for obj, data, size, biggest in must + others:
            if biggest <= self.budget and total <= self.budget - 1024:
                break
            model = self.describe(str(obj.get("id")), obj.get("name"))
            columns, rows = self._columns(data, model)
            empty = _map([(c.name, c.empty()) for c in columns])
            obj["attributes"]["data"] = empty
            total += json_bound(empty, inline) - size
            out.append(Source({"id": obj.get("id")}, model, columns, rows))
        if total > self.budget - 1024:
            exact = len(serialize_json(content))  # buffers inline, as a PUSH-DOC of bokeh < 3.9
            if exact > self.budget:
                raise self.graph_too_big(content, exact)
        biggest = 0 if inline else max((nbytes(b) for b in buffers_in(content)), default=0)
        if biggest > self.budget:
            raise self.graph_too_big(content, biggest)
        return out

    def add_streams(self, split: Split, sources: list[Source]) -> None:
        ''' Append to ``split`` the streams that fill the emptied ``sources``. '''
        for source in sources:
            wrapper = self._stream(source.ref, source.columns, 0, 0, None)
            bounds = self._bounds(source.columns, source.rows, wrapper, source.name)
            for start, stop in pairwise(bounds):
                if stop > start:
                    stream = self._stream(source.ref, source.columns, start, stop, None)
                    split.add(patch_of([stream]), source.name, stop - start)


def _describe_value(value: Any) -> str:
    if isinstance(value, str):
        return f"a string of {len(value):,} characters"
    if isinstance(value, dict) and value.get("type") == "ndarray":
        shape = value.get("shape")
        return f"an array of shape {tuple(shape) if isinstance(shape, list) else shape}"
    if isinstance(value, dict) and value.get("type") == "object":
        return f"a {str(value.get('name', 'model')).rsplit('.', 1)[-1]}"
    if isinstance(value, list):
        return f"a list of {len(value):,} items"
    return f"a {type(value).__name__}"


def _describe_index(index: Any) -> str:
    if isinstance(index, dict) and index.get("type") == "slice":
        return f"{index.get('start')}:{index.get('stop')}" + (f":{index['step']}" if index.get("step") else "")
    return repr(index)


def _objects(root: Any) -> list[dict[str, Any]]:
    ''' Every model defined (``{"type": "object", ...}``) in a representation, outermost first. '''
    out: list[dict[str, Any]] = []
    stack = [root]
    while stack:
        item = stack.pop()
        t = type(item)
        if t is dict:
            if item.get("type") == "object" and "id" in item:
                out.append(item)
                attrs = item.get("attributes")
                if isinstance(attrs, dict):
                    stack.extend(v for k, v in attrs.items() if not (k == "data" and _is_source(item)))
                continue
            stack.extend(item.values())
        elif (t is list or t is tuple) and item and not set(map(type, item)) <= _SCALARS:
            stack.extend(reversed(item))
    return out


_SCALARS = frozenset((int, float, str, bool, type(None)))


def _is_source(obj: dict[str, Any]) -> bool:
    ''' Whether a model representation is a ColumnDataSource (or a subclass) with data. '''
    from bokeh.model import Model
    from bokeh.models import ColumnDataSource
    cls = Model.model_class_reverse_map.get(str(obj.get("name")))
    attrs = obj.get("attributes")
    return cls is not None and issubclass(cls, ColumnDataSource) and isinstance(attrs, dict) and "data" in attrs


def _sources(root: Any) -> list[dict[str, Any]]:
    ''' The representations of data sources with data defined in ``root``. '''
    return [obj for obj in _objects(root) if _is_source(obj)]
