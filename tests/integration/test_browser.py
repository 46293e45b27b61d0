''' Headless Chromium shows a session pushed by bokehsync; changes travel both ways. '''
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from bokeh.document import Document
from bokeh.models import Column, ColumnDataSource, Slider
from bokeh.plotting import figure

from bokehsync import push_session
from tests.support import LONG, wait_until

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
