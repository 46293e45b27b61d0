''' Bokeh apps served to the tests by ``bokehsync._localserver``. '''
from __future__ import annotations

from bokeh.document import Document
from bokeh.models import ColumnDataSource, Slider


def empty(doc: Document) -> None:
    ''' A session with an empty document. '''


def slider(doc: Document) -> None:
    ''' A Slider whose server-side on_change writes into a ColumnDataSource. '''
    source = ColumnDataSource(data={"value": []}, name="source")
    widget = Slider(start=0, end=100000, value=0, step=1, title="value", name="slider")

    def changed(attr, old, new):
        source.data = {"value": [*source.data["value"], new]}
    widget.on_change("value", changed)
    doc.add_root(widget)
    doc.add_root(source)


def clamp(doc: Document) -> None:
    ''' A Slider whose server-side on_change clamps ``value`` to 100 (a callback reacting to a client's
    change by changing the same property). '''
    widget = Slider(start=0, end=1000, value=0, step=1, title="value", name="slider")

    def changed(attr, old, new):
        if new > 100:
            widget.value = 100
    widget.on_change("value", changed)
    doc.add_root(widget)


def reset(doc: Document) -> None:
    ''' A source and a Slider whose server-side on_change replaces the source's data with one row (a
    callback reacting to a client's change by replacing data the client streams to). '''
    source = ColumnDataSource(data={"x": [], "y": []}, name="source")
    widget = Slider(start=0, end=100000, value=0, step=1, title="value", name="slider")

    def changed(attr, old, new):
        source.data = {"x": [-1], "y": [new]}
    widget.on_change("value", changed)
    doc.add_root(widget)
    doc.add_root(source)


def columns(doc: Document) -> None:
    ''' A two-column source and a Slider whose server-side on_change assigns
    one column (``source.data["y"] = ...``: a ColumnDataChanged naming ``y``).
    '''
    source = ColumnDataSource(data={"x": [1, 2, 3], "y": [0, 0, 0]}, name="source")
    widget = Slider(start=0, end=100000, value=0, step=1, title="value", name="slider")

    def changed(attr, old, new):
        source.data["y"] = [new] * len(source.data["x"])
    widget.on_change("value", changed)
    doc.add_root(widget)
    doc.add_root(source)


def stream(doc: Document) -> None:
    ''' A periodic server callback that streams one row every 50 ms. '''
    source = ColumnDataSource(data={"x": [], "y": []}, name="source")
    count = [0]

    def tick():
        count[0] += 1
        source.stream({"x": [count[0]], "y": [count[0] * 2]})
    doc.add_root(source)
    doc.add_periodic_callback(tick, 50)


def big(doc: Document) -> None:
    ''' A document of about 6 MB: two float64 columns of 400,000 rows. '''
    import numpy as np
    n = 400_000
    doc.add_root(ColumnDataSource(data={"x": np.arange(n, dtype=np.float64),
                                        "y": np.ones(n, dtype=np.float64)}, name="source"))
