''' Nothing lost, nothing diverged (issue 12), against real Bokeh servers with default settings:
changes made after the connection died raise instead of vanishing; a third client's push, and
writers crossing each other, leave every client's document equal to the server's. '''
from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from bokeh.document import Document
from bokeh.models import ColumnDataSource, Div, Range1d
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bokehsync import ClientSession, ConnectionLost, ServerError, pull_session, push_session
from tests.support import LONG, wait_until
from tests.support.documents import canonical, quiet, server_state


def _range_doc() -> tuple[Document, Range1d]:
    doc = Document()
    r = Range1d(start=0, end=1000, name="r")
    doc.add_root(r)
    return doc, r


# 1. Changes made after the connection died -------------------------------------------------------

def _open(how: str, url: str) -> tuple[ClientSession, Range1d]:
    if how == "push":
        doc, r = _range_doc()
        return push_session(doc, url=url, timeout=LONG), r
    session = pull_session(url=url, timeout=LONG)
    r = Range1d(start=0, end=1, name="r")
    session.document.add_root(r)
    session.flush()
    return session, r


@pytest.mark.parametrize("how", ["push", "pull"])
@pytest.mark.parametrize("where", ["flush", "close", "with"])
def test_a_change_after_the_server_died_raises(fresh_server, how, where):
    ''' The server is killed; a change made then (a property and a stream) is not on any server: the next
    flush(), close() or end of a with block raises ConnectionLost saying how many changes and why. '''
    session, r = _open(how, fresh_server.url("/empty"))
    source = ColumnDataSource(data={"x": [1]}, name="s")
    session.document.add_root(source)
    session.flush()
    fresh_server.kill()
    wait_until(lambda: not session.connected, timeout=LONG, what="the loss to be noticed")
    r.start = 7
    source.stream({"x": [2, 3]})
    with pytest.raises(ConnectionLost) as info:
        if where == "flush":
            session.flush()
        elif where == "close":
            session.close()
        else:
            with session:
                pass
    error = info.value
    assert error.unsent == 2 and "2 document change(s)" in str(error)
    assert error.__cause__ is not None and "server closed" in str(error)
    session.close()  # reported once: closing again is quiet


def test_changes_lost_in_flight_are_reported(fresh_server):
    ''' Changes written but never acknowledged when the server died count too (unacknowledged). '''
    session, r = _open("push", fresh_server.url("/empty"))
    for value in range(1, 2001):
        r.start = value
    fresh_server.kill()
    with pytest.raises(ConnectionLost) as info:
        session.flush()
    assert info.value.unsent + info.value.unacknowledged >= 1
    session.close()


# 2. A push by a third client ----------------------------------------------------------------------

def _first_client(how: str, url: str, *roots: Any) -> ClientSession:
    ''' A session whose document has ``roots``: pushed, or pulled (a new session) and then added to. '''
    if how == "push":
        doc = Document()
        for root in roots:
            doc.add_root(root)
        return push_session(doc, url=url, timeout=LONG)
    session = pull_session(url=url, timeout=LONG)
    for root in roots:
        session.document.add_root(root)
    session.flush()
    return session


@pytest.mark.parametrize("how", ["push", "pull"])
def test_a_third_clients_push_leaves_everyone_equal_to_the_server(server, how):
    ''' A pushes (or pulls and adds) Div v1, B pulls it, C pushes a new document (Div v2) to the same
    session: A and B end with the server's document (not with no roots), told by on_resync. '''
    url = server.url("/empty")
    resyncs: list[str] = []
    with _first_client(how, url, Div(text="v1", name="div")) as a, \
            pull_session(session_id=a.id, url=url, timeout=LONG) as b:
        for session in (a, b):
            session.on_resync(lambda s, reason: resyncs.append(reason))
        doc_c = Document()
        doc_c.add_root(Div(text="v2", name="div"))
        with push_session(doc_c, session_id=a.id, url=url, timeout=LONG) as c:
            quiet(a, b, c)
            expected = server_state(url, a.id)
            assert canonical(a.document) == canonical(b.document) == expected
            assert [root.text for root in a.document.roots] == ["v2"]
            # A change made now, on either, reaches the server and the others.
            a.document.roots[0].text = "v3"
            quiet(a, b, c)
            assert canonical(b.document) == canonical(c.document) == server_state(url, a.id)
    assert all("could not be applied" in reason for reason in resyncs)


# 3. Two writers of one property -------------------------------------------------------------------

@pytest.mark.parametrize("how", ["push", "pull"])
@pytest.mark.parametrize("trial", range(5))
def test_two_writers_of_one_property_end_equal(server, trial, how):
    ''' Two sessions of one session id each set Range1d.start 200 times from their own thread (even and
    odd values): after both flush, both hold the server's value. '''
    url = server.url("/empty")
    r = Range1d(start=0, end=1000, name="r")
    with _first_client(how, url, r) as one, \
            pull_session(session_id=one.id, url=url, timeout=LONG) as two:
        r2 = two.document.get_model_by_name("r")

        def write(session: ClientSession, model: Range1d, parity: int) -> None:
            for i in range(200):
                with session.lock:
                    model.start = 2 * i + parity
        threads = [threading.Thread(target=write, args=(one, r, 0)), threading.Thread(target=write, args=(two, r2, 1))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(LONG)
        quiet(one, two)
        with pull_session(session_id=one.id, url=url, timeout=LONG) as fresh:
            final = fresh.document.get_model_by_name("r").start
        assert r.start == r2.start == final


@pytest.mark.parametrize("values", [[150], [150, 120, 250], [50, 150, 70]])
def test_a_server_callback_changing_what_we_changed_ends_as_the_server(server, values):
    ''' The app clamps the slider's value to 100 in its on_change: its change reaches us before the OK of
    ours (the server applied it after ours, in reaction), as another client's earlier change would. Our
    document ends with the server's value (skipped at first, then a resync). (Other viewers of the session
    are sent the clamp first and our value after it, by the Bokeh server: they show our value.) '''
    url = server.url("/clamp")
    with pull_session(url=url, timeout=LONG) as session:
        slider = session.document.get_model_by_name("slider")
        resyncs: list[str] = []
        session.on_resync(lambda s, reason: resyncs.append(reason))
        for value in values:
            slider.value = value
        quiet(session)
        assert slider.value == min(values[-1], 100)
        assert server_state(url, session.id) == canonical(session.document)
        assert (values[-1] > 100) <= bool(resyncs)


@pytest.mark.parametrize("batch", [True, False])
def test_a_server_callback_replacing_the_data_we_stream_to_ends_as_the_server(server, batch):
    ''' We stream rows and set the slider; the app replaces the source's data in reaction to the slider,
    after our streams on the server, and its replacement reaches us while they are unacknowledged, as
    another client's earlier one would. Our document ends with the server's rows. '''
    url = server.url("/reset")
    with pull_session(url=url, timeout=LONG) as session:
        source = session.document.get_model_by_name("source")
        slider = session.document.get_model_by_name("slider")
        with session.batch() if batch else session.lock:
            source.stream({"x": [1, 2], "y": [10, 20]})
            slider.value = 7
            source.stream({"x": [3], "y": [30]})
        quiet(session)
        assert server_state(url, session.id) == canonical(session.document)
        assert list(source.data["x"]) == [-1, 3]


def test_a_change_the_server_drops_is_reported_at_flush(server):
    ''' A removes root R and adds root N in one batch while B's removal of R, already on the server, is on
    its way to A. The server drops A's whole PATCH-DOC (it names R) and answers OK: A's flush() raises
    ServerError saying so, and A's document comes back to the server's (no N), as B's is. '''
    url = server.url("/empty")
    doc = Document()
    r = Range1d(start=0, end=1, name="r")
    doc.add_root(r)
    doc.add_root(Div(text="kept", name="div"))
    with push_session(doc, url=url, timeout=LONG) as a, \
            pull_session(session_id=a.id, url=url, timeout=LONG) as b:
        with a.lock:  # A's reader cannot apply B's removal before A's batch is sent
            b.document.remove_root(b.document.get_model_by_name("r"))
            b.flush()
            with a.batch():
                a.document.add_root(Div(text="new", name="new"))
                a.document.remove_root(r)
        with pytest.raises(ServerError) as info:
            a.flush()
        assert "dropped" in str(info.value) and r.id in str(info.value) and url.replace("http", "ws") in str(info.value)
        quiet(a, b)
        expected = server_state(url, a.id)
        assert canonical(a.document) == canonical(b.document) == expected
        assert a.document.get_model_by_name("new") is None and a.document.get_model_by_name("div") is not None


# Random writers: the property-based convergence test ----------------------------------------------

Op = tuple[Any, ...]

ops = st.one_of(
    st.tuples(st.just("set"), st.integers(-50, 50)),
    st.tuples(st.just("text"), st.sampled_from(["a", "b", "c"])),
    st.tuples(st.just("replace"), st.integers(0, 4)),
    st.tuples(st.just("stream"), st.integers(1, 3), st.sampled_from([None, None, 5, 8])),
    st.tuples(st.just("patch"), st.integers(0, 10), st.integers(-9, 9)),
    st.tuples(st.just("root_add")),
    st.tuples(st.just("root_remove")),
    st.tuples(st.just("title"), st.sampled_from(["x", "y"])),
)


def _apply(session: ClientSession, op: Op, tag: str) -> None:
    ''' One random change, made as a program would (holding session.lock, as two threads, ours and the
    reader's, change the document). '''
    doc = session.document
    with session.lock:
        source = doc.get_model_by_name("source")
        kind = op[0]
        if kind == "set":
            doc.get_model_by_name("range").start = op[1]
        elif kind == "text":
            doc.get_model_by_name("div").text = op[1]
        elif kind == "replace":
            source.data = {"x": np.arange(float(op[1])), "y": list(range(op[1]))}
        elif kind == "stream":
            source.stream({"x": np.full(op[1], 1.5), "y": [op[1]] * op[1]}, rollover=op[2])
        elif kind == "patch":
            rows = len(source.data["y"])
            if rows:
                source.patch({"y": [(op[1] % rows, op[2])]})
        elif kind == "root_add":
            doc.add_root(Range1d(start=0, end=1, name=f"extra-{tag}"))
        elif kind == "root_remove":
            extras = [root for root in doc.roots if (root.name or "").startswith("extra")]
            if extras:
                doc.remove_root(extras[0])
        elif kind == "title":
            doc.title = op[1]


def _converge(server_url: str, plans: list[list[Op]]) -> None:
    doc = Document()
    doc.add_root(ColumnDataSource(data={"x": np.arange(3.0), "y": [0, 1, 2]}, name="source"))
    doc.add_root(Range1d(start=0, end=1, name="range"))
    doc.add_root(Div(text="", name="div"))
    first = push_session(doc, url=server_url, timeout=LONG)
    sessions = [first] + [pull_session(session_id=first.id, url=server_url, timeout=LONG) for _ in plans[1:]]
    try:
        start = threading.Barrier(len(sessions))
        rejected: list[BaseException] = []

        def run(session: ClientSession, plan: list[Op], n: int) -> None:
            start.wait(LONG)
            for i, op in enumerate(plan):
                _apply(session, op, f"{n}-{i}")
            try:
                session.flush()
            except ServerError as e:  # e.g. a patch of a row another client's replacement removed
                rejected.append(e)
        threads = [threading.Thread(target=run, args=(s, p, n), name=f"test-writer-{n}")
                   for n, (s, p) in enumerate(zip(sessions, plans, strict=True))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(LONG)
        for _ in range(3):
            try:
                quiet(*sessions)
                break
            except ServerError as e:
                rejected.append(e)
        expected = server_state(server_url, first.id)
        for session in sessions:
            assert canonical(session.document) == expected
    finally:
        for session in sessions:
            try:
                session.close()
            except ServerError:
                pass


def _plans(max_clients: int, max_ops: int) -> st.SearchStrategy[list[list[Op]]]:
    return st.lists(st.lists(ops, max_size=max_ops), min_size=2, max_size=max_clients)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plans=_plans(3, 6))
def test_random_writers_converge(server, plans):
    ''' 2-3 clients of one session apply random changes (property sets, data replaced, streams with and
    without rollover, patches, roots added and removed, titles) from their own threads: after flushes and
    quiet, every client's document equals a fresh pull of the server's. '''
    _converge(server.url("/empty"), plans)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plans=_plans(3, 20))
def test_random_writers_converge_long(server, plans):
    ''' The same, with more and longer runs (slow). '''
    _converge(server.url("/empty"), plans)
