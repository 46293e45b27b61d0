''' The outbox, without sockets: fed changes, requests and replies, asked what to write. '''
from __future__ import annotations

import json
from concurrent.futures import Future
from typing import Any

import pytest
from bokeh.document import Document
from bokeh.models import Range1d

from bokehsync._events import PATCH_BYTES
from bokehsync._outbox import PATCH_WINDOW, Outbox
from bokehsync._wire import PROTOCOL
from bokehsync.exceptions import ConnectionLost, ServerError
from tests.support.documents import Recorder


@pytest.fixture
def doc() -> tuple[Document, Range1d, Recorder]:
    document = Document()
    r = Range1d(start=0, end=1)
    document.add_root(r)
    recorder = Recorder()
    document.callbacks.on_change_dispatch_to(recorder)
    return document, r, recorder


def serialize(events: list[Any]) -> list[Any]:
    return [PROTOCOL.create("PATCH-DOC", events)]


def starts(messages: list[Any]) -> list[Any]:
    ''' The Range1d.start values a list of messages sets, in order; requests by msgtype. '''
    out: list[Any] = []
    for m in messages:
        if m.msgtype != "PATCH-DOC":
            out.append(m.msgtype)
            continue
        out.extend(e["new"] for e in json.loads(m.content_json)["events"] if e.get("attr") == "start")
    return out


def _patch(r: Range1d, rec: Recorder, n: int = 1) -> Any:
    ''' A PATCH-DOC of ``n`` fresh changes of ``r.end``. '''
    for _ in range(n):
        r.end += 1
    return PROTOCOL.create("PATCH-DOC", rec.events[-n:])


def online_outbox() -> Outbox:
    outbox = Outbox(serialize, "ws://test/ws")
    outbox.online()
    return outbox


def test_changes_and_requests_go_in_the_order_they_were_queued(doc):
    ''' Changes, a request, more changes: written in that order. '''
    _, r, rec = doc
    outbox = online_outbox()
    r.start = 1
    outbox.add_events(rec.events[-1:])
    outbox.add_request(PROTOCOL.create("SERVER-INFO-REQ"))
    r.start = 2
    r.start = 3
    outbox.add_events(rec.events[-2:])
    assert starts(outbox.take(force=True)) == [1, "SERVER-INFO-REQ", 2, 3]
    assert outbox.take(force=True) == []


def test_changes_wait_for_the_window_then_go_merged(doc):
    ''' While a PATCH-DOC is unacknowledged, further changes wait; its OK sends them as one message. '''
    assert PATCH_WINDOW == 1
    _, r, rec = doc
    outbox = online_outbox()
    r.start = 1
    outbox.add_events(rec.events[-1:])
    first = outbox.take(force=False)
    assert starts(first) == [1]
    in_flight: Future[Any] = Future()
    outbox.track(in_flight, first[0])
    for value in range(2, 102):
        r.start = value
        outbox.add_events(rec.events[-1:])
        assert outbox.window_full()
        assert outbox.take(force=False) == []
    in_flight.set_result(None)
    assert outbox.settled(in_flight) is True
    second = outbox.take(force=False)
    assert len(second) == 1 and starts(second) == list(range(2, 102))


def test_a_request_is_not_held_back_by_the_window(doc):
    ''' A queued request sends everything before it even while the window is full. '''
    _, r, rec = doc
    outbox = online_outbox()
    outbox.track(Future(), _patch(r, rec))
    r.start = 5
    outbox.add_events(rec.events[-1:])
    assert outbox.take(force=False) == []
    outbox.add_request(PROTOCOL.create("SERVER-INFO-REQ"))
    assert not outbox.window_full()
    assert starts(outbox.take(force=False)) == [5, "SERVER-INFO-REQ"]


def test_a_rejection_is_reported_once_and_keeps_held_changes(doc):
    ''' A rejected PATCH-DOC is an error for the next flush, reported once; held changes stay queued. '''
    _, r, rec = doc
    outbox = online_outbox()
    rejected: Future[Any] = Future()
    outbox.track(rejected, _patch(r, rec))
    r.start = 7
    outbox.add_events(rec.events[-1:])
    rejected.set_exception(ServerError("no", "ws://test/ws", text="no", reqid="1"))
    assert outbox.settled(rejected) is False
    errors = outbox.take_errors()
    assert [type(e) for e in errors] == [ServerError] and outbox.take_errors() == []
    assert outbox.unacked() == [] and starts(outbox.take(force=False)) == [7]


def test_lost_changes_are_counted_and_reported_once(doc):
    ''' The connection is lost: the changes written but unacknowledged, those queued, and those made later
    are one ConnectionLost at the next flush, saying how many and why; then nothing more. '''
    _, r, rec = doc
    outbox = online_outbox()
    lost: Future[Any] = Future()
    outbox.track(lost, _patch(r, rec, 2))
    r.start = 100
    outbox.add_events(rec.events[-1:])
    cause = ConnectionLost("the server went away", "ws://test/ws")
    lost.set_exception(cause)
    outbox.settled(lost)
    outbox.offline(reconnecting=False, cause=cause)
    for value in (101, 102, 103):
        r.start = value
        outbox.add_events(rec.events[-1:])
    [error] = outbox.take_errors()
    assert isinstance(error, ConnectionLost) and error.__cause__ is cause
    assert (error.unacknowledged, error.unsent) == (2, 4)
    assert "6 document change(s)" in str(error) and "the server went away" in str(error)
    assert outbox.take_errors() == [] and outbox.queued() == 0


def test_changes_while_reconnecting_are_counted_not_queued(doc):
    ''' Offline and reconnecting: changes are counted for the resync, nothing is queued. '''
    _, r, rec = doc
    outbox = Outbox(serialize, "ws://test/ws")
    outbox.offline(reconnecting=True)
    for value in range(1, 4):
        r.start = value
        outbox.add_events(rec.events[-1:])
    outbox.add_patches(serialize(rec.events[-2:]))
    assert outbox.queued() == 0
    assert outbox.take_offline_changes() == 5 and outbox.take_offline_changes() == 0


def test_merged_messages_stay_under_the_size_limit():
    ''' Neighbouring PATCH-DOCs merge into as few as fit PATCH_BYTES each, in order. '''
    import numpy as np
    from bokeh.models import ColumnDataSource
    document = Document()
    source = ColumnDataSource(data={"x": np.zeros(1)})
    document.add_root(source)
    rec = Recorder()
    document.callbacks.on_change_dispatch_to(rec)
    outbox = online_outbox()
    rows = PATCH_BYTES // 8 // 3  # three streams fill about one message
    for _ in range(7):
        source.stream({"x": np.ones(rows)})
        outbox.add_patches(serialize(rec.events[-1:]))
    messages = outbox.take(force=True)
    assert 2 <= len(messages) < 7
    for m in messages:
        assert len(m.content_json) + sum(memoryview(b.data).nbytes for b in m.buffers) <= PATCH_BYTES
    assert sum(len(json.loads(m.content_json)["events"]) for m in messages) == 7


def test_pending_counts_each_change_once_however_often_it_is_asked(doc, monkeypatch):
    ''' A server patch asks what our pending changes touch; with 3,000 changes waiting and 1,000
    server patches, each change is counted once, not once per server patch (which made applying
    10,000 server updates quadratic), and the answer follows changes queued and acknowledged. '''
    from bokehsync import _converge
    counted = {"events": 0, "reps": 0}
    add_event, add_rep = _converge.Pending.add_event, _converge.Pending.add_rep

    def counting_event(self, *args):
        counted["events"] += 1
        return add_event(self, *args)

    def counting_rep(self, rep):
        counted["reps"] += 1
        return add_rep(self, rep)
    monkeypatch.setattr(_converge.Pending, "add_event", counting_event)
    monkeypatch.setattr(_converge.Pending, "add_rep", counting_rep)
    _, r, rec = doc
    outbox = online_outbox()
    in_flight: Future[Any] = Future()
    outbox.track(in_flight, _patch(r, rec, 1_000))
    for value in range(3_000):
        r.start = value + 1
        outbox.add_events(rec.events[-1:])
        if value % 3 == 0:
            assert outbox.pending().touches[(r.id, "start")].replaced
    for _ in range(1_000):
        pending = outbox.pending()
    assert pending.touches[(r.id, "start")].replaced and pending.touches[(r.id, "end")].replaced
    assert counted == {"events": 3_000, "reps": 1_000}
    in_flight.set_result(None)
    assert outbox.settled(in_flight) is True
    assert (r.id, "end") not in outbox.pending().touches


def test_a_patch_the_server_will_drop_is_reported_when_its_ok_arrives(doc):
    ''' Two PATCH-DOCs on their way, one naming a model the server has removed meanwhile: when its OK
    arrives it is reported (a ServerError naming the model, for the next flush), the other is not. '''
    document, r, rec = doc
    other = Range1d(start=0, end=1)
    document.add_root(other)
    outbox = online_outbox()
    r.start = 5
    naming, other_patch = PROTOCOL.create("PATCH-DOC", rec.events[-1:]), _patch(other, rec)
    futures: list[Future[Any]] = [Future(), Future()]
    for future, message in zip(futures, (naming, other_patch), strict=True):
        outbox.track(future, message)
    outbox.dropped_by_server({r.id})
    for future in futures:
        future.set_result(None)  # both answered OK
        outbox.settled(future)
    [error] = outbox.take_errors()
    assert isinstance(error, ServerError) and r.id in str(error) and "dropped" in str(error)
    assert error.reqid == naming.header["msgid"]


def test_named_in_finds_references_not_definitions():
    ''' A model named by reference counts; one defined in full (a new model) or a number in a column
    does not. '''
    from bokehsync._queued import named_in
    document = Document()
    r = Range1d(start=0, end=1)
    document.add_root(r)
    rec = Recorder()
    document.callbacks.on_change_dispatch_to(rec)
    added = Range1d(start=2, end=3)
    document.add_root(added)  # defined in full: {"type": "object", "id": ..., ...}
    r.start = 7               # named: {"id": ...}
    message = PROTOCOL.create("PATCH-DOC", rec.events)
    assert named_in(message, {r.id, added.id, "7"}) == {r.id}
