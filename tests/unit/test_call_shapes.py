''' ClientSession calls its ClientConnection exactly as bokeh.client's ClientSession does (issue 14, item 1).

Test suites written for bokeh.client mock the connection and check the calls,
e.g. ``mock.patch.object(ClientConnection, "close")`` then
``m.assert_called_once_with("closed")``. The shapes below are those of
bokeh/client/session.py (bokeh 3.x):

* ``connect()`` -> ``self._connection.connect()``
* ``close(why="closed")`` -> ``self._connection.close(why)``  (positional)
* ``__exit__`` -> ``self.close()`` -> ``self._connection.close("closed")``
* ``force_roundtrip()`` -> ``self._connection.force_roundtrip()``
* ``request_server_info()`` -> ``return self._connection.request_server_info()``
* ``pull()`` -> ``self.connect()``, then ``self._connection.pull_doc(doc)``
* ``push(document)`` -> ``self.connect()``, then ``self._connection.push_doc(doc)``
* ``_loop_until_closed()`` -> ``self._connection.loop_until_closed()``
* ``pull_session`` / ``push_session`` -> ``ClientSession(...)``, then ``pull()`` / ``push(document)``

bokehsync's extras (``timeout=``, ``flush=``, ``progress=``) are passed on
only when the caller gave them. Every connection method is mocked: no socket
is opened (nothing listens on the URL).
'''
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest import mock

import pytest
from bokeh.document import Document

from bokehsync import ClientConnection, ClientSession, pull_session, push_session

WS_URL = "ws://127.0.0.1:1/app/ws"
HTTP_URL = "http://127.0.0.1:1/app"

#: The ClientConnection methods bokeh.client's ClientSession calls.
CALLED = ("connect", "close", "force_roundtrip", "request_server_info", "pull_doc", "push_doc",
          "loop_until_closed")


@pytest.fixture
def conn() -> Iterator[mock.MagicMock]:
    ''' Those methods mocked on the class (as users do), as children of one mock that records
    the calls in order; ``connected`` reads True, so ``check_connection_errors`` passes. '''
    calls = mock.MagicMock()
    with contextlib.ExitStack() as stack:
        for name in CALLED:
            calls.attach_mock(stack.enter_context(mock.patch.object(ClientConnection, name)), name)
        stack.enter_context(mock.patch.object(ClientConnection, "connected", new_callable=mock.PropertyMock,
                                              return_value=True))
        yield calls


def _session() -> ClientSession:
    return ClientSession(websocket_url=WS_URL)


def _has_timeout(call: mock._Call, given: float) -> bool:
    ''' A call carries ``timeout=`` of at most what the user gave (what remains of it may be passed on). '''
    value = call.kwargs.get("timeout")
    return isinstance(value, (int, float)) and 0 < value <= given


# Without bokehsync extras: exactly bokeh.client's calls ------------------------------------------

def test_close_default(conn):
    ''' session.close() calls connection.close("closed") and nothing else. '''
    _session().close()
    assert conn.mock_calls == [mock.call.close("closed")]


@pytest.mark.parametrize("how", ["positional", "keyword"])
def test_close_with_reason(conn, how):
    ''' close("why") and close(why="why") both call connection.close("why"), the reason positional. '''
    session = _session()
    if how == "positional":
        session.close("why")
    else:
        session.close(why="why")
    assert conn.mock_calls == [mock.call.close("why")]


def test_close_as_users_assert_it():
    ''' The issue's own example: mock.patch.object(ClientConnection, "close"), assert_called_once_with("closed"). '''
    with mock.patch.object(ClientConnection, "close") as m:
        ClientSession(websocket_url=WS_URL).close()
    m.assert_called_once_with("closed")


def test_with_block_closes_with_closed(conn):
    ''' Leaving a ``with ClientSession(...)`` block calls connection.close("closed"). '''
    with _session():
        pass
    assert conn.mock_calls == [mock.call.close("closed")]


def test_with_block_closes_on_an_exception(conn):
    ''' Leaving it by an exception calls connection.close("closed") too, and the exception propagates. '''
    with pytest.raises(ZeroDivisionError):
        with _session():
            1 / 0  # noqa: B018
    assert conn.mock_calls == [mock.call.close("closed")]


def test_connect(conn):
    ''' session.connect() calls connection.connect() with no arguments. '''
    _session().connect()
    assert conn.mock_calls == [mock.call.connect()]


def test_force_roundtrip(conn):
    ''' session.force_roundtrip() calls connection.force_roundtrip() with no arguments. '''
    _session().force_roundtrip()
    assert conn.mock_calls == [mock.call.force_roundtrip()]


def test_request_server_info(conn):
    ''' session.request_server_info() calls connection.request_server_info() and returns its result. '''
    info = _session().request_server_info()
    assert conn.mock_calls == [mock.call.request_server_info()]
    assert info is conn.request_server_info.return_value


def test_loop_until_closed(conn):
    ''' session._loop_until_closed() calls connection.loop_until_closed(). '''
    _session()._loop_until_closed()
    assert conn.mock_calls == [mock.call.loop_until_closed()]


def test_pull(conn):
    ''' session.pull() calls connection.connect(), then connection.pull_doc(doc) with a new Document. '''
    _session().pull()
    doc = conn.pull_doc.call_args.args[0] if conn.pull_doc.call_args else None
    assert conn.mock_calls == [mock.call.connect(), mock.call.pull_doc(doc)]
    assert isinstance(doc, Document)


def test_pull_again_into_the_same_document(conn):
    ''' With session.document set, pull() passes that document to pull_doc. '''
    session = _session()
    existing = Document()
    session._document = existing  # the bokeh.client attribute, as code written for it sets it
    session.pull()
    assert conn.mock_calls == [mock.call.connect(), mock.call.pull_doc(existing)]


def test_push(conn):
    ''' session.push(doc) calls connection.connect(), then connection.push_doc(doc). '''
    doc = Document()
    _session().push(doc)
    assert conn.mock_calls == [mock.call.connect(), mock.call.push_doc(doc)]


def test_push_without_a_document(conn):
    ''' session.push() with no document pushes a new Document. '''
    _session().push()
    doc = conn.push_doc.call_args.args[0] if conn.push_doc.call_args else None
    assert conn.mock_calls == [mock.call.connect(), mock.call.push_doc(doc)]
    assert isinstance(doc, Document)


def test_pull_session(conn):
    ''' pull_session(url=...) calls connect(), then pull_doc(doc), and nothing else. '''
    session = pull_session(url=HTTP_URL)
    doc = conn.pull_doc.call_args.args[0] if conn.pull_doc.call_args else None
    assert conn.mock_calls == [mock.call.connect(), mock.call.pull_doc(doc)]
    assert isinstance(doc, Document) and session.id


def test_push_session(conn):
    ''' push_session(doc, url=...) calls connect(), then push_doc(doc), and nothing else. '''
    doc = Document()
    push_session(doc, url=HTTP_URL)
    assert conn.mock_calls == [mock.call.connect(), mock.call.push_doc(doc)]


# With bokehsync extras: passed on, and only those given ------------------------------------------

def test_close_passes_only_the_extras_given(conn):
    ''' close(flush=False) passes flush=False; close("why", timeout=3) passes a timeout, no flush=. '''
    _session().close(flush=False)
    _session().close("why", timeout=3)
    first, second = conn.close.call_args_list
    assert first == mock.call("closed", flush=False)
    assert second.args == ("why",) and set(second.kwargs) == {"timeout"} and _has_timeout(second, 3)


@pytest.mark.parametrize("method", ["connect", "force_roundtrip", "request_server_info"])
def test_timeout_is_passed_when_given(conn, method):
    ''' connect / force_roundtrip / request_server_info(timeout=2) pass a timeout and nothing else. '''
    getattr(_session(), method)(timeout=2)
    call = getattr(conn, method).call_args
    assert len(conn.mock_calls) == 1 and call.args == () and set(call.kwargs) == {"timeout"}
    assert _has_timeout(call, 2)


def test_pull_passes_only_the_extras_given(conn):
    ''' pull(progress=cb) passes progress to pull_doc only; pull(timeout=2) bounds connect and pull_doc. '''
    def progress(done: int, total: int | None) -> None:
        pass
    session = _session()
    session._document = doc = Document()
    session.pull(progress=progress)
    assert conn.mock_calls == [mock.call.connect(), mock.call.pull_doc(doc, progress=progress)]
    conn.reset_mock()
    session.pull(timeout=2)
    connect, pull = conn.mock_calls
    assert connect[0] == "connect" and connect.args == () and set(connect.kwargs) == {"timeout"}
    assert pull[0] == "pull_doc" and pull.args == (doc,) and set(pull.kwargs) == {"timeout"}
    assert _has_timeout(connect, 2) and _has_timeout(pull, 2)


def test_push_passes_only_the_extras_given(conn):
    ''' push(doc, progress=cb) passes progress to push_doc only; push(doc, timeout=2) bounds both calls. '''
    def progress(done: int, total: int | None) -> None:
        pass
    doc = Document()
    _session().push(doc, progress=progress)
    assert conn.mock_calls == [mock.call.connect(), mock.call.push_doc(doc, progress=progress)]
    conn.reset_mock()
    other = Document()
    _session().push(other, timeout=2)
    connect, push = conn.mock_calls
    assert connect[0] == "connect" and connect.args == () and set(connect.kwargs) == {"timeout"}
    assert push[0] == "push_doc" and push.args == (other,) and set(push.kwargs) == {"timeout"}
    assert _has_timeout(connect, 2) and _has_timeout(push, 2)
