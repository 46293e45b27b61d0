''' A server change crossing changes of ours, applied (bokehsync._crossing) and then repaired by a resync
(bokehsync._reconcile): the client's document ends equal to the server's. The server and the client are
two bokeh documents, changed in the order a Bokeh server applies the changes. '''
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from bokeh.core.serialization import Serialized
from bokeh.document import Document
from bokeh.models import ColumnDataSource, Range1d

from bokehsync._column_assignment import as_sent
from bokehsync._converge import Pending
from bokehsync._crossing import apply_crossing
from bokehsync._docsync import DocumentSync
from bokehsync._reconcile import reconcile
from bokehsync._wire import PROTOCOL
from tests.support.documents import Recorder, canonical


def _copy(doc: Document) -> Document:
    ''' Another process's copy of ``doc``: the same model ids, other objects. '''
    other = Document()
    PROTOCOL.create("PULL-DOC-REPLY", "req", doc).push_to_document(other)
    return other


def _pending(events: list[Any]) -> Pending:
    ''' What our changes not yet applied by the server touch, as the session counts them. '''
    pending = Pending()
    for rep in PROTOCOL.create("PATCH-DOC", events).content["events"]:
        pending.add_rep(rep)
    return pending


def _rows(n: int, value: int) -> dict[str, Any]:
    return {"x": np.full(n, float(value)), "y": [value] * n}


@pytest.mark.parametrize(("ours", "theirs"), [
    ([8, None], 5),     # our streams have two rollovers: no exact rule
    ([None, None], 5),  # one rollover, not theirs: no exact rule
    ([3, 3], None),
    ([4, 4], 4),        # the exact rule (reorder)
])
def test_a_crossing_stream_then_a_resync_ends_as_the_server(ours, theirs):
    ''' Another client's stream reaches the server before our two streams, and its broadcast reaches us
    while both are on their way: our document shows their rows before ours at once. The server
    acknowledges the first of ours, then a resync pulls its document, then it applies our second: our
    document ends equal to the server's, whichever rollovers. '''
    server = Document()
    server.add_root(ColumnDataSource(data=_rows(3, 0), name="source"))
    local = _copy(server)
    source = local.get_model_by_name("source")
    recorder = Recorder()
    local.callbacks.on_change_dispatch_to(recorder)
    for value, rollover in zip((7, 9), ours, strict=True):
        source.stream(_rows(1, value), rollover=rollover)
    first, second = recorder.events

    # The server: theirs, then our first stream. Theirs is broadcast to us.
    server_source = server.get_model_by_name("source")
    broadcast = Recorder()
    server.callbacks.on_change_dispatch_to(broadcast)
    server_source.stream(_rows(2, 2), rollover=theirs)
    reason = apply_crossing(local, PROTOCOL.create("PATCH-DOC", broadcast.events), _pending([first, second]),
                            setter=None, left_to_resync=set())
    # Meanwhile the document shows their rows, before ours.
    assert list(source.data["y"])[-3:] == [2, 7, 9]
    server_source.stream(_rows(1, 7), rollover=ours[0])

    # The resync's snapshot, with our second stream still on its way; then the server applies it.
    snapshot = PROTOCOL.create("PULL-DOC-REPLY", "req", server)
    again = reconcile(local, Serialized(snapshot.content["doc"], snapshot.buffers), setter=None,
                      pending=_pending([second]))
    server_source.stream(_rows(1, 9), rollover=ours[1])

    assert canonical(local) == canonical(server), (reason, again)
    assert list(source.data["y"])[-1] == 9


def _their_change(server: Document, change: Any) -> Any:
    ''' ``change(source)`` made on the server's document, and the PATCH-DOC the server broadcasts for it. '''
    return PROTOCOL.create("PATCH-DOC", _recorded(server, change))


def _recorded(doc: Document, change: Any) -> list[Any]:
    ''' The change events of ``change(source)`` made on ``doc``. '''
    recorder = Recorder()
    doc.callbacks.on_change_dispatch_to(recorder)
    try:
        change(doc.get_model_by_name("source"))
    finally:
        doc.callbacks.remove_on_change(recorder)
    return recorder.events


@pytest.mark.parametrize("theirs", ["patch", "column"])
def test_a_crossing_patch_or_column_leaves_our_pending_rows_to_the_resync(theirs):
    ''' Another client patches a row (its index counts the server's rows, without ours) or replaces one
    column, and it reaches the server before our stream (2 rows, rollover 5) that is on its way. Applied
    over our document it would land on our pending rows; after the resync and our stream, our document
    equals the server's. '''
    server = Document()
    server.add_root(ColumnDataSource(data={"x": np.arange(5.0), "y": list(range(5))}, name="source"))
    local = _copy(server)
    source = local.get_model_by_name("source")
    recorder = Recorder()
    local.callbacks.on_change_dispatch_to(recorder)
    source.stream({"x": np.array([7.0, 8.0]), "y": [7, 8]}, rollover=5)
    [ours] = recorder.events

    if theirs == "patch":
        broadcast = _their_change(server, lambda s: s.patch({"y": [(3, -1)]}))
    else:
        broadcast = _their_change(server, lambda s: s.data.update(y=[9] * 5))
    reason = apply_crossing(local, broadcast, _pending([ours]), setter=None, left_to_resync=set())
    assert reason is not None
    snapshot = PROTOCOL.create("PULL-DOC-REPLY", "req", server)
    reconcile(local, Serialized(snapshot.content["doc"], snapshot.buffers), setter=None, pending=_pending([ours]))
    server.get_model_by_name("source").stream({"x": np.array([7.0, 8.0]), "y": [7, 8]}, rollover=5)

    assert canonical(local) == canonical(server)
    assert list(source.data["y"][-2:]) == [7, 8]


@pytest.mark.parametrize("ours", ["nothing", "another_property", "the_same_source"])
@pytest.mark.parametrize("how", ["item", "update"])
def test_a_server_column_assignment_keeps_the_other_columns(ours, how):
    ''' The server assigns one column (``source.data["y"] = ...`` in an app callback: a ColumnDataChanged
    naming ``y``, carrying ``y`` only). Our source keeps ``x`` as the server does, whether changes of ours
    are on their way or not; with our whole-data replacement on its way, theirs is skipped (ours replaces
    it on the server). '''
    server = Document()
    server.add_root(ColumnDataSource(data={"x": [1, 2, 3], "y": [0, 0, 0]}, name="source"))
    server.add_root(Range1d(start=0, end=1, name="range"))
    local = _copy(server)
    source = local.get_model_by_name("source")
    recorder = Recorder()
    local.callbacks.on_change_dispatch_to(recorder)
    if ours == "another_property":
        local.get_model_by_name("range").start = 5
    elif ours == "the_same_source":
        source.data = {"x": [4, 5], "y": [6, 7]}
    pending = _pending([as_sent(event) for event in recorder.events]) if recorder.events else Pending()

    def assign(s: ColumnDataSource) -> None:
        if how == "item":
            s.data["y"] = [9, 9, 9]
        else:
            s.data.update(y=[9, 9, 9])
    broadcast = _their_change(server, assign)
    assert broadcast.content["events"][0]["cols"] == ["y"]
    reason = apply_crossing(local, broadcast, pending, setter=None, left_to_resync=set())
    # Skipped under our whole replacement, which the server may have applied before or after it: resync.
    assert (reason is None) == (ours != "the_same_source")
    # Then the server applies ours.
    if ours == "another_property":
        server.get_model_by_name("range").start = 5
    elif ours == "the_same_source":
        server.get_model_by_name("source").data = {"x": [4, 5], "y": [6, 7]}
    if reason is not None:  # the resync's reply, once ours is acknowledged
        snapshot = PROTOCOL.create("PULL-DOC-REPLY", "req", server)
        reconcile(local, Serialized(snapshot.content["doc"], snapshot.buffers), setter=None, pending=Pending())
    assert canonical(local) == canonical(server)
    expected = {"x": [4, 5], "y": [6, 7]} if ours == "the_same_source" else {"x": [1, 2, 3], "y": [9, 9, 9]}
    assert source.data == expected


@pytest.mark.parametrize("theirs", ["reaction", "same_value_first"])
def test_a_server_callbacks_reaction_to_our_change_ends_as_the_server(theirs):
    ''' We set ``start = 150``; the server applies it, and an app callback reacting to it sets ``start``
    again (a clamp to 100): its broadcast reaches us before our OK, as another client's earlier change
    would. Skipped (ours would win over an earlier change) but verified by a resync, unless it sets what
    we have (another client set 150 first): our document ends as the server's. '''
    server = Document()
    server.add_root(Range1d(start=0, end=1000, name="range"))
    local = _copy(server)
    recorder = Recorder()
    local.callbacks.on_change_dispatch_to(recorder)
    local.get_model_by_name("range").start = 150
    server_range = server.get_model_by_name("range")
    broadcast = Recorder()
    if theirs == "reaction":
        server_range.start = 150  # ours, applied on the server; then the app's reaction:
        server.callbacks.on_change_dispatch_to(broadcast)
        server_range.start = 100
    else:
        server.callbacks.on_change_dispatch_to(broadcast)
        server_range.start = 150  # another client's, first; ours then changes nothing
    reason = apply_crossing(local, PROTOCOL.create("PATCH-DOC", broadcast.events), _pending(recorder.events),
                            setter=None, left_to_resync=set())
    assert local.get_model_by_name("range").start == 150  # meanwhile, ours
    if theirs == "same_value_first":  # the same value and type as ours: the order does not matter
        assert reason is None
    else:
        assert reason is not None and "reacting" in reason
        snapshot = PROTOCOL.create("PULL-DOC-REPLY", "req", server)
        reconcile(local, Serialized(snapshot.content["doc"], snapshot.buffers), setter=None, pending=Pending())
    assert canonical(local) == canonical(server)


def test_a_server_column_assignment_that_does_not_describe_the_source_is_left_to_the_resync():
    ''' A server app assigns ``y`` then streams a row inside ``document.hold()``: bokeh serializes the
    held assignment with the streamed row in it, so merged with our ``x`` the columns would differ in
    length. Nothing of the source is applied until the resync, which ends as the server. '''
    server = Document()
    server.add_root(ColumnDataSource(data={"x": [1, 2, 3], "y": [0, 0, 0]}, name="source"))
    local = _copy(server)

    def held(s: ColumnDataSource) -> None:
        server.hold("combine")
        s.data["y"] = [7, 7, 7]
        s.stream({"x": [4], "y": [-7]})
        server.unhold()
    broadcast = _their_change(server, held)
    left: set[tuple[str, str]] = set()
    reason = apply_crossing(local, broadcast, Pending(), setter=None, left_to_resync=left)
    assert reason is not None and "different lengths" in reason
    assert local.get_model_by_name("source").data == {"x": [1, 2, 3], "y": [0, 0, 0]}  # untouched meanwhile
    snapshot = PROTOCOL.create("PULL-DOC-REPLY", "req", server)
    reconcile(local, Serialized(snapshot.content["doc"], snapshot.buffers), setter=None, pending=Pending())
    assert canonical(local) == canonical(server)


def test_a_column_assignment_is_sent_as_the_whole_data():
    ''' Our ``source.data["y"] = ...`` goes as a replacement of the whole data: the Bokeh server sets
    ``data`` to what a ColumnDataChanged carries. Other changes go as they are. '''
    doc = Document()
    source = ColumnDataSource(data={"x": [1, 2], "y": [3, 4]}, name="source")
    doc.add_root(source)
    server = _copy(doc)
    recorder = Recorder()
    doc.callbacks.on_change_dispatch_to(recorder)
    source.data["y"] = [5, 6]
    # Serialized at once, as the session serializes column events.
    patch = PROTOCOL.create("PATCH-DOC", [as_sent(recorder.events[0])])
    [rep] = patch.content["events"]
    assert rep["kind"] == "ColumnDataChanged" and rep["cols"] is None
    server.apply_json_patch(patch.content)
    assert server.get_model_by_name("source").data == {"x": [1, 2], "y": [5, 6]}
    source.stream({"x": [7], "y": [8]})
    assert as_sent(recorder.events[1]) is recorder.events[1]


def test_a_source_left_to_the_resync_stays_left_to_it_until_the_reply():
    ''' Their replacement of every column (10 rows, no exact rule while our stream S1 is on its way) is
    left to the resync. The server applies S1; we stream S2 (sent after the resync's request); another
    client's patch of row 6 (the server's numbering) arrives before the reply. Applied, it would land on
    S2's row, which the reply keeps as ours: it waits for the resync too, and our document ends equal to
    the server's. '''
    server = Document()
    server.add_root(ColumnDataSource(data={"x": list(range(5)), "y": list(range(5))}, name="source"))
    local = _copy(server)
    source = local.get_model_by_name("source")
    left: set[tuple[str, str]] = set()
    s1 = _recorded(local, lambda s: s.stream({"x": [100], "y": [100]}))
    replaced = _their_change(server, lambda s: s.data.update(x=list(range(10)), y=list(range(10))))
    assert apply_crossing(local, replaced, _pending(s1), setter=None, left_to_resync=left) is not None
    PROTOCOL.create("PATCH-DOC", s1).apply_to_document(server, None)
    s2 = _recorded(local, lambda s: s.stream({"x": [200], "y": [200]}))
    patched = _their_change(server, lambda s: s.patch({"x": [(6, -1)]}))
    assert apply_crossing(local, patched, _pending(s2), setter=None, left_to_resync=left) is not None
    assert list(source.data["x"])[-1] == 200  # not patched over

    snapshot = PROTOCOL.create("PULL-DOC-REPLY", "req", server)
    assert reconcile(local, Serialized(snapshot.content["doc"], snapshot.buffers), setter=None,
                     pending=_pending(s2)) is False
    PROTOCOL.create("PATCH-DOC", s2).apply_to_document(server, None)
    assert canonical(local) == canonical(server)


def test_a_server_change_naming_a_model_we_removed_resyncs():
    ''' We remove root R and add root N (one PATCH-DOC on its way); another client's removal of R reached the
    server first. bokeh cannot decode the broadcast (R is gone here) and the server drops our whole patch
    (it names R), N included, answering OK: the document must resynchronise to the server's, not stay
    with N. '''
    server = Document()
    server.add_root(ColumnDataSource(data={"x": [1]}, name="source"))
    server.add_root(ColumnDataSource(data={"x": [2]}, name="r"))
    local = _copy(server)
    recorder = Recorder()
    local.callbacks.on_change_dispatch_to(recorder)
    local.add_root(ColumnDataSource(data={"x": [3]}, name="n"))
    local.remove_root(local.get_model_by_name("r"))
    local.callbacks.remove_on_change(recorder)
    ours = PROTOCOL.create("PATCH-DOC", recorder.events)  # once: it defines N, then N counts as sent
    pending = Pending()
    for rep in ours.content["events"]:
        pending.add_rep(rep)

    removed = Recorder()
    server.callbacks.on_change_dispatch_to(removed)
    server.remove_root(server.get_model_by_name("r"))
    server.callbacks.remove_on_change(removed)
    server.models.recompute()  # as the server has by then: R counts as seen, and a patch naming it is dropped
    reason = apply_crossing(local, PROTOCOL.create("PATCH-DOC", removed.events), pending, setter=None,
                            left_to_resync=set())
    assert reason is not None and "drops a change" in reason
    ours.apply_to_document(server, None)  # dropped, as the server does
    assert server.get_model_by_name("n") is None

    snapshot = PROTOCOL.create("PULL-DOC-REPLY", "req", server)
    reconcile(local, Serialized(snapshot.content["doc"], snapshot.buffers), setter=None, pending=Pending())
    assert canonical(local) == canonical(server)


class _Session:
    ''' The setter a DocumentSync needs: forwards the document's changes to it, as ClientSession does. '''

    def __init__(self) -> None:
        self.sync: DocumentSync | None = None

    def _document_patched(self, event: Any) -> None:
        assert self.sync is not None
        self.sync.on_change(event)


def test_what_was_left_to_the_resync_is_forgotten_once_its_reply_is_applied():
    ''' The session's document side (DocumentSync): a server patch crossing our stream (rollover 5) is left
    to the resync; once the resync's reply is applied, a later server stream to that source is applied
    again (before our rows), and our document ends equal to the server's. '''
    server = Document()
    server.add_root(ColumnDataSource(data={"x": np.arange(5.0), "y": list(range(5))}, name="source"))
    local = _copy(server)
    source = local.get_model_by_name("source")
    session = _Session()
    sync = session.sync = DocumentSync(session, loop=None)  # type: ignore[arg-type]  # no callbacks to run
    resyncs: list[str] = []
    sync.resync = resyncs.append
    sync.outbox.online()
    with sync.lock:
        sync.attach(local)
    source.stream({"x": np.array([7.0]), "y": [7]}, rollover=5)  # queued, the server has not got it

    sync.apply_patch(_their_change(server, lambda s: s.patch({"y": [(1, -1)]})))
    assert resyncs and list(source.data["y"]) == [1, 2, 3, 4, 7]  # left to the resync
    assert sync.apply_resync(PROTOCOL.create("PULL-DOC-REPLY", "req", server)) is False
    sync.apply_patch(_their_change(server, lambda s: s.stream({"x": np.array([8.0]), "y": [8]}, rollover=5)))
    assert list(source.data["y"]) == [2, 3, 4, 8, 7]  # theirs, then ours
    server.get_model_by_name("source").stream({"x": np.array([7.0]), "y": [7]}, rollover=5)
    assert canonical(local) == canonical(server)
    sync.detach()


def test_a_server_removal_names_the_models_our_patches_lose():
    ''' Our set of R.start is on its way when the server's removal of R arrives: R is removed here too,
    the document resyncs, and the ids of R and its models are given back (the server drops our patch naming R:
    Outbox.dropped_by_server reports it). '''
    server = Document()
    server.add_root(ColumnDataSource(data={"x": [1]}, name="source"))
    server.add_root(ColumnDataSource(data={"x": [2]}, name="r"))
    local = _copy(server)
    r = local.get_model_by_name("r")
    ours = _recorded(local, lambda _: setattr(r, "name", "renamed"))
    removal = _their_change(server, lambda _: server.remove_root(server.get_model_by_name("r")))
    removed: set[str] = set()
    reason = apply_crossing(local, removal, _pending(ours), setter=None, left_to_resync=set(), removed=removed)
    assert reason is not None and removed == {model.id for model in r.references()}  # R and its own models
    assert local.get_model_by_name("renamed") is None
