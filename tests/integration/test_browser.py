''' Headless Chromium shows a session pushed by bokehsync; changes travel both ways. '''
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import numpy as np
import pytest
from bokeh.document import Document
from bokeh.models import Column, ColumnDataSource, Slider
from bokeh.plotting import figure

from bokehsync import push_session
from bokehsync._localserver import LocalServer
from tests.support import LONG, ROOT, wait_until

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("BOKEHSYNC_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no chromium executable (apt-get install chromium)", allow_module_level=True)

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

#: JS: the browser-side model of this name, or null before the document loaded.
MODEL = "(name) => (window.Bokeh && Bokeh.documents.length) ? Bokeh.documents[0].get_model_by_name(name) : null"
#: JS: a column of the browser-side source named "source" (``data`` is a Map in some BokehJS versions).
COLUMN = f"(col) => {{ const d = ({MODEL})('source').data; return Array.from(d instanceof Map ? d.get(col) : d[col]) }}"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def _document() -> Document:
    source = ColumnDataSource(data={"x": [0, 1, 2], "y": [0, 1, 4]}, name="source")
    plot = figure(name="plot", title="pushed by bokehsync", width=400, height=300)
    plot.line("x", "y", source=source)
    slider = Slider(start=0, end=100, value=1, step=1, title="value", name="slider")
    doc = Document()
    doc.add_root(Column(plot, slider))
    return doc


def test_browser_renders_and_syncs_both_ways(server, browser):
    ''' The page renders the pushed plot; a later bokehsync change shows in the page; a slider moved
    in the page reaches the bokehsync document. '''
    doc = _document()
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        with push_session(doc, url=server.url("/empty"), timeout=LONG) as session:
            page.goto(f"{server.url('/empty')}?bokeh-session-id={session.id}", timeout=LONG * 1000)

            # Rendered: BokehJS has the document and the plot drew its canvas.
            page.wait_for_function(f"({MODEL})('plot') !== null", timeout=LONG * 1000)
            page.wait_for_function("""() => { const c = document.querySelector('.bk-Column');
                const root = c && c.shadowRoot; const p = root && root.querySelector('.bk-Figure');
                const canvas = p && p.shadowRoot && p.shadowRoot.querySelector('.bk-Canvas');
                return canvas !== null && canvas.getBoundingClientRect().width > 0 }""", timeout=LONG * 1000)
            assert page.evaluate(f"({MODEL})('plot').title.text") == "pushed by bokehsync"
            assert page.evaluate(f"({COLUMN})('y')") == [0, 1, 4]

            # bokehsync -> browser.
            with session.batch():
                doc.get_model_by_name("plot").title.text = "changed by bokehsync"
                doc.get_model_by_name("source").stream({"x": [3], "y": [9]})
            session.flush()
            page.wait_for_function(f"({MODEL})('plot').title.text === 'changed by bokehsync'", timeout=LONG * 1000)
            page.wait_for_function(f"({COLUMN})('y').length === 4", timeout=LONG * 1000)
            assert page.evaluate(f"({COLUMN})('y')") == [0, 1, 4, 9]

            # browser -> bokehsync.
            page.evaluate(f"({MODEL})('slider').value = 42")
            slider = doc.get_model_by_name("slider")
            wait_until(lambda: slider.value == 42, what="the browser's slider value in the bokehsync document")
        assert not errors, errors
    finally:
        page.close()


#: The limit of the server below, and what bokehsync is told.
SMALL = 1 << 20

#: JS: [length, sum of the numbers, last item] of column ``col`` of the source named ``name``, or null.
SUMMARY = f"""([name, col]) => {{ const m = ({MODEL})(name); if (m === null) return null;
    const d = m.data; const c = Array.from(d instanceof Map ? d.get(col) : d[col]);
    return [c.length, typeof c[0] === 'number' ? c.reduce((a, b) => a + b, 0) : null, c[c.length - 1]] }}"""


@pytest.fixture(scope="module")
def small_server() -> Iterator[LocalServer]:
    with LocalServer({"/empty": "tests.apps:empty"}, server_kwargs={"websocket_max_message_size": SMALL},
                     pythonpath=[ROOT]) as srv:
        yield srv


def _wait_summary(page, name: str, col: str, expected: list) -> None:
    page.wait_for_function(f"""([name, col, expected]) => {{ const s = ({SUMMARY})([name, col]);
        return s !== null && s.every((v, i) => v === expected[i]) }}""", arg=[name, col, expected],
                           timeout=LONG * 1000)


def test_browser_shows_all_the_data_that_arrived_in_parts(small_server, browser):
    ''' A page views a session on a 1 MiB server while a 400,000-row data replacement, a 300,000-row
    stream, and another client's push of a 500,000-row document each arrive as several messages: BokehJS
    ends with every row (length, sum and last value), and no page error.

    The push comes after the first session closed: with two or more other connections, the Bokeh server
    defines a new model to only one of them (docs/reliability.rst, "Changes that cannot be applied"). '''
    doc = _document()
    big = ColumnDataSource(data={"x": [0.0], "s": ["a"]}, name="big")
    doc.add_root(big)
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    url = small_server.url("/empty")
    try:
        with push_session(doc, url=url, timeout=LONG, server_max_message_size=SMALL) as session:
            page.goto(f"{url}?bokeh-session-id={session.id}", timeout=LONG * 1000)
            page.wait_for_function(f"({MODEL})('big') !== null", timeout=LONG * 1000)

            x = np.arange(400_000.0)
            big.data = {"x": x, "s": [f"row {i}" for i in range(400_000)]}
            session.flush()
            _wait_summary(page, "big", "x", [400_000, float(x.sum()), 399_999])
            _wait_summary(page, "big", "s", [400_000, None, "row 399999"])

            big.stream({"x": np.full(300_000, 2.0), "s": ["streamed"] * 300_000})
            session.flush()
            _wait_summary(page, "big", "x", [700_000, float(x.sum()) + 600_000, 2])

        other = Document()
        other.add_root(ColumnDataSource(data={"y": np.arange(500_000.0)}, name="pushed"))
        with push_session(other, session_id=session.id, url=url, timeout=LONG, server_max_message_size=SMALL):
            _wait_summary(page, "pushed", "y", [500_000, float(np.arange(500_000.0).sum()), 499_999])
        assert not errors, errors
    finally:
        page.close()
