''' Cutting changes and pushes for the server's message limit, without sockets (issue 13).

Every check goes through the wire as the server receives it (``fragments`` then ``Assembler``):
each websocket message is under the limit, and applying the parts in order to a copy of the
server's document gives exactly what applying the uncut message gives. '''
from __future__ import annotations

import json
from concurrent.futures import Future
from typing import Any

import numpy as np
import pytest
from bokeh.document import Document
from bokeh.models import ColumnDataSource, DataTable, Div
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bokehsync import ConnectionLost, MessageTooBig, ServerError
from bokehsync._compat import DOC_MESSAGES_HAVE_BUFFERS
from bokehsync._outbox import Outbox
from bokehsync._parts import Split, budget_of, part_of
from bokehsync._split import split_patch, split_push
from bokehsync._wire import PROTOCOL, Assembler, fragments

#: The smallest limit accepted: most changes below are several times larger.
LIMIT = 64 * 1024


class Recorder:
    ''' Receives a document's change events, as a session does. '''

    def __init__(self) -> None:
        self.events: list[Any] = []

    def _document_patched(self, event: Any) -> None:
        self.events.append(event)


def through_wire(message: Any, limit: int | None = LIMIT) -> Any:
    ''' ``message`` as the server assembles it; every websocket message checked against ``limit``. '''
    assembler = Assembler()
    out = None
    for fragment in fragments(message):
        size = len(fragment) if isinstance(fragment, str) else memoryview(fragment).nbytes
        if limit is not None:
            assert size <= limit, f"a websocket message of {size} bytes, over {limit}"
        out = assembler.feed(fragment if isinstance(fragment, str) else bytes(fragment))
    assert out is not None
    return out


def server_copy(doc: Document) -> Document:
    ''' A separate document with the same models and ids, as a server holds after a push. '''
    copy = Document()
    through_wire(PROTOCOL.create("PUSH-DOC", doc), limit=None).push_to_document(copy)
    return copy


def canonical(doc: Document) -> Any:
    ''' A document's content, comparable across documents (arrays as lists, models by id). '''
    def norm(value: Any) -> Any:
        if hasattr(value, "id") and hasattr(value, "properties_with_values"):
            return ("ref", value.id)
        if isinstance(value, dict):
            return sorted((k, norm(v)) for k, v in value.items())
        if isinstance(value, np.ndarray):
            return [str(value.dtype), value.shape, norm(value.tolist())]
        if isinstance(value, (list, tuple)):
            return [norm(v) for v in value]
        if isinstance(value, float) and value != value:
            return "nan"
        return value
    return sorted((m.id, type(m).__name__, norm(m.properties_with_values(include_defaults=True)))
                  for m in doc.models), [r.id for r in doc.roots], doc.title


def apply_all(doc: Document, messages: list[Any]) -> None:
    for message in messages:
        received = through_wire(message)
        if received.msgtype == "PUSH-DOC":
            received.push_to_document(doc)
        else:
            received.apply_to_document(doc)


def _columns(seed: int, rows: int, kinds: list[str]) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for kind in kinds:
        if kind == "f8":
            out[kind] = rng.random(rows)
        elif kind == "i4":
            out[kind] = rng.integers(-1000, 1000, rows).astype(np.int32)
        elif kind == "floats":
            out[kind] = rng.random(rows).tolist()
        elif kind == "ints":
            out[kind] = rng.integers(-10**9, 10**9, rows).tolist()
        elif kind == "strings":
            out[kind] = ["é" * int(n % 3) + "x" * int(n) for n in rng.integers(0, 40, rows)]
        elif kind == "images":
            out[kind] = [rng.random((int(n % 30) + 1, 25)) for n in range(rows)]
        elif kind == "mixed":
            out[kind] = [None if n % 7 == 0 else float("nan") if n % 5 == 0 else float(n) for n in range(rows)]
    return out


CHANGES = ["replace", "replace_column", "stream", "patch", "root_add", "set_model", "push"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(change=st.sampled_from(CHANGES), seed=st.integers(0, 2**16),
       rows=st.integers(0, 12_000), extra=st.integers(1, 12_000),
       kinds=st.lists(st.sampled_from(["f8", "i4", "floats", "ints", "strings", "images", "mixed"]),
                      min_size=1, max_size=3, unique=True),
       rollover=st.sampled_from([None, None, 100, 5_000]))
def test_parts_fit_and_give_the_same_document(change, seed, rows, extra, kinds, rollover):
    ''' Any change (data replaced, one column replaced, stream with or without rollover, patch, root
    added, a property set to a new source, push) of numpy, list, string, NaN/None and image columns:
    every websocket message of the parts is under the limit, and the parts applied in order give the
    same document as the uncut message. '''
    if "images" in kinds:
        rows, extra = rows % 300, extra % 300 + 1
    doc = Document()
    source = ColumnDataSource(data=_columns(seed, rows, kinds), name="source")
    table = DataTable(source=ColumnDataSource(data={"a": [1]}), name="table")
    doc.add_root(source)
    doc.add_root(table)
    server_a, server_b = server_copy(doc), server_copy(doc)
    recorder = Recorder()
    doc.callbacks.on_change_dispatch_to(recorder)
    fresh = _columns(seed + 1, extra, kinds)
    if change == "push":
        source.data = fresh
        whole = PROTOCOL.create("PUSH-DOC", doc)
        through_wire(whole, None).push_to_document(server_a)
        split = split_push(PROTOCOL.create("PUSH-DOC", doc), LIMIT)
        apply_all(server_b, split.messages if split is not None else [PROTOCOL.create("PUSH-DOC", doc)])
        assert canonical(server_a) == canonical(server_b) == canonical(doc)
        return
    if change == "replace":
        source.data = fresh
    elif change == "replace_column":
        source.data[kinds[0]] = fresh[kinds[0]]
    elif change == "stream":
        source.stream(fresh, rollover=rollover)
    elif change == "patch":
        if rows == 0:
            return
        patches: dict[str, list[Any]] = {}
        for name, column in fresh.items():
            n = min(rows, len(column))
            patches[name] = [(i % rows, column[i]) for i in range(0, n, 3)]
            patches[name].append((slice(0, n), column[:n]))
        source.patch(patches)
    elif change == "root_add":
        doc.add_root(ColumnDataSource(data=fresh, name="added"))
    elif change == "set_model":
        table.source = ColumnDataSource(data=fresh, name="set")
    # Once: creating a PATCH-DOC marks the models it defines as known to the server.
    message = PROTOCOL.create("PATCH-DOC", recorder.events)
    through_wire(message, None).apply_to_document(server_a)
    fitted = split_patch(message, LIMIT)
    assert fitted is not None or len(message.content_json) <= budget_of(LIMIT)
    assert fitted is None or not fitted.too_big
    apply_all(server_b, fitted.messages if fitted is not None else [message])
    assert canonical(server_a) == canonical(server_b)
    if change != "replace_column":  # bokeh's server drops the other columns here, as in one message
        assert canonical(server_b) == canonical(doc)


def test_parts_are_views_of_the_documents_arrays_and_the_document_is_untouched():
    ''' A cut numpy column travels as slices of bokeh's buffer over the document's own array: no copy
    (a data change; a push too where bokeh sends a pushed document's arrays as buffers, 3.9 on); the
    document keeps its objects and values. '''
    x = np.random.default_rng(0).random(200_000)
    doc = Document()
    source = ColumnDataSource(data={"x": [0.0], "s": ["a"]}, name="s")
    doc.add_root(source)
    recorder = Recorder()
    doc.callbacks.on_change_dispatch_to(recorder)
    source.data = {"x": x, "s": ["a"] * 200_000}
    fitted = split_patch(PROTOCOL.create("PATCH-DOC", recorder.events), LIMIT)
    assert fitted is not None and len(fitted.messages) > 10
    buffers = [b for m in fitted.messages for b in m.buffers]
    assert sum(memoryview(b.data).nbytes for b in buffers) == x.nbytes
    assert all(np.shares_memory(np.frombuffer(b.data, dtype=np.float64), x) for b in buffers)

    split = split_push(PROTOCOL.create("PUSH-DOC", doc), LIMIT)
    assert split is not None and len(split.messages) > 10
    # The document without its roots, then the root (its source emptied), then streams.
    assert split.messages[0].msgtype == "PUSH-DOC" and split.messages[0].content["doc"]["roots"] == []
    kinds = [[e["kind"] for e in m.content["events"]] for m in split.messages[1:]]
    assert kinds == [["RootAdded"]] + [["ColumnsStreamed"]] * (len(split.messages) - 2)
    if DOC_MESSAGES_HAVE_BUFFERS:
        buffers = [b for m in split.messages[2:] for b in m.buffers if memoryview(b.data).nbytes]
        assert sum(memoryview(b.data).nbytes for b in buffers) == x.nbytes
        assert all(np.shares_memory(np.frombuffer(b.data, dtype=np.float64), x) for b in buffers)
    assert source.data["x"] is x and len(source.data["s"]) == 200_000


def test_a_message_that_fits_is_left_as_it_is():
    ''' Under the limit, nothing is cut. '''
    doc = Document()
    doc.add_root(ColumnDataSource(data={"x": np.arange(1000.0)}))
    assert split_push(PROTOCOL.create("PUSH-DOC", doc), LIMIT) is None
    recorder = Recorder()
    doc.callbacks.on_change_dispatch_to(recorder)
    doc.roots[0].stream({"x": np.arange(10.0)})
    assert split_patch(PROTOCOL.create("PATCH-DOC", recorder.events), LIMIT) is None


def _change(make: Any) -> Any:
    doc = Document()
    source = ColumnDataSource(data={"x": [0.0]}, name="src")
    div = Div(text="", name="div")
    doc.add_root(source)
    doc.add_root(div)
    recorder = Recorder()
    doc.callbacks.on_change_dispatch_to(recorder)
    make(source, div, doc)
    return PROTOCOL.create("PATCH-DOC", recorder.events)


@pytest.mark.parametrize("make, attr, column, what", [
    (lambda s, d, doc: setattr(s, "data", {"x": [np.ones((100, 100))]}), "data", "x",
     "row 0 (an array of shape (100, 100))"),
    (lambda s, d, doc: setattr(s, "data", {"x": ["y" * 100_000]}), "data", "x", "a string of 100,000"),
    (lambda s, d, doc: setattr(s, "data", {"x": np.ones((2, 10_000))}), "data", "x", "shape (2, 10000)"),
    (lambda s, d, doc: setattr(s, "data", {"x": np.ones(10_000), "y": np.ones(9_000)}), "data", None,
     "differ in length"),
    (lambda s, d, doc: setattr(d, "text", "t" * 100_000), "text", None, "a string of 100,000"),
    (lambda s, d, doc: s.patch({"x": [(0, "p" * 100_000)]}), "data", "x", "the patch of index 0"),
    (lambda s, d, doc: doc.add_root(Div(text="r" * 100_000)), "text", None, "a string of 100,000"),
])
def test_a_single_value_over_the_limit_is_named_and_not_sent(make, attr, column, what):
    ''' One value that cannot be cut (an image, a string, a 2-D column, columns of unequal length, a
    long text, a patch of one huge value, a root holding one): MessageTooBig (a RuntimeError, as
    bokeh.client's lost connection) naming the model, property, column, size, limit and the fix;
    nothing of that change is among the messages to send. '''
    fitted = split_patch(_change(make), LIMIT, url="ws://x/ws")
    assert fitted is not None and fitted.messages == [] and len(fitted.too_big) == 1
    error = fitted.too_big[0]
    assert isinstance(error, RuntimeError)
    assert error.attr == attr and error.column == column and error.limit == LIMIT and error.size > LIMIT - 4096
    text = str(error)
    assert what in text and "--websocket-max-message-size" in text and "server_max_message_size" in text
    assert "ws://x/ws" in text and "nothing of this change was sent" in text


def test_only_the_change_that_cannot_be_cut_is_left_out():
    ''' Changes sent together with one that cannot be cut still go (in order); only it is left out. '''
    message = _change(lambda s, d, doc: (setattr(d, "text", "before"), setattr(s, "data", {"x": ["y" * 100_000]}),
                                         setattr(d, "styles", {"color": "red"})))
    fitted = split_patch(message, LIMIT)
    assert fitted is not None and len(fitted.too_big) == 1
    sent = [e for m in fitted.messages for e in m.content["events"]]
    assert [(e["kind"], e.get("attr")) for e in sent] == [("ModelChanged", "text"), ("ModelChanged", "styles")]


def test_a_split_says_what_reached_the_server():
    ''' The report of a cut change names how many parts the server acknowledged and how many rows of
    which source it has. '''
    message = _change(lambda s, d, doc: setattr(s, "data", {"x": np.arange(40_000.0)}))
    fitted = split_patch(message, LIMIT, lambda i, t: "SOURCE")
    assert fitted is not None and len(fitted.splits) == 1
    split = fitted.splits[0]
    n = len(split.messages)
    assert n == 6 and [part_of(m)[1] for m in split.messages] == list(range(n))  # type: ignore[index]
    split.written = 3
    split.settled(0, None)
    split.settled(1, None)
    assert split.settled(2, ConnectionLost("gone")) is True
    report = split.report()
    assert "went as 6 messages; the server acknowledged 2 of them" in report
    rows = sum(m.content["events"][0]["data"]["entries"][0][1]["shape"][0] for m in split.messages[:2])
    assert f"{rows:,} of the 40,000 rows of SOURCE" in report and "the rest did not reach it" in report


# The outbox ------------------------------------------------------------------

def _outbox(doc: Document | None = None) -> Outbox:
    outbox = Outbox(lambda events: [PROTOCOL.create("PATCH-DOC", events)], "ws://test/ws")
    outbox.configure(LIMIT, document=lambda: doc)
    outbox.online()
    return outbox


def test_the_outbox_sends_parts_alone_in_order_and_reports_a_part_lost():
    ''' A change over the limit goes as parts, in order between the changes around it, none merged
    with another; a part lost with the connection is reported at the next flush with what the server
    acknowledged. '''
    doc = Document()
    source = ColumnDataSource(data={"x": np.zeros(3)}, name="s")
    div = Div(text="")
    doc.add_root(source)
    doc.add_root(div)
    recorder = Recorder()
    doc.callbacks.on_change_dispatch_to(recorder)
    outbox = _outbox(doc)
    div.text = "a"
    source.data = {"x": np.arange(30_000.0)}
    div.text = "b"
    outbox.add_patches([PROTOCOL.create("PATCH-DOC", [e]) for e in recorder.events])
    messages = outbox.take(force=True)
    kinds = [[(e["kind"], e.get("new")) for e in json.loads(m.content_json)["events"]] for m in messages]
    assert kinds[0] == [("ModelChanged", "a")] and kinds[-1] == [("ModelChanged", "b")]
    assert [k[0][0] for k in kinds[1:-1]] == ["ColumnDataChanged"] + ["ColumnsStreamed"] * (len(kinds) - 3)
    assert all(len(k) == 1 for k in kinds)
    futures = []
    for m in messages:
        future: Future[Any] = Future()
        outbox.track(future, m)
        futures.append(future)
    for future in futures[:2]:
        future.set_result(None)
        outbox.settled(future)
    for future in futures[2:]:
        future.set_exception(ConnectionLost("the link broke", "ws://test/ws"))
        outbox.settled(future)
    [error] = outbox.take_errors()
    assert isinstance(error, ConnectionLost)
    assert "2 document change(s) may not be on the server" in str(error)  # the cut one counts once
    assert "the server acknowledged 1 of them" in str(error) and "ColumnDataSource(id=" in str(error)


def test_the_outbox_leaves_out_a_value_too_big_and_reports_it_once():
    ''' A change holding one value over the limit is not written; the next flush raises MessageTooBig
    once; the changes queued with it go. '''
    doc = Document()
    div = Div(text="")
    doc.add_root(div)
    recorder = Recorder()
    doc.callbacks.on_change_dispatch_to(recorder)
    outbox = _outbox(doc)
    div.text = "z" * 100_000
    div.styles = {"color": "red"}
    outbox.add_events(recorder.events)
    messages = outbox.take(force=True)
    assert [[e["attr"] for e in m.content["events"]] for m in messages] == [["styles"]]
    errors = outbox.take_errors()
    assert len(errors) == 1 and isinstance(errors[0], MessageTooBig) and "Div(id=" in str(errors[0])
    assert outbox.take_errors() == []


def test_a_rejected_part_is_reported_with_what_reached_the_server():
    ''' The server rejects one part: flush raises its ServerError, saying what of the change it has. '''
    message = _change(lambda s, d, doc: s.stream({"x": np.arange(30_000.0)}))
    outbox = _outbox()
    outbox.add_patches([message])
    messages = outbox.take(force=True)
    assert len(messages) > 2
    futures = []
    for m in messages:
        future: Future[Any] = Future()
        outbox.track(future, m)
        futures.append(future)
    futures[0].set_result(None)
    outbox.settled(futures[0])
    futures[1].set_exception(ServerError("the server answered ERROR: KeyError", text="KeyError"))
    outbox.settled(futures[1])
    [error] = outbox.take_errors()
    assert isinstance(error, ServerError) and error.text == "KeyError"
    assert "the server acknowledged 1 of them" in str(error)


def test_a_push_split_resolves_when_every_part_is_acknowledged():
    ''' The parts of a push belong to the push: acknowledged, its future resolves; failed, the failure
    goes to the push and not to the next flush. '''
    doc = Document()
    doc.add_root(ColumnDataSource(data={"x": np.random.default_rng(1).random(30_000)}))
    split = split_push(PROTOCOL.create("PUSH-DOC", doc), LIMIT)
    assert isinstance(split, Split) and split.by_call
    outbox = _outbox()
    outbox.add_parts(split.messages[1:])
    parts = outbox.take(force=True)
    assert parts == split.messages[1:]
    futures = []
    for m in parts:
        future: Future[Any] = Future()
        outbox.track(future, m)
        futures.append(future)
    outbox.acknowledged(split, 0)
    for future in futures[:-1]:
        future.set_result(None)
        outbox.settled(future)
    assert not split.future.done()
    futures[-1].set_exception(ConnectionLost("gone"))
    assert outbox.owned_by_call(futures[-1])
    outbox.settled(futures[-1])
    assert isinstance(split.future.exception(), ConnectionLost)
    assert outbox.take_errors() == []


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(st.integers(-10**18, 10**18), st.floats(allow_nan=False, allow_infinity=False),
                       st.booleans(), st.none(), st.text(max_size=50)),
       attr=st.sampled_from(["start", "text", "välue"]))
def test_the_quick_bound_of_a_property_set_is_json_bounds(value, attr):
    ''' A scalar property set as bokeh serializes it: its quick bound (no walk) equals json_bound's, and is
    at least its JSON's length, for numbers, booleans, None and any text (bokeh writes infinities as
    objects, which take the walk). '''
    from bokeh.core.json_encoder import serialize_json

    from bokehsync._columns import event_json_bound, json_bound
    rep = {"kind": "ModelChanged", "model": {"id": "p1001"}, "attr": attr, "new": value}
    assert len(serialize_json(rep)) <= event_json_bound(rep) == json_bound(rep)


def test_bokeh_serializes_a_property_set_in_the_quickly_bounded_shape():
    ''' The quick bound applies to what bokeh writes for ``range.start = 5``: four keys, a bare reference. '''
    from bokeh.models import Range1d

    from tests.support.documents import Recorder
    doc = Document()
    r = Range1d()
    doc.add_root(r)
    recorder = Recorder()
    doc.callbacks.on_change_dispatch_to(recorder)
    r.start = 5
    [rep] = PROTOCOL.create("PATCH-DOC", recorder.events).content["events"]
    assert rep == {"kind": "ModelChanged", "model": {"id": r.id}, "attr": "start", "new": 5}
