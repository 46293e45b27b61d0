''' Bringing a document to a server snapshot in place (bokehsync._reconcile): the program's model
objects stay, every value ends as the server's, pending changes of ours are kept. '''
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from bokeh.core.serialization import DeserializationError, Serialized
from bokeh.document import Document
from bokeh.models import ColumnDataSource, Div, Range1d, Row

from bokehsync._converge import Pending
from bokehsync._reconcile import reconcile
from bokehsync._wire import PROTOCOL
from tests.support.documents import canonical


def snapshot(doc: Document) -> Serialized[Any]:
    ''' The server's document as a PULL-DOC-REPLY carries it. '''
    reply = PROTOCOL.create("PULL-DOC-REPLY", "req", doc)
    return Serialized(reply.content["doc"], reply.buffers)


def copy(doc: Document) -> Document:
    ''' Another process's copy of ``doc``: the same model ids, other objects. '''
    reply = PROTOCOL.create("PULL-DOC-REPLY", "req", doc)
    other = Document()
    reply.push_to_document(other)
    return other


@pytest.fixture
def server_and_local() -> tuple[Document, Document]:
    server = Document()
    server.add_root(Row(children=[Div(text="a", name="div")], name="row"))
    server.add_root(ColumnDataSource(data={"x": np.arange(4.0), "y": [1, 2, 3, 4]}, name="source"))
    server.add_root(Range1d(start=0, end=10, name="range"))
    server.title = "first"
    return server, copy(server)


def test_values_follow_the_server_and_objects_stay(server_and_local):
    ''' Changed properties, new models, removed models, roots and title end as the server's; the model
    objects the program held are still the document's. '''
    server, local = server_and_local
    held = {name: local.get_model_by_name(name) for name in ("div", "row", "source", "range")}
    server.get_model_by_name("div").text = "b"
    server.get_model_by_name("row").children.append(Div(text="new"))
    server.get_model_by_name("source").stream({"x": np.ones(2), "y": [5, 6]})
    server.remove_root(server.get_model_by_name("range"))
    server.add_root(Range1d(start=3, end=4, name="other"))
    server.title = "second"
    assert reconcile(local, snapshot(server), setter=None, pending=Pending()) is False
    assert canonical(local) == canonical(server)
    for name in ("div", "row", "source"):
        assert local.get_model_by_name(name) is held[name]
    assert held["div"].text == "b" and len(held["source"].data["y"]) == 6
    assert local.get_model_by_name("range") is None


def test_pending_property_keeps_ours(server_and_local):
    ''' A property we set that the snapshot does not have yet keeps our value (it will win on the server). '''
    server, local = server_and_local
    server.get_model_by_name("range").start = 5
    local.get_model_by_name("range").start = 7
    pending = Pending()
    pending.add_event("ModelChanged", local.get_model_by_name("range").id, "start")
    assert reconcile(local, snapshot(server), setter=None, pending=pending) is False
    assert local.get_model_by_name("range").start == 7


def test_pending_stream_rows_come_after_the_servers(server_and_local):
    ''' Our pending stream (2 rows) goes after the server's rows, as the server will apply it. '''
    server, local = server_and_local
    server.get_model_by_name("source").stream({"x": np.full(3, 8.0), "y": [8, 8, 8]})
    source = local.get_model_by_name("source")
    source.stream({"x": np.full(2, 9.0), "y": [9, 9]})
    pending = Pending()
    for rep in PROTOCOL.create("PATCH-DOC", [_streamed(local, source, 2)]).content["events"]:
        pending.add_rep(rep)
    assert reconcile(local, snapshot(server), setter=None, pending=pending) is False
    assert list(source.data["y"]) == [1, 2, 3, 4, 8, 8, 8, 9, 9]
    assert list(source.data["x"][-2:]) == [9.0, 9.0]


def _streamed(doc: Document, source: ColumnDataSource, rows: int) -> Any:
    from bokeh.document.events import ColumnsStreamedEvent
    return ColumnsStreamedEvent(doc, source, "data", {"x": np.full(rows, 9.0), "y": [9] * rows}, None)


def test_unknown_model_types_raise(server_and_local):
    ''' A snapshot naming a class this process lacks raises bokeh's DeserializationError (mapped by the caller). '''
    server, local = server_and_local
    snap = snapshot(server)
    snap.content["roots"][0]["name"] = "nowhere.Widget"
    with pytest.raises(DeserializationError):
        reconcile(local, snap, setter=None, pending=Pending())
