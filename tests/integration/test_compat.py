''' What code written for bokeh.client relies on, against a real Bokeh server (issue 14):
``connection._loop_until(predicate)`` (item 2) and pulling a document whose model types the
client does not define (item 4). Call shapes (item 1) are in tests/unit/test_call_shapes.py,
forked children (item 3) in test_fork.py, Panel in test_panel.py. '''
from __future__ import annotations

import itertools
import pickle
import sys
import threading
from collections.abc import Callable

import pytest
from bokeh.core.serialization import DeserializationError
from bokeh.document import Document
from bokeh.models import Range1d

import bokehsync
from bokehsync import ClientSession, pull_session, push_session
from tests.support import LONG, SHORT, bokehsync_threads, wait_until

#: A session timeout far beyond LONG: a wait that ends within LONG did not end by timing out.
PATIENT = 4 * LONG

#: The app's own model type (tests/foreign_models.py), which only the server process imports.
FOREIGN_MODULE = "tests.foreign_models"
FOREIGN_TYPE = "tests.foreign_models.Gauge"


def _range_doc() -> tuple[Document, Range1d]:
    doc = Document()
    r = Range1d(start=0, end=1, name="r")
    doc.add_root(r)
    return doc, r


# Item 2: connection._loop_until(predicate) ---------------------------------------------------------

def _loop_until_in_a_thread(session: ClientSession, predicate: Callable[[], bool]) -> BaseException | None:
    ''' Run ``session._connection._loop_until(predicate)`` on a thread of its own and return what it raised
    (None if it returned). The session's timeout is far longer than LONG, so the wait ends in time only if
    the predicate is re-checked while waiting, not merely once more at the session's deadline. '''
    assert session.timeout > 2 * LONG
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            session._connection._loop_until(predicate)
        except BaseException as e:
            outcome.append(e)
        else:
            outcome.append(None)
    waiter = threading.Thread(target=run, name="test-loop-until", daemon=True)
    waiter.start()
    waiter.join(LONG)
    assert outcome, f"_loop_until did not return within {LONG} s although its predicate became true"
    return outcome[0]


def test_loop_until_ends_on_a_server_change(server):
    ''' _loop_until(predicate) returns once a change pushed by another client of the session reaches
    this session's document (a server PATCH-DOC applied by the reader). '''
    url = server.url("/empty")
    doc, r = _range_doc()
    with push_session(doc, url=url, timeout=PATIENT) as session, \
            pull_session(session_id=session.id, url=url, timeout=LONG) as other:
        theirs = other.document.get_model_by_name("r")

        def change_from_the_other_client() -> None:
            with other.lock:
                theirs.start = 5
            other.flush()
        changer = threading.Thread(target=change_from_the_other_client, name="test-other-client")
        calls = itertools.count()

        def predicate() -> bool:
            if next(calls) == 0:  # the change is made only once the wait has begun
                changer.start()
                return False
            return r.start == 5
        try:
            assert _loop_until_in_a_thread(session, predicate) is None
        finally:
            if changer.ident is not None:
                changer.join(LONG)
        assert r.start == 5
        assert session.connected


def test_loop_until_connects_a_connection_never_connected(server):
    ''' As bokeh.client's (its connect() is _loop_until(connected_or_closed)), _loop_until connects first. '''
    session = ClientSession(websocket_url=server.ws_url("/empty"), timeout=LONG)
    try:
        session._connection._loop_until(lambda: session.connected)
        assert session.connected
    finally:
        session.close()


def test_handle_patch_overrides_see_every_server_patch(server):
    ''' bokeh.client hands server patches to session._handle_patch: a subclass overriding it sees them. '''
    seen: list[str] = []

    class Watching(ClientSession):
        def _handle_patch(self, message):
            seen.append(message.msgtype)
            super()._handle_patch(message)
    url = server.url("/empty")
    doc, r = _range_doc()
    with push_session(doc, url=url, timeout=LONG) as pushed:
        watching = Watching(session_id=pushed.id, websocket_url=server.ws_url("/empty"), timeout=LONG)
        try:
            watching.pull()
            r.start = 3
            pushed.flush()
            mine = watching.document.get_model_by_name("r")
            wait_until(lambda: mine.start == 3, timeout=LONG, what="the change to arrive")
            assert seen == ["PATCH-DOC"]
        finally:
            watching.close()


def test_loop_until_rechecks_without_any_message(server):
    ''' A predicate on a plain flag set by another thread, with no message at all, still ends the wait:
    the predicate is re-checked periodically, not only when a message arrives. '''
    doc, _ = _range_doc()
    with push_session(doc, url=server.url("/empty"), timeout=PATIENT) as session:
        flag = [False]
        began = threading.Event()

        def set_flag() -> None:
            if began.wait(LONG):
                flag[0] = True
        setter = threading.Thread(target=set_flag, name="test-flag-setter")
        setter.start()
        calls = itertools.count()

        def predicate() -> bool:
            if next(calls) == 0:  # always False once, so the flag is set while _loop_until waits
                began.set()
                return False
            return flag[0]
        try:
            assert _loop_until_in_a_thread(session, predicate) is None
        finally:
            began.set()
            setter.join(LONG)
        assert flag[0]


def test_loop_until_times_out(server):
    ''' A predicate that never becomes true raises ReplyTimeout (a TimeoutError) after the session's
    timeout; the connection stays usable. '''
    session = ClientSession(websocket_url=server.ws_url("/empty"), timeout=SHORT)
    try:
        session.push(_range_doc()[0], timeout=LONG)
        with pytest.raises(bokehsync.ReplyTimeout) as info:
            session._connection._loop_until(lambda: False)
        assert isinstance(info.value, TimeoutError) and info.value.timeout == SHORT
        assert session.connected
        session.force_roundtrip(timeout=LONG)
    finally:
        session.close(timeout=LONG)


def test_loop_until_holding_the_lock_raises(server):
    ''' Called while holding session.lock, _loop_until raises RuntimeError at once, like every blocking call. '''
    doc, _ = _range_doc()
    with push_session(doc, url=server.url("/empty"), timeout=SHORT) as session:
        with session.lock:
            with pytest.raises(RuntimeError, match=r"session\.lock"):
                session._connection._loop_until(lambda: False)


def test_loop_until_from_the_reader_thread_raises(server):
    ''' Called from the reader thread (an on_change callback run for a server change), _loop_until raises
    RuntimeError instead of waiting for itself. '''
    url = server.url("/empty")
    session = ClientSession(websocket_url=server.ws_url("/empty"), timeout=SHORT)
    try:
        doc, r = _range_doc()
        session.push(doc, timeout=LONG)
        seen: list[tuple[str, BaseException | None]] = []

        def on_start(attr: str, old: object, new: object) -> None:
            try:
                session._connection._loop_until(lambda: False)
            except BaseException as e:
                seen.append((threading.current_thread().name, e))
            else:
                seen.append((threading.current_thread().name, None))
        r.on_change("start", on_start)
        with pull_session(session_id=session.id, url=url, timeout=LONG) as other:
            other.document.get_model_by_name("r").start = 5
            other.flush()
            wait_until(lambda: seen, what="the on_change callback")
        (thread, error), = seen
        assert thread.startswith("bokehsync-reader-")
        assert isinstance(error, RuntimeError) and "reader thread" in str(error), repr(error)
    finally:
        session.close(timeout=LONG)


# Item 4: a pulled document with model types the client does not define ----------------------------

def test_bokeh_client_raises_deserialization_error_here(server):
    ''' The baseline: bokeh.client raises bokeh.core.serialization.DeserializationError("can't resolve type
    'tests.foreign_models.Gauge'"), from ClientConnection.pull_doc -> Message.push_to_document ->
    Deserializer._resolve_type (bokeh/core/serialization.py); UnknownModelType must be one. '''
    from bokeh.client import ClientSession as BokehClientSession
    assert FOREIGN_MODULE not in sys.modules
    session = BokehClientSession(websocket_url=server.ws_url("/foreign"))
    try:
        with pytest.raises(DeserializationError, match=f"can't resolve type '{FOREIGN_TYPE}'"):
            session.pull()
    finally:
        session.close()
        session._connection.io_loop.close(all_fds=True)  # bokeh.client runs its loop only inside calls
    assert FOREIGN_MODULE not in sys.modules


def _check_unknown_model_type(error: BaseException) -> None:
    unknown = getattr(bokehsync, "UnknownModelType", None)
    assert unknown is not None, f"bokehsync.UnknownModelType missing; raised {error!r}"
    assert isinstance(error, unknown), repr(error)
    assert isinstance(error, bokehsync.BokehSyncError) and isinstance(error, DeserializationError)
    assert error.type_name == FOREIGN_TYPE and error.module == FOREIGN_MODULE
    text = str(error)
    assert FOREIGN_TYPE in text and FOREIGN_MODULE in text
    assert "same model classes as the server" in text
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.type_name, copy.module, str(copy)) == (type(error), error.type_name, error.module, text)


def test_pull_session_names_the_module_to_import(server):
    ''' pull_session of an app with its own model class raises UnknownModelType naming the type and its
    module, saying the client needs the server's model classes; nothing is imported; nothing is left. '''
    assert FOREIGN_MODULE not in sys.modules
    before = set(bokehsync_threads())
    with pytest.raises(DeserializationError) as info:
        pull_session(url=server.url("/foreign"))
    _check_unknown_model_type(info.value)
    assert FOREIGN_MODULE not in sys.modules  # the server must not choose what code runs in the client
    wait_until(lambda: not (set(bokehsync_threads()) - before), what="the session's threads to end")


def test_session_pull_closes_the_session(server):
    ''' ClientSession.pull() of such a document raises UnknownModelType and leaves the session closed:
    not connected, no thread left, and closing it again is a no-op. '''
    before = set(bokehsync_threads())
    session = ClientSession(websocket_url=server.ws_url("/foreign"))
    try:
        with pytest.raises(DeserializationError) as info:
            session.pull()
        _check_unknown_model_type(info.value)
        assert not session.connected
        wait_until(lambda: not (set(bokehsync_threads()) - before), what="the session's threads to end")
        assert FOREIGN_MODULE not in sys.modules
    finally:
        session.close()
