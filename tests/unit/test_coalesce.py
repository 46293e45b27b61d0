''' Streams queued while a PATCH-DOC waits for its OK go as one stream, with the server's result. '''
from __future__ import annotations

import json
from concurrent.futures import Future
from typing import Any

import numpy as np
import pytest
from bokeh.document import Document
from bokeh.document.events import ColumnsStreamedEvent
from bokeh.models import ColumnDataSource, Range1d

from bokehsync._outbox import Outbox
from bokehsync._wire import PROTOCOL
from tests.support.documents import Recorder


def serialize(events: list[Any]) -> list[Any]:
    return [PROTOCOL.create("PATCH-DOC", events)]


@pytest.fixture
def setup() -> tuple[Document, Document, ColumnDataSource, Range1d, Recorder, Outbox]:
    ''' A document, a copy of it standing for the server's, and an outbox with a patch in flight. '''
    doc = Document()
    source = ColumnDataSource(data={"x": np.arange(3.0), "s": ["a", "b", "c"]}, name="source")
    r = Range1d(start=0, end=1, name="range")
    doc.add_root(source)
    doc.add_root(r)
    server = Document.from_json(doc.to_json())
    recorder = Recorder()
    doc.callbacks.on_change_dispatch_to(recorder)
    outbox = Outbox(serialize, "ws://test/ws")
    outbox.online()
    r.end = 2
    outbox.add_events(recorder.events[-1:])
    first = outbox.take(force=False)
    for message in first:
        message.apply_to_document(server)
    outbox.track(Future(), first[0])
    assert outbox.window_full()
    return doc, server, source, r, recorder, outbox


def stream(source: ColumnDataSource, recorder: Recorder, outbox: Outbox, data: dict[str, Any],
        rollover: int | None = None) -> None:
    source.stream(data, rollover)
    [event] = recorder.events[-1:]
    assert isinstance(event, ColumnsStreamedEvent)
    outbox.add_stream(event)


def events_of(messages: list[Any]) -> list[dict[str, Any]]:
    return [e for m in messages for e in json.loads(m.content_json)["events"]]


def columns(doc: Document) -> dict[str, list[Any]]:
    data = doc.get_model_by_name("source").data
    return {name: list(np.asarray(values).tolist()) for name, values in data.items()}


@pytest.mark.parametrize("rollover", [None, 5, 40])
def test_streams_queued_together_go_as_one_with_the_same_result(setup, rollover):
    ''' 30 streams to one source while the window is full: one ColumnsStreamed event, and the server's
    copy ends with the same columns as the document (with or without a rollover). '''
    doc, server, source, _, recorder, outbox = setup
    for i in range(30):
        stream(source, recorder, outbox, {"x": np.array([10.0 * i, 10.0 * i + 1]), "s": [f"{i}a", f"{i}b"]}, rollover)
    messages = outbox.take(force=True)
    kinds = [e["kind"] for e in events_of(messages)]
    assert kinds == ["ColumnsStreamed"]
    for message in messages:
        message.apply_to_document(server)
    assert columns(server) == columns(doc)
    assert len(columns(doc)["x"]) == (63 if rollover is None else min(63, rollover))


def test_streams_that_differ_are_not_merged(setup):
    ''' A different rollover, other columns, or a change in between: separate streams, in order. '''
    doc, server, source, r, recorder, outbox = setup
    stream(source, recorder, outbox, {"x": np.array([1.0]), "s": ["p"]})
    stream(source, recorder, outbox, {"x": np.array([2.0]), "s": ["q"]}, 4)
    r.start = -1
    outbox.add_events(recorder.events[-1:])
    stream(source, recorder, outbox, {"x": np.array([3.0]), "s": ["r"]}, 4)
    stream(source, recorder, outbox, {"s": ["t"], "x": np.array([4.0])}, 4)
    stream(source, recorder, outbox, {"x": np.array([5.0]), "s": ["u"]}, 4)
    messages = outbox.take(force=True)
    events = events_of(messages)
    assert [(e["kind"], e.get("rollover")) for e in events] == [
        ("ColumnsStreamed", None), ("ColumnsStreamed", 4), ("ModelChanged", None), ("ColumnsStreamed", 4)]
    for message in messages:
        message.apply_to_document(server)
    assert columns(server) == columns(doc)
    assert server.get_model_by_name("range").start == -1


def test_the_callers_arrays_may_change_after_the_stream(setup):
    ''' Rows are copied when queued: reusing the array for the next stream sends both rows as they were. '''
    doc, server, source, _, recorder, outbox = setup
    rows = np.array([7.0])
    stream(source, recorder, outbox, {"x": rows, "s": ["first"]})
    rows[0] = 8.0
    stream(source, recorder, outbox, {"x": rows, "s": ["second"]})
    messages = outbox.take(force=True)
    for message in messages:
        message.apply_to_document(server)
    assert columns(server)["x"][-2:] == [7.0, 8.0]
    assert columns(server)["s"][-2:] == ["first", "second"]
    assert columns(server) == columns(doc)
