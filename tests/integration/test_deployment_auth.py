''' Signed sessions, tokens, auth hooks, headers and cookies, against real
Bokeh servers configured as in production.
'''
from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
import websocket
from bokeh.util.token import generate_jwt_token, generate_session_id, get_session_id

from bokehsync import ClientSession, ConnectionFailed, ConnectionRejected, pull_session
from bokehsync._handshake import HandshakeOptions
from bokehsync._localserver import LocalServer
from tests.support import APPS, ROOT, SIGNING_KEY, push_patch_pull
from tests.support.fakeserver import FakeServer, Peer, hold_open

KEY = SIGNING_KEY
APPS = {**APPS, "/whoami": "tests.deploy_apps:whoami"}


@pytest.fixture(scope="module")
def signed(signed_server) -> LocalServer:
    ''' The server that only accepts session ids and tokens signed with KEY. '''
    return signed_server


@pytest.fixture(scope="module")
def guarded() -> Iterator[LocalServer]:
    ''' A server with an auth module that wants a known user in a cookie or header. '''
    with LocalServer(APPS, pythonpath=[ROOT],
                      server_kwargs={"auth_module": os.path.join(ROOT, "tests", "auth_module.py")}) as srv:
        yield srv


def _whoami(session) -> dict:
    return json.loads(session.document.get_model_by_name("whoami").text)


# Signed sessions ----------------------------------------------------------------

def test_signed_sessions_with_the_right_key(signed):
    ''' With the server's key, push, patch and pull work; the session id is signed. '''
    push_patch_pull(signed.url, secret_key=KEY, sign_sessions=True)
    with pull_session(url=signed.url("/empty"), secret_key=KEY, sign_sessions=True) as session:
        assert session.id.count(".") == 1


def test_signed_sessions_from_the_environment_read_when_the_session_is_made(signed, monkeypatch):
    ''' BOKEH_SECRET_KEY / BOKEH_SIGN_SESSIONS set after bokeh was imported still count. '''
    monkeypatch.setenv("BOKEH_SECRET_KEY", KEY)
    monkeypatch.setenv("BOKEH_SIGN_SESSIONS", "yes")
    push_patch_pull(signed.url)


def test_wrong_key_is_a_clear_rejection(signed):
    ''' A wrong key is refused by the server: ConnectionRejected naming the URL and the token. '''
    with pytest.raises(ConnectionRejected) as info:
        pull_session(url=signed.url("/empty"), secret_key="not-the-key", sign_sessions=True)
    message = str(info.value)
    assert signed.ws_url("/empty") in message and "token" in message and "secret_key" in message
    assert isinstance(info.value, OSError)


def test_missing_key_is_a_clear_rejection(signed):
    ''' Unsigned ids and tokens are refused with the same clear error, not a generic disconnect. '''
    with pytest.raises(ConnectionRejected, match="refused the session"):
        pull_session(url=signed.url("/empty"), sign_sessions=False)


def test_unsigned_session_id_is_refused_before_connecting(signed):
    ''' An explicit session id that is not signed with the key fails at once, naming the URL. '''
    with pytest.raises(ValueError, match="not signed") as info:
        pull_session(session_id="plain-id", url=signed.url("/empty"), secret_key=KEY, sign_sessions=True)
    assert signed.ws_url("/empty") in str(info.value)


def test_token_issued_elsewhere(signed):
    ''' token= from elsewhere (e.g. the server's page) opens that token's session. '''
    sid = generate_session_id(secret_key=KEY.encode(), signed=True)
    token = generate_jwt_token(sid, secret_key=KEY.encode(), signed=True)
    with pull_session(url=signed.url("/empty"), token=token) as session:
        assert session.id == sid == get_session_id(session.token)


def test_expired_token_is_refused_before_connecting(signed):
    ''' A token= that has expired is reported as such without contacting the server. '''
    sid = generate_session_id(secret_key=KEY.encode(), signed=True)
    token = generate_jwt_token(sid, secret_key=KEY.encode(), signed=True, expiration=-60)
    with pytest.raises(ConnectionFailed, match="expired") as info:
        pull_session(url=signed.url("/empty"), token=token)
    assert not isinstance(info.value, ConnectionRejected)


def test_expired_token_refused_by_the_server_mentions_expiry(signed, monkeypatch):
    ''' If the server refuses an expired token (its clock is ahead), the error names expiry as a cause. '''
    monkeypatch.setattr(HandshakeOptions, "check_token", lambda self, token: None)
    sid = generate_session_id(secret_key=KEY.encode(), signed=True)
    token = generate_jwt_token(sid, secret_key=KEY.encode(), signed=True, expiration=-60)
    with pytest.raises(ConnectionRejected, match="expired"):
        pull_session(url=signed.url("/empty"), token=token)


# Auth hooks, headers, cookies ---------------------------------------------------

def test_auth_cookie_lets_in_and_the_app_sees_it(guarded):
    ''' With the cookie the auth module wants, the session works and the app sees the cookie. '''
    with pull_session(url=guarded.url("/whoami"), cookies={"user": "alice"}) as session:
        assert _whoami(session)["cookie"] == "alice"
    push_patch_pull(guarded.url, cookies={"user": "alice"})


def test_auth_header_lets_in_and_the_app_sees_it(guarded):
    ''' With the header the auth module wants, the session works and the app sees the header. '''
    with pull_session(url=guarded.url("/whoami"), headers={"X-Bokehsync-User": "bob"},
                      arguments={"n": "3"}) as session:
        seen = _whoami(session)
    assert seen["header"] == "bob" and seen["arguments"] == {"n": ["3"]}


def test_without_credentials_the_auth_hook_refuses(guarded):
    ''' Without cookie or header (or with an unknown user): ConnectionRejected naming the auth hook. '''
    for options in ({}, {"cookies": {"user": "mallory"}}):
        with pytest.raises(ConnectionRejected, match="auth hook") as info:
            pull_session(url=guarded.url("/whoami"), **options)
        assert guarded.ws_url("/whoami") in str(info.value)


def test_extra_payload_reaches_the_app(guarded):
    ''' extra_payload travels in the token: the app sees its headers and cookies instead of the request's. '''
    payload = {"headers": {"X-Bokehsync-User": "carol"}, "cookies": {"user": "carol"}, "arguments": {}}
    with pull_session(url=guarded.url("/whoami"), cookies={"user": "alice"}, extra_payload=payload) as session:
        seen = _whoami(session)
    assert seen["header"] == "carol" and seen["cookie"] == "carol"


def test_two_connections_keep_their_own_cookies(guarded):
    ''' Two sessions open at once, with different cookies: each app sees only its own. '''
    url = guarded.url("/whoami")
    with pull_session(url=url, cookies={"user": "alice"}) as a, \
            pull_session(url=url, cookies={"user": "bob", "theme": "dark"}) as b:
        seen_a, seen_b = _whoami(a), _whoami(b)
    assert seen_a["cookies"] == ["user"] and seen_a["cookie"] == "alice"
    assert seen_b["cookies"] == ["theme", "user"] and seen_b["cookie"] == "bob"


def test_cookies_set_by_one_server_never_reach_another():
    ''' A Set-Cookie at one handshake is neither sent to another server nor kept for the process's
    other websocket-client connections (no shared jar). '''
    def sets_cookie(peer: Peer) -> None:
        peer.read_request()
        peer.send_raw((
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {peer.accept_key()}\r\nSec-WebSocket-Protocol: bokeh\r\n"
            "Set-Cookie: leaked=1; Domain=127.0.0.1; Path=/\r\n\r\n").encode())
        peer.send_ack()
        hold_open(peer)

    seen: list[str | None] = []

    def records_cookie(peer: Peer) -> None:
        peer.read_request()
        seen.append(peer.header("Cookie"))
        peer.send_raw(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    with FakeServer(sets_cookie) as first, FakeServer(records_cookie) as second:
        session = ClientSession(websocket_url=first.ws_url, cookies={"user": "alice"})
        session.connect()
        session.check_connection_errors()
        session.close()
        other = ClientSession(websocket_url=second.ws_url, cookies={"user": "bob"})
        other.connect()
        with pytest.raises(ConnectionFailed, match="404"):
            other.check_connection_errors()
        other.close()
        # A plain websocket-client connection of the same process, to the same host.
        with pytest.raises(websocket.WebSocketBadStatusException):
            websocket.create_connection(second.ws_url, timeout=10)
    assert seen == ["user=bob", None]
