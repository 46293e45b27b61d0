''' The handshake options, without sockets: tokens, session ids, headers,
cookies, TLS and proxy decisions.
'''
from __future__ import annotations

import ssl

import pytest
from bokeh.util.token import check_session_id_signature, get_session_id, get_token_payload

from bokehsync import ClientSession
from bokehsync import _handshake as hs
from bokehsync._handshake import HandshakeOptions, proxy_in, to_websocket_url

URL = "ws://127.0.0.1:5006/app/ws"
KEY = "k" * 40
_PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch) -> None:
    for name in (*_PROXY_VARS, "BOKEH_SECRET_KEY", "BOKEH_SIGN_SESSIONS"):
        monkeypatch.delenv(name, raising=False)


def test_a_fresh_token_for_every_connect(monkeypatch):
    ''' Each connect asks bokeh for a new token, carrying extra_payload. '''
    made: list[str] = []
    original = hs.generate_jwt_token
    monkeypatch.setattr(hs, "generate_jwt_token", lambda *a, **k: made.append(original(*a, **k)) or made[-1])
    session = ClientSession(websocket_url=URL, extra_payload={"user": "alice"})
    first = session._handshake.connect_kwargs(session.token)["subprotocols"]
    second = session._handshake.connect_kwargs(session.token)["subprotocols"]
    assert len(made) == 2 and first[0] == second[0] == "bokeh"
    assert get_token_payload(second[1])["user"] == "alice" and get_session_id(second[1]) == session.id


def test_environment_is_read_when_the_session_is_made(monkeypatch):
    ''' BOKEH_SECRET_KEY / BOKEH_SIGN_SESSIONS set late still sign the new session id. '''
    monkeypatch.setenv("BOKEH_SECRET_KEY", KEY)
    monkeypatch.setenv("BOKEH_SIGN_SESSIONS", "true")
    session = ClientSession(websocket_url=URL)
    assert check_session_id_signature(session.id, secret_key=KEY.encode(), signed=True)
    monkeypatch.setenv("BOKEH_SIGN_SESSIONS", "false")
    assert "." not in ClientSession(websocket_url=URL).id


def test_explicit_token_is_used_as_is():
    ''' token= is sent unchanged, and gives the session id. '''
    options = HandshakeOptions(URL, token="eyJzZXNzaW9uX2lkIjogImFiYyIsICJzZXNzaW9uX2V4cGlyeSI6IDk5OTk5OTk5OTl9")
    assert options.session_id(None) == "abc"
    assert options.connect_kwargs(options.token("abc"))["subprotocols"][1] == options.token("abc")
    with pytest.raises(ValueError, match="not the session of token"):
        options.session_id("other")


@pytest.mark.parametrize("kwargs, error, match", [
    ({"sign_sessions": True}, ValueError, "needs secret_key"),
    ({"token": "x", "extra_payload": {}}, ValueError, "not both"),
    ({"extra_payload": {"session_id": "x"}}, ValueError, "session_id"),
    ({"token_expiration": 0}, ValueError, "positive"),
    ({"headers": {"X-A": "1\r\nX-Injected: 2"}}, ValueError, "not allowed"),
    ({"cookies": {"a": "b; c=d"}}, ValueError, "not allowed"),
    ({"headers": {"X-A": 1}}, TypeError, "str to str"),
    ({"verify": False, "ssl_context": ssl.create_default_context()}, ValueError, "not both"),
    ({"verify": 3}, TypeError, "CA bundle"),
    ({"proxy": "socks5://127.0.0.1:1080"}, ValueError, "CONNECT"),
    ({"proxy": True}, TypeError, "proxy must be"),
])
def test_bad_options_are_refused_naming_the_url(kwargs, error, match):
    ''' Contradictory or malformed options fail when the session is made, naming the URL. '''
    with pytest.raises(error, match=match) as info:
        ClientSession(websocket_url=URL, **kwargs)
    assert URL in str(info.value)


def test_headers_cookies_and_origin():
    ''' headers and cookies go into the upgrade request; no Origin unless asked. '''
    options = HandshakeOptions(URL, headers={"X-User": "alice"}, cookies={"a": "1", "b": "2"})
    kwargs = options.connect_kwargs(options.token("sid"))
    assert kwargs["header"] == ["X-User: alice"] and kwargs["cookie"] == "a=1; b=2"
    assert kwargs["suppress_origin"] is True and "origin" not in kwargs
    kwargs = HandshakeOptions(URL, origin="https://app.example").connect_kwargs("t")
    assert kwargs["origin"] == "https://app.example" and "suppress_origin" not in kwargs


def test_secrets_are_not_in_the_repr():
    ''' The key, token, header and cookie values never appear in a repr. '''
    text = repr(HandshakeOptions(URL, secret_key=KEY, sign_sessions=True, headers={"Authorization": "Bearer s3"},
                                 cookies={"sid": "c00kie"}))
    assert KEY not in text and "s3" not in text and "c00kie" not in text and "Authorization" in text


def test_http_urls_map_to_websocket_urls():
    ''' http(s):// become ws(s)://; other schemes are left for the connect to report. '''
    assert to_websocket_url("https://h/app/ws") == "wss://h/app/ws"
    assert to_websocket_url("HTTP://h/app/ws") == "ws://h/app/ws"
    assert to_websocket_url("wss://h/app/ws") == "wss://h/app/ws"
    assert to_websocket_url("ftp://h/x") == "ftp://h/x"


def test_tls_options():
    ''' verify=True leaves websocket-client's verifying default; False turns checks off. '''
    assert HandshakeOptions("wss://h/ws").connect_kwargs("t")["sslopt"] == {}
    insecure = HandshakeOptions("wss://h/ws", verify=False).connect_kwargs("t")["sslopt"]
    assert insecure == {"cert_reqs": ssl.CERT_NONE, "check_hostname": False}
    context = ssl.create_default_context()
    assert HandshakeOptions("wss://h/ws", ssl_context=context).connect_kwargs("t")["sslopt"]["context"] is context


def test_proxy_decisions(monkeypatch):
    ''' Explicit proxy (with credentials), environment per scheme, NO_PROXY, and proxy=False. '''
    kwargs = HandshakeOptions(URL, proxy="http://u:p%40ss@proxy.local:3128").connect_kwargs("t")
    assert proxy_in(kwargs) == "proxy.local:3128" and kwargs["http_proxy_auth"] == ("u", "p@ss")
    assert proxy_in(HandshakeOptions(URL).connect_kwargs("t")) is None
    monkeypatch.setenv("HTTPS_PROXY", "http://secure.local:8443")
    assert proxy_in(HandshakeOptions(URL).connect_kwargs("t")) is None
    assert proxy_in(HandshakeOptions("wss://h.example/ws").connect_kwargs("t")) == "secure.local:8443"
    monkeypatch.setenv("NO_PROXY", ".example")
    assert proxy_in(HandshakeOptions("wss://h.example/ws").connect_kwargs("t")) is None
    monkeypatch.setenv("HTTP_PROXY", "http://plain.local:8080")
    assert proxy_in(HandshakeOptions(URL, proxy=False).connect_kwargs("t")) is None
    assert proxy_in(HandshakeOptions(URL).connect_kwargs("t")) == "plain.local:8080"
