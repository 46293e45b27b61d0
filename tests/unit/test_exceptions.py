''' Every exception class: the built-ins it also is, its message, and pickling with its context. '''
from __future__ import annotations

import json
import pickle

import pytest

import bokehsync
from bokehsync import (
    BokehSyncError,
    ConnectionFailed,
    ConnectionLost,
    ConnectionRejected,
    MessageTooBig,
    ProtocolViolation,
    ReplyTimeout,
    ServerError,
    UnknownModelType,
    WrongProcess,
)

URL = "ws://127.0.0.1:1/app/ws"

#: One instance of every class, with the context attributes that class is documented to carry.
EXAMPLES = [
    BokehSyncError("something failed", URL),
    ConnectionFailed("HTTP 404: no Bokeh application at this path", URL, status=404),
    ConnectionRejected("the server closed the connection right after the upgrade", URL, close_code=1008,
                       close_reason="token expired"),
    ConnectionLost("the server closed the connection (code 1001)", URL, close_code=1001, close_reason="bye"),
    ServerError("the server answered ERROR: boom", URL, text="boom", traceback="Traceback ...", reqid="r1"),
    ProtocolViolation("bokeh protocol violation: header without msgtype/msgid", URL),
    ReplyTimeout("no reply to SERVER-INFO-REQ within 2.5 s", URL, msgid="m1", timeout=2.5),
    WrongProcess("this connection was opened in process 1", URL),
    UnknownModelType("the document uses model type 'panel.models.layout.Column'", URL,
                     type_name="panel.models.layout.Column", module="panel.models.layout",
                     type_names=("panel.models.layout.Column",)),
    ConnectionLost("3 document change(s) may not be on the server", URL, unsent=2, unacknowledged=1),
    MessageTooBig("a value of 33554432 bytes is over the server's limit", URL, model="ColumnDataSource(id='p1')",
                  attr="data", column="image", size=33554432, limit=20971520),
    ConnectionFailed("connection refused", None),
]

#: The built-in exception each class also is, as bokeh.client users catch it.
BUILTINS = {
    ConnectionFailed: OSError, ConnectionRejected: OSError, ConnectionLost: RuntimeError,
    ServerError: RuntimeError, ProtocolViolation: RuntimeError, ReplyTimeout: TimeoutError,
    WrongProcess: RuntimeError, UnknownModelType: ValueError, MessageTooBig: RuntimeError,
}

CONTEXT = ("status", "close_code", "close_reason", "text", "traceback", "reqid", "msgid", "timeout", "type_name",
           "module", "type_names", "unsent", "unacknowledged", "model", "attr", "column", "size", "limit")


def test_every_public_class_is_covered():
    ''' EXAMPLES holds one instance of every exception class bokehsync exports. '''
    exported = {getattr(bokehsync, name) for name in bokehsync.__all__}
    classes = {c for c in exported if isinstance(c, type) and issubclass(c, BaseException)}
    assert classes == {type(e) for e in EXAMPLES}


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda e: type(e).__name__)
def test_pickles_with_url_message_and_context(error):
    ''' A pickled exception comes back as the same class, with the same message, url and context
    attributes, still the built-in it was (so it crosses a process pool intact). '''
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert str(back) == str(error) and back.url == error.url and back.message == error.message
    for name in CONTEXT:
        assert getattr(back, name, "absent") == getattr(error, name, "absent"), name
    builtin = BUILTINS.get(type(error))
    if builtin is not None:
        assert isinstance(back, builtin)
    json.dumps(str(back))


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda e: type(e).__name__)
def test_message_names_the_url(error):
    ''' The message names the URL concerned (when there is one), once. '''
    if error.url:
        assert str(error).count(error.url) == 1
    else:
        assert str(error) == error.message


def test_tree():
    ''' Each class also inherits the built-in bokeh.client raises in its situation. '''
    for cls, builtin in BUILTINS.items():
        assert issubclass(cls, BokehSyncError) and issubclass(cls, builtin), cls
    assert issubclass(ConnectionRejected, ConnectionFailed)
