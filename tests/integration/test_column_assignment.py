''' Column assignments (``source.data["y"] = ...``, ``source.data.update(...)``) against a real Bokeh
server, both ways: the server ends with every column the program has, and the program with every column
the server has (bokeh applies such a change as a replacement of the whole data, see
bokehsync/_column_assignment.py). '''
from __future__ import annotations

import numpy as np
import pytest
from bokeh.models import ColumnDataSource

from bokehsync import pull_session
from tests.support import LONG, wait_until
from tests.support.documents import canonical, quiet, server_state


def _data(session, name: str = "source") -> dict:
    return {k: list(v) for k, v in session.document.get_model_by_name(name).data.items()}


@pytest.mark.parametrize("how", ["item", "update", "new_column"])
def test_a_column_assignment_reaches_the_server_with_the_other_columns(server, how):
    ''' After ``source.data["y"] = ...`` (or ``update``), the server's source has every column, as ours. '''
    with pull_session(url=server.url("/empty"), timeout=LONG) as session:
        source = ColumnDataSource(data={"x": [1, 2, 3], "y": [4, 5, 6]}, name="source")
        session.document.add_root(source)
        session.flush()
        if how == "item":
            source.data["y"] = [7, 8, 9]
        elif how == "update":
            source.data.update(y=[7, 8, 9])
        else:
            source.data.update(z=["a", "b", "c"])
        session.flush()
        pulled = server_state(server.url("/empty"), session.id)
        expected = {"x": [1, 2, 3], "y": [7, 8, 9] if how != "new_column" else [4, 5, 6]}
        if how == "new_column":
            expected["z"] = ["a", "b", "c"]
        assert pulled == canonical(session.document)
        with pull_session(url=server.url("/empty"), session_id=session.id, timeout=LONG) as fresh:
            assert _data(fresh) == expected


def test_a_numpy_column_assignment_reaches_the_server_with_the_other_columns(server):
    ''' The same with numpy columns (sent as binary buffers). '''
    with pull_session(url=server.url("/empty"), timeout=LONG) as session:
        source = ColumnDataSource(data={"x": np.arange(5.0), "y": np.zeros(5)}, name="source")
        session.document.add_root(source)
        session.flush()
        source.data["y"] = np.arange(5.0) * 2
        session.flush()
        with pull_session(url=server.url("/empty"), session_id=session.id, timeout=LONG) as fresh:
            data = fresh.document.get_model_by_name("source").data
            assert sorted(data) == ["x", "y"]
            assert list(data["x"]) == [0, 1, 2, 3, 4]
            assert list(data["y"]) == [0, 2, 4, 6, 8]


@pytest.mark.parametrize("who", ["us", "another_client"])
def test_a_server_column_assignment_keeps_our_other_columns(server, who):
    ''' The app assigns ``source.data["y"]`` in a callback of the slider: our source keeps ``x`` and gets
    the new ``y``, as the server's. The slider is set by us (the assignment reaches us before the OK of
    our change) or by another client (nothing of ours on its way). '''
    url = server.url("/columns")
    with pull_session(url=url, timeout=LONG) as session, \
            pull_session(url=url, session_id=session.id, timeout=LONG) as other:
        source = session.document.get_model_by_name("source")
        setter = session if who == "us" else other
        setter.document.get_model_by_name("slider").value = 7
        setter.flush()
        wait_until(lambda: list(source.data.get("y", [])) == [7, 7, 7], timeout=LONG,
                   what="the server's column assignment")
        assert _data(session) == {"x": [1, 2, 3], "y": [7, 7, 7]}
        quiet(session, other)
        assert server_state(url, session.id) == canonical(session.document) == canonical(other.document)


def test_another_clients_column_assignment_reaches_us_with_the_other_columns(server):
    ''' Two clients of one session: A assigns a column; B ends with the server's source, every column. '''
    with pull_session(url=server.url("/empty"), timeout=LONG) as a:
        source = ColumnDataSource(data={"x": [1, 2], "y": [3, 4]}, name="source")
        a.document.add_root(source)
        a.flush()
        with pull_session(url=server.url("/empty"), session_id=a.id, timeout=LONG) as b:
            source.data["y"] = [5, 6]
            quiet(a, b)
            assert _data(b) == {"x": [1, 2], "y": [5, 6]}
            assert canonical(b.document) == canonical(a.document) == server_state(server.url("/empty"), a.id)


@pytest.mark.parametrize("batch", [True, False])
def test_an_app_reacting_to_our_changes_assigns_a_column_after_ours(server, batch):
    ''' We assign ``x`` and set the slider in one go; the app reacts to the slider by assigning ``y``,
    after our whole-data change on the server: our document ends as the server's (x ours, y the app's). '''
    url = server.url("/columns")
    with pull_session(url=url, timeout=LONG) as session:
        source = session.document.get_model_by_name("source")
        slider = session.document.get_model_by_name("slider")
        if batch:
            with session.batch():
                source.data["x"] = [4, 5, 6]
                slider.value = 7
        else:
            with session.lock:  # both queued behind the first, unacknowledged change
                slider.value = 1
                source.data["x"] = [4, 5, 6]
                slider.value = 7
        quiet(session)
        assert _data(session) == {"x": [4, 5, 6], "y": [7, 7, 7]}
        assert server_state(url, session.id) == canonical(session.document)
