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


def test_private_hooks_kept():
    ''' The private hooks legacy code reaches into exist. '''
    for name in ("_connection", "_document", "_id"):
        assert name in ClientSession.__annotations__
    for name in ("_loop_until_closed", "_handle_patch", "_notify_disconnected", "_attach_document",
                 "_document_patched", "_session_callback_added", "_session_callback_removed"):
        assert callable(getattr(ClientSession, name)), name


def test_error_reason_is_bokehs_enum():
    ''' ErrorReason compares equal to bokeh.client.states.ErrorReason. '''
    from bokeh.client.states import ErrorReason
    assert bokehsync.ErrorReason is ErrorReason


def test_bad_timeout_is_refused():
    ''' A timeout must be a positive finite number. '''
    for bad in (0, -1, float("inf"), "3", True):
        with pytest.raises(ValueError):
            ClientSession(websocket_url="ws://127.0.0.1:1/x/ws", timeout=bad)
