''' The rules for a server change that crosses changes of ours (bokehsync._converge), row by row of
its table, with our pending changes as bokeh serializes them. '''
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from bokeh.document import Document
from bokeh.models import ColumnDataSource, Range1d

from bokehsync._converge import Action, Pending, decide
from bokehsync._wire import PROTOCOL
from tests.support.documents import Recorder


@pytest.fixture
def doc() -> tuple[Document, ColumnDataSource, Range1d, Recorder]:
    document = Document()
    source = ColumnDataSource(data={"x": np.arange(5.0), "y": list(range(5))})
    r = Range1d(start=0, end=1)
    document.add_root(source)
    document.add_root(r)
    rec = Recorder()
    document.callbacks.on_change_dispatch_to(rec)
    return document, source, r, rec


def pending_of(rec: Recorder) -> Pending:
    ''' What the recorded changes touch, read from the PATCH-DOC they serialize to. '''
    pending = Pending()
    for rep in PROTOCOL.create("PATCH-DOC", rec.events).content["events"]:
        pending.add_rep(rep)
    return pending


def stream(source: ColumnDataSource, n: int = 2, rollover: int | None = None) -> dict[str, Any]:
    return {"kind": "ColumnsStreamed", "model": source, "attr": "data",
            "data": {"x": np.ones(n), "y": [9] * n}, "rollover": rollover}


def test_no_pending_change_applies(doc):
    ''' Nothing of ours on the way: every server event is applied. '''
    _, source, r, _ = doc
    assert decide(stream(source), Pending())[0] is Action.APPLY
    assert decide({"kind": "ModelChanged", "model": r, "attr": "start", "new": 3}, Pending())[0] is Action.APPLY


def test_a_property_we_set_skips_theirs(doc):
    ''' Our pending set of the same property overwrites theirs on the server: skip theirs. '''
    _, _, r, rec = doc
    r.start = 5
    pending = pending_of(rec)
    assert decide({"kind": "ModelChanged", "model": r, "attr": "start", "new": 3}, pending)[0] is Action.SKIP
    assert decide({"kind": "ModelChanged", "model": r, "attr": "end", "new": 3}, pending)[0] is Action.APPLY


def test_our_data_replacement_skips_their_stream_and_patch(doc):
    ''' All of a source's data replaced by us: their stream, patch or replacement before it is moot. '''
    _, source, _, rec = doc
    source.data = {"x": np.zeros(2), "y": [0, 0]}
    pending = pending_of(rec)
    assert decide(stream(source), pending)[0] is Action.SKIP
    patch = {"kind": "ColumnsPatched", "model": source, "attr": "data", "patches": {"y": [(0, 1)]}}
    assert decide(patch, pending)[0] is Action.SKIP


@pytest.mark.parametrize("rollover", [None, 10])
def test_their_stream_goes_before_our_pending_streams(doc, rollover):
    ''' Streams on both sides with one rollover: reorder (their rows first), knowing how many rows are ours. '''
    _, source, _, rec = doc
    source.stream({"x": np.ones(3), "y": [1, 2, 3]}, rollover=rollover)
    source.stream({"x": np.ones(1), "y": [4]}, rollover=rollover)
    action, touch = decide(stream(source, rollover=rollover), pending_of(rec))
    assert action is Action.REORDER and touch is not None and touch.rows == 4


def test_mixed_rollovers_resync(doc):
    ''' Their rollover differs from ours: no exact local order; resynchronise. '''
    _, source, _, rec = doc
    source.stream({"x": np.ones(3), "y": [1, 2, 3]}, rollover=10)
    assert decide(stream(source, rollover=None), pending_of(rec))[0] is Action.RESYNC


def test_their_stream_after_our_patches_applies(doc):
    ''' Rows appended after every index we patched: the order does not matter. With a rollover it does. '''
    _, source, _, rec = doc
    source.patch({"y": [(1, 50)]})
    pending = pending_of(rec)
    assert decide(stream(source), pending)[0] is Action.APPLY
    assert decide(stream(source, rollover=3), pending)[0] is Action.RESYNC


def test_their_patch_and_our_patches(doc):
    ''' Patches of other rows commute; the same row does not (ours must win): resynchronise. '''
    _, source, _, rec = doc
    source.patch({"y": [(1, 50)]})
    pending = pending_of(rec)
    other = {"kind": "ColumnsPatched", "model": source, "attr": "data", "patches": {"y": [(2, 7)]}}
    same = {"kind": "ColumnsPatched", "model": source, "attr": "data", "patches": {"y": [(1, 7)]}}
    sliced = {"kind": "ColumnsPatched", "model": source, "attr": "data", "patches": {"y": [(slice(0, 2), [7, 7])]}}
    assert decide(other, pending)[0] is Action.APPLY
    assert decide(same, pending)[0] is Action.RESYNC
    assert decide(sliced, pending)[0] is Action.RESYNC


def test_their_patch_before_our_streams(doc):
    ''' Their patch touches rows older than our pending ones: apply; unless our rollover shifted them. '''
    _, source, _, rec = doc
    source.stream({"x": np.ones(1), "y": [1]})
    patch = {"kind": "ColumnsPatched", "model": source, "attr": "data", "patches": {"y": [(0, 7)]}}
    assert decide(patch, pending_of(rec))[0] is Action.APPLY
    rec.events.clear()
    source.stream({"x": np.ones(1), "y": [1]}, rollover=4)
    assert decide(patch, pending_of(rec))[0] is Action.RESYNC


def test_their_data_replacement_before_our_streams(doc):
    ''' They replaced the data, we streamed after: our pending rows are appended again after theirs. '''
    _, source, _, rec = doc
    source.stream({"x": np.ones(2), "y": [1, 2]})
    replaced = {"kind": "ColumnDataChanged", "model": source, "attr": "data",
                "data": {"x": np.zeros(1), "y": [0]}, "cols": None}
    action, touch = decide(replaced, pending_of(rec))
    assert action is Action.REAPPEND and touch is not None and touch.rows == 2


def test_roots_and_title(doc):
    ''' Titles: ours wins. Roots changed on both sides: their order would differ, resynchronise. '''
    document, _, _, rec = doc
    document.title = "ours"
    document.add_root(Range1d())
    pending = pending_of(rec)
    assert decide({"kind": "TitleChanged", "title": "theirs"}, pending)[0] is Action.SKIP
    assert decide({"kind": "RootAdded", "model": Range1d()}, pending)[0] is Action.RESYNC
    assert decide({"kind": "RootAdded", "model": Range1d()}, Pending())[0] is Action.APPLY


def test_unserialized_property_sets_count(doc):
    ''' A property set still queued as an event (not serialized yet) is pending too. '''
    _, _, r, _ = doc
    pending = Pending()
    pending.add_event("ModelChanged", r.id, "start")
    assert decide({"kind": "ModelChanged", "model": r, "attr": "start", "new": 3}, pending)[0] is Action.SKIP
