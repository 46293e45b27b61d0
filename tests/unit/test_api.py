''' The public API has bokeh.client's names, signatures and defaults; extras are keyword-only. '''
from __future__ import annotations

import inspect

import bokeh.client as bc
import bokeh.client.connection as bcc
import pytest

import bokehsync
from bokehsync import ClientConnection, ClientSession


def _compatible(ours, theirs) -> None:
    mine = inspect.signature(ours).parameters
    them = inspect.signature(theirs).parameters
    for name, param in them.items():
        assert name in mine, f"{ours.__qualname__} lacks {name}"
        assert mine[name].kind == param.kind, f"{ours.__qualname__}({name}) kind differs"
        assert mine[name].default == param.default, f"{ours.__qualname__}({name}) default differs"
    assert list(mine)[:len(them)] == list(them), f"{ours.__qualname__} parameter order differs"
    for name in list(mine)[len(them):]:
        assert mine[name].kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD), \
            f"extra {name} must be keyword-only"


@pytest.mark.parametrize("name", ["pull_session", "push_session", "show_session"])
def test_functions_match(name):
    ''' pull_session / push_session / show_session take what bokeh.client's take. '''
    _compatible(getattr(bokehsync, name), getattr(bc, name))


@pytest.mark.parametrize("cls, theirs", [(ClientSession, bc.ClientSession), (ClientConnection, bcc.ClientConnection)])
def test_classes_match(cls, theirs):
    ''' Every public method and property of bokeh.client's classes exists with a compatible signature. '''
    _compatible(cls.__init__, theirs.__init__)
    for name, member in inspect.getmembers(theirs):
        if name.startswith("_") or name == "send_message":
            continue
        assert hasattr(cls, name), f"{cls.__name__}.{name} missing"
        if inspect.isfunction(member):
            _compatible(getattr(cls, name), member)


@pytest.mark.parametrize("cls, theirs", [(ClientSession, bc.ClientSession), (ClientConnection, bcc.ClientConnection)])
def test_bokehsync_only_methods_take_options_keyword_only(cls, theirs):
    ''' Methods bokeh.client lacks (flush, batch, on_disconnect...) take every optional parameter
    keyword-only, like the extras on bokeh.client's own methods: ``flush(5)`` must not mean a timeout. '''
    checked = []
    for name, member in inspect.getmembers(cls, inspect.isfunction):
        if name.startswith("_") or hasattr(theirs, name):
            continue
        checked.append(name)
        for param in list(inspect.signature(member).parameters.values())[1:]:
            if param.kind is inspect.Parameter.VAR_POSITIONAL or param.default is not inspect.Parameter.empty:
                assert param.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD), \
                    f"{cls.__name__}.{name}({param.name}) is a bokehsync extra: it must be keyword-only"
    assert "flush" in checked  # the check ran over the extras


@pytest.mark.parametrize("cls, theirs, name", [
    (ClientSession, bc.ClientSession, "_handle_patch"),
    (ClientSession, bc.ClientSession, "_loop_until_closed"),
    (ClientConnection, bcc.ClientConnection, "_loop_until"),
])
def test_private_hooks_have_bokeh_client_signatures(cls, theirs, name):
    ''' The private hooks code written for bokeh.client calls (bokeh's own test helpers among it:
    ``session._connection._loop_until(predicate)``) exist with bokeh.client's signatures. '''
    assert callable(getattr(cls, name, None)), f"{cls.__name__}.{name} missing"
    _compatible(getattr(cls, name), getattr(theirs, name))


def test_private_hooks_kept():
    ''' The private hooks legacy code reaches into exist. '''
    for name in ("_connection", "_document", "_id"):
        assert name in ClientSession.__annotations__
    for name in ("_loop_until_closed", "_handle_patch", "_notify_disconnected", "_attach_document",
                 "_document_patched", "_session_callback_added", "_session_callback_removed"):
        assert callable(getattr(ClientSession, name)), name


def test_unknown_model_type_is_what_bokeh_client_raises():
    ''' UnknownModelType is a BokehSyncError and bokeh's DeserializationError (what bokeh.client raises
    when a pulled document has a model type the client does not define), exported by bokehsync. '''
    from bokeh.core.serialization import DeserializationError
    cls = getattr(bokehsync, "UnknownModelType", None)
    assert cls is not None, "bokehsync.UnknownModelType missing"
    assert issubclass(cls, bokehsync.BokehSyncError) and issubclass(cls, DeserializationError)
    assert "UnknownModelType" in bokehsync.__all__


def test_error_reason_is_bokehs_enum():
    ''' ErrorReason compares equal to bokeh.client.states.ErrorReason. '''
    from bokeh.client.states import ErrorReason
    assert bokehsync.ErrorReason is ErrorReason


def test_bad_timeout_is_refused():
    ''' A timeout must be a positive finite number. '''
    for bad in (0, -1, float("inf"), "3", True):
        with pytest.raises(ValueError):
            ClientSession(websocket_url="ws://127.0.0.1:1/x/ws", timeout=bad)
