''' Bokeh apps served to the benchmarks by ``bokehsync._localserver``.

Each function builds one session's document, as a Bokeh app does. The
server is started with ``pythonpath=[repo root]`` so that it imports them as
``benchmarks.apps:<name>``.
'''
from __future__ import annotations

from typing import Any

from bokeh.document import Document
from bokeh.models import ColumnDataSource, Range1d, Slider

#: Milliseconds between two updates of the ``ticker`` app.
TICK_MS = 50


def empty(doc: Document) -> None:
    ''' An empty document (connect, pull and push cases). '''


def range1d(doc: Document) -> None:
    ''' One ``Range1d`` named ``range`` (patch_burst). '''
    doc.add_root(Range1d(start=0, end=1, name="range"))


def source(doc: Document) -> None:
    ''' An empty two-column ``ColumnDataSource`` named ``source`` (stream). '''
    doc.add_root(ColumnDataSource(data={"x": [], "y": []}, name="source"))


def echo(doc: Document) -> None:
    ''' A ``Slider`` whose server-side ``on_change`` streams each new value
    into the ``echo`` source: one server update per client change
    (patch_callback).
    '''
    widget = Slider(start=0, end=10**7, value=0, step=1, title="value", name="slider")
    out = ColumnDataSource(data={"v": []}, name="echo")

    def changed(attr: str, old: Any, new: Any) -> None:
        out.stream({"v": [new]})
    widget.on_change("value", changed)
    doc.add_root(widget)
    doc.add_root(out)


def ticker(doc: Document) -> None:
    ''' A periodic server callback that streams one row, numbered from 1,
    every ``TICK_MS`` ms into the ``ticks`` source (receive).
    '''
    ticks = ColumnDataSource(data={"n": []}, name="ticks")
    count = [0]

    def tick() -> None:
        count[0] += 1
        ticks.stream({"n": [count[0]]})
    doc.add_root(ticks)
    doc.add_periodic_callback(tick, TICK_MS)
