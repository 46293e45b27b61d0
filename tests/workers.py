''' Functions run in child processes by the tests (importable for spawn). '''
from __future__ import annotations

from bokeh.document import Document
from bokeh.models import ColumnDataSource

from bokehsync import pull_session, push_session


def push_rows(url: str, session_id: str, rows: int) -> str:
    ''' Push a document with ``rows`` rows under ``session_id``; return the id. '''
    doc = Document()
    doc.add_root(ColumnDataSource(data={"x": list(range(rows))}, name="cds"))
    with push_session(doc, session_id=session_id, url=url):
        pass
    return session_id


def rows_on_server(url: str, session_id: str) -> int:
    with pull_session(session_id=session_id, url=url) as session:
        return len(session.document.get_model_by_name("cds").data["x"])
