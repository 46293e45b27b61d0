''' examples/notebook.ipynb runs in a real IPython kernel (a running asyncio loop) via nbclient. '''
from __future__ import annotations

import os

import pytest

from bokehsync import pull_session
from tests.support import LONG, ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = os.path.join(ROOT, "examples", "notebook.ipynb")

CONTRAST_CELL = '''
from bokeh.client import pull_session as bokeh_pull_session
try:
    bokeh_pull_session(url=URL).close()
    print("bokeh.client: ok")
except Exception as e:
    print(f"bokeh.client: {type(e).__name__}: {e}")
'''


def _outputs(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def test_notebook_pushes_streams_and_pulls_in_a_kernel(demo_server, monkeypatch):
    ''' In a kernel whose event loop runs, the notebook pushes, streams, flushes and sees changes;
    a fresh session pulls what it left; bokeh.client fails in the same kernel. '''
    session_id = "notebook-test"
    monkeypatch.setenv("BOKEHSYNC_URL", demo_server.url("/demo"))
    monkeypatch.setenv("BOKEHSYNC_SESSION_ID", session_id)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(CONTRAST_CELL))
    client = nbclient.NotebookClient(nb, timeout=LONG, kernel_name="python3", resources={"metadata": {"path": ROOT}})
    client.execute()  # raises CellExecutionError if any cell (or its asserts) fails

    text = "".join(_outputs(c) for c in nb.cells)
    assert "event loop running: True" in text
    assert "rows sent: 100" in text and "our title is now: changed by another client" in text
    assert "bokeh.client: RuntimeError" in _outputs(nb.cells[-1]), _outputs(nb.cells[-1])

    with pull_session(session_id=session_id, url=demo_server.url("/demo"), timeout=LONG) as check:
        doc = check.document
        assert len(doc.get_model_by_name("source").data["x"]) == 100
        assert doc.get_model_by_name("plot").title.text == "changed by another client"
