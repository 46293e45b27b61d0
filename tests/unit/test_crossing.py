''' A server change crossing changes of ours, applied (bokehsync._crossing) and then repaired by a resync
(bokehsync._reconcile): the client's document ends equal to the server's. The server and the client are
two bokeh documents, changed in the order a Bokeh server applies the changes. '''
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from bokeh.core.serialization import Serialized
from bokeh.document import Document
from bokeh.models import ColumnDataSource

from bokehsync._converge import Pending
from bokehsync._crossing import apply_crossing
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
                            setter=None)
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
    recorder = Recorder()
    server.callbacks.on_change_dispatch_to(recorder)
    change(server.get_model_by_name("source"))
    server.callbacks.on_change_dispatch_to(None)
    return PROTOCOL.create("PATCH-DOC", recorder.events)


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
    reason = apply_crossing(local, broadcast, _pending([ours]), setter=None)
    assert reason is not None
    snapshot = PROTOCOL.create("PULL-DOC-REPLY", "req", server)
    reconcile(local, Serialized(snapshot.content["doc"], snapshot.buffers), setter=None, pending=_pending([ours]))
    server.get_model_by_name("source").stream({"x": np.array([7.0, 8.0]), "y": [7, 8]}, rollover=5)

    assert canonical(local) == canonical(server)
    assert list(source.data["y"][-2:]) == [7, 8]
