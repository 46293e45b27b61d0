''' More of the handshake options, without sockets: session ids and tokens signed with the given
key, token expiry, TLS and proxy details, and the cookie jar kept private. (The first part is
test_deployment_handshake.py.) '''
from __future__ import annotations

import logging
import ssl
import threading

import pytest
from bokeh.util.token import (
    check_session_id_signature,
    check_token_signature,
    generate_jwt_token,
    generate_session_id,
    get_session_id,
    get_token_payload,
)

from bokehsync import ConnectionFailed
from bokehsync import _handshake as hs
from bokehsync._handshake import HandshakeOptions, private_cookies, proxy_in, to_websocket_url

URL = "ws://127.0.0.1:5006/app/ws"
KEY = "s" * 44
_PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch) -> None:
    for name in (*_PROXY_VARS, "BOKEH_SECRET_KEY", "BOKEH_SIGN_SESSIONS"):
        monkeypatch.delenv(name, raising=False)


# Session ids and tokens ----------------------------------------------------------------

@pytest.mark.parametrize("key", [KEY, KEY.encode()])
def test_ids_and_tokens_are_signed_with_the_given_key(key):
    ''' With secret_key (str or bytes) and sign_sessions, new ids and tokens carry that key's
    signature, and an id signed with it is accepted. '''
    options = HandshakeOptions(URL, secret_key=key, sign_sessions=True)
    sid = options.session_id(None)
    assert check_session_id_signature(sid, secret_key=KEY.encode(), signed=True)
    token = options.token(sid)
    assert check_token_signature(token, secret_key=KEY.encode(), signed=True) and get_session_id(token) == sid
    signed_elsewhere = generate_session_id(secret_key=KEY.encode(), signed=True)
    assert options.session_id(signed_elsewhere) == signed_elsewhere


def test_an_unsigned_id_is_refused_when_sessions_are_signed():
    ''' An explicit id not signed with the key is refused, naming the id and the URL; unsigned
    sessions take any id as it is. '''
    options = HandshakeOptions(URL, secret_key=KEY, sign_sessions=True)
    other = generate_session_id(secret_key=b"x" * 44, signed=True)
    for bad in ("plain", other):
        with pytest.raises(ValueError, match="not signed with this secret_key") as info:
            options.session_id(bad)
        assert repr(bad) in str(info.value) and URL in str(info.value)
    assert HandshakeOptions(URL).session_id("plain") == "plain"
    assert "." not in HandshakeOptions(URL).session_id(None)


def test_tokens_carry_the_payload_and_the_expiration(monkeypatch):
    ''' A fresh token carries extra_payload and expires token_expiration seconds from now. '''
    options = HandshakeOptions(URL, extra_payload={"user": "ann"}, token_expiration=120)
    payload = get_token_payload(options.token("sid"))
    assert payload["user"] == "ann"
    made = {}
    monkeypatch.setattr(hs, "generate_jwt_token", lambda sid, **kw: made.update(kw, sid=sid) or "t")
    options.token("sid")
    assert made == {"sid": "sid", "secret_key": None, "signed": False, "extra_payload": {"user": "ann"},
                    "expiration": 120}


@pytest.mark.parametrize("bad", [0, -5, 1.5, "60"])
def test_token_expiration_must_be_a_positive_int(bad):
    ''' token_expiration must be a positive int, named in the error with the URL; 1 second is fine. '''
    with pytest.raises(ValueError, match="token_expiration") as info:
        HandshakeOptions(URL, token_expiration=bad)
    assert URL in str(info.value)
    assert HandshakeOptions(URL, token_expiration=1).token_expiration == 1


def test_a_token_that_is_not_a_bokeh_token_is_refused():
    ''' token= that bokeh cannot read fails when the session id is asked for, naming the URL. '''
    with pytest.raises(ValueError, match="not a Bokeh session token") as info:
        HandshakeOptions(URL, token="not-a-token").session_id(None)
    assert URL in str(info.value)
    token = generate_jwt_token("abc")
    assert HandshakeOptions(URL, token=token).session_id("abc") == "abc"


def test_an_expired_token_is_refused_before_connecting():
    ''' A token past its expiry fails connect_kwargs with ConnectionFailed saying how long ago; a
    valid one, or one without an expiry or that cannot be read, passes. '''
    expired = generate_jwt_token("abc", expiration=-90)
    options = HandshakeOptions(URL)
    with pytest.raises(ConnectionFailed, match=r"expired (8\d|9\d) s ago") as info:
        options.connect_kwargs(expired)
    assert info.value.url == URL
    options.check_token(generate_jwt_token("abc", expiration=60))
    options.check_token("opaque")
    assert options.connect_kwargs(generate_jwt_token("abc"))["subprotocols"][0] == "bokeh"


def test_token_expiry_is_judged_in_utc_whatever_the_local_time_zone(monkeypatch):
    ''' A fresh token passes on a machine whose local time is hours ahead of UTC. '''
    import time
    monkeypatch.setenv("TZ", "JST-9")
    time.tzset()
    try:
        HandshakeOptions(URL).check_token(generate_jwt_token("abc", expiration=60))
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("value, signed", [("yes", True), ("1", True), ("false", False), ("no", False)])
def test_sign_sessions_from_the_environment(monkeypatch, value, signed):
    ''' BOKEH_SIGN_SESSIONS is read as bokeh reads booleans, when the options are made. '''
    monkeypatch.setenv("BOKEH_SECRET_KEY", KEY)
    monkeypatch.setenv("BOKEH_SIGN_SESSIONS", value)
    assert HandshakeOptions(URL).sign_sessions is signed


def test_signing_without_a_key_is_refused():
    ''' sign_sessions without any secret key is refused, naming the URL. '''
    with pytest.raises(ValueError, match="needs secret_key") as info:
        HandshakeOptions(URL, sign_sessions=True)
    assert URL in str(info.value)


# Headers, cookies, repr ------------------------------------------------------------------

def test_header_values_may_hold_separators_cookie_values_may_not():
    ''' "=" and ";" are fine in a header value, not in a cookie name or value; CR/LF nowhere. '''
    kwargs = HandshakeOptions(URL, headers={"X-A": "a=b; c"}).connect_kwargs("t")
    assert kwargs["header"] == ["X-A: a=b; c"]
    for cookies in ({"a=b": "1"}, {"a": "1;2"}, {"a\n": "1"}):
        with pytest.raises(ValueError, match="not allowed"):
            HandshakeOptions(URL, cookies=cookies)
    with pytest.raises(TypeError, match=r"^cookies must map str to str.*int -> str"):
        HandshakeOptions(URL, cookies={1: "x"})
    with pytest.raises(TypeError, match=r"^headers must map str to str.*str -> int"):
        HandshakeOptions(URL, headers={"X-A": 1})
    with pytest.raises(ValueError, match=r"^headers: name or value of 'X-A' has characters not allowed"):
        HandshakeOptions(URL, headers={"X-A": "1\r\n"})
    assert HandshakeOptions(URL, cookies={"X": "Xx-1"}).connect_kwargs("t")["cookie"] == "X=Xx-1"
    assert "header" not in HandshakeOptions(URL).connect_kwargs("t")
    assert "cookie" not in HandshakeOptions(URL).connect_kwargs("t")


def test_repr_names_what_is_set_without_values():
    ''' The repr gives the URL, sign_sessions, and the sorted header and cookie names. '''
    text = repr(HandshakeOptions(URL, headers={"b": "1", "a": "2"}, cookies={"z": "3"}))
    assert text == f"HandshakeOptions(url={URL!r}, sign_sessions=False, headers=['a', 'b'], cookies=['z'])"


# TLS ----------------------------------------------------------------------------------------

def test_verify_with_a_ca_bundle(tmp_path):
    ''' verify="file": a context that trusts that bundle; a missing or bad file is refused naming it. '''
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    sslopt = HandshakeOptions("wss://h/ws", verify=str(path)).connect_kwargs("t")["sslopt"]
    assert isinstance(sslopt["context"], ssl.SSLContext) and sslopt["context"].verify_mode == ssl.CERT_REQUIRED
    assert len(sslopt["context"].get_ca_certs()) == 1
    (tmp_path / "bad.pem").write_text("not a certificate")
    for bad in (tmp_path / "missing.pem", tmp_path / "bad.pem"):
        with pytest.raises(ValueError, match="cannot load a CA bundle") as info:
            HandshakeOptions("wss://h/ws", verify=str(bad))
        assert str(bad) in str(info.value) and "wss://h/ws" in str(info.value)


def test_ssl_context_must_be_a_context():
    ''' ssl_context= must be an ssl.SSLContext (named with the URL). '''
    with pytest.raises(TypeError, match=r"ssl\.SSLContext") as info:
        HandshakeOptions("wss://h/ws", ssl_context=object())
    assert "wss://h/ws" in str(info.value)


def test_insecure_tls_warns_at_each_connect_only_for_wss(caplog):
    ''' verify=False logs a warning naming the URL at each connect to a wss:// URL; none for ws://,
    none when verifying. '''
    caplog.set_level(logging.WARNING, logger="bokehsync")

    def warnings_of(options: HandshakeOptions) -> list[str]:
        caplog.clear()
        options.connect_kwargs("t")
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    insecure = HandshakeOptions("wss://h/ws", verify=False)
    assert warnings_of(insecure) == ["TLS certificate verification is disabled (verify=False) for wss://h/ws: the "
                                     "connection is encrypted but the server is not authenticated"]
    assert len(warnings_of(insecure)) == 1
    assert warnings_of(HandshakeOptions("ws://h/ws", verify=False)) == []
    assert warnings_of(HandshakeOptions("wss://h/ws")) == []


# Proxies ------------------------------------------------------------------------------------

def test_direct_connections_tell_websocket_client_not_to_use_a_proxy():
    ''' No proxy: websocket-client is given a proxy it must bypass for every host (so it does not
    read the environment itself). '''
    kwargs = HandshakeOptions(URL, proxy=False).connect_kwargs("t")
    assert kwargs["http_no_proxy"] == ["*"] and kwargs["proxy_type"] == "http"
    assert kwargs["http_proxy_host"] and proxy_in(kwargs) is None
    assert proxy_in(HandshakeOptions(URL, proxy="").connect_kwargs("t")) is None


def test_proxy_urls_default_ports_and_credentials():
    ''' http:// defaults to port 80, https:// to 443, no scheme means http; credentials are unquoted;
    the proxy is bypassed for no host. '''
    def kwargs(proxy: str) -> dict:
        return HandshakeOptions(URL, proxy=proxy).connect_kwargs("t")
    assert proxy_in(kwargs("http://p.local")) == "p.local:80"
    assert proxy_in(kwargs("https://p.local")) == "p.local:443"
    assert proxy_in(kwargs("p.local:3128")) == "p.local:3128"
    k = kwargs("http://p.local:3128")
    assert k["http_proxy_auth"] is None and k["proxy_type"] == "http"
    assert k["http_no_proxy"] == ["bokehsync.invalid."]
    assert kwargs("http://a%20b:c%3Ad@p.local:1")["http_proxy_auth"] == ("a b", "c:d")
    assert kwargs("http://user@p.local:1")["http_proxy_auth"] == ("user", "")


def test_bad_proxy_urls_are_refused_without_the_password():
    ''' An invalid port or scheme is refused naming the proxy (password hidden) and the URL. '''
    with pytest.raises(ValueError, match="invalid port") as info:
        HandshakeOptions(URL, proxy="http://u:s3cret@p.local:99999")
    assert "s3cret" not in str(info.value) and "u:***@p.local" in str(info.value) and URL in str(info.value)
    with pytest.raises(ValueError, match="only HTTP CONNECT") as info:
        HandshakeOptions(URL, proxy="socks5://u:s3cret@p.local:1080")
    assert "s3cret" not in str(info.value) and "'socks5://u:***@p.local:1080'" in str(info.value)
    with pytest.raises(TypeError, match="proxy must be"):
        HandshakeOptions(URL, proxy=3)


def test_a_bad_proxy_from_the_environment_names_the_url(monkeypatch):
    ''' An unusable HTTP_PROXY is refused at connect, naming the URL it was for. '''
    monkeypatch.setenv("HTTP_PROXY", "socks5://p.local:1080")
    with pytest.raises(ValueError, match="only HTTP CONNECT") as info:
        HandshakeOptions(URL).connect_kwargs("t")
    assert URL in str(info.value)


def test_no_proxy_matches_host_and_port(monkeypatch):
    ''' NO_PROXY entries with a port bypass the proxy for that host and port only. '''
    monkeypatch.setenv("HTTP_PROXY", "http://p.local:8080")
    monkeypatch.setenv("NO_PROXY", "h.example:5006")
    assert proxy_in(HandshakeOptions("ws://h.example:5006/ws").connect_kwargs("t")) is None
    assert proxy_in(HandshakeOptions("ws://h.example:6000/ws").connect_kwargs("t")) == "p.local:8080"
    monkeypatch.setenv("NO_PROXY", "h.example")
    assert proxy_in(HandshakeOptions("ws://h.example/ws").connect_kwargs("t")) is None
    assert proxy_in(HandshakeOptions("ws://other.example/ws").connect_kwargs("t")) == "p.local:8080"


def test_urls_without_a_scheme_are_left_alone():
    ''' Only http/https are mapped; a URL without "://" is returned unchanged. '''
    assert to_websocket_url("h/app/ws") == "h/app/ws"
    assert to_websocket_url("http://h") == "ws://h"
    assert to_websocket_url("https://h/app?next=http://x") == "wss://h/app?next=http://x"


# websocket-client's shared cookie jar -------------------------------------------------------

class Jar:
    ''' Records what the shared jar is asked (stands in for websocket-client's). '''

    def __init__(self) -> None:
        self.added: list[str | None] = []

    def add(self, value: str | None) -> None:
        self.added.append(value)

    def set(self, value: str) -> None:
        self.added.append(value)

    def get(self, host: str) -> str:
        return f"shared-for-{host}"

    cookies = "the rest of the jar"


def test_handshakes_inside_private_cookies_neither_read_nor_fill_the_shared_jar(monkeypatch):
    ''' Inside private_cookies() (nested too), the jar gives nothing and keeps nothing; outside it, and in
    other threads meanwhile, it works as before; its other attributes pass through. '''
    from websocket import _handshake as ws_handshake
    shared = Jar()
    monkeypatch.setattr(ws_handshake, "CookieJar", shared)
    jar = ws_handshake.CookieJar
    with private_cookies():
        jar = ws_handshake.CookieJar
        assert jar is not shared and jar.get("h") == ""
        jar.add("a=1")
        jar.set("b=2")
        with private_cookies():
            assert jar.get("h") == ""
        assert jar.get("h") == ""
        elsewhere: list[str] = []
        other = threading.Thread(target=lambda: elsewhere.append(jar.get("h")))
        other.start()
        other.join()
        assert elsewhere == ["shared-for-h"]
    assert shared.added == [] and jar.get("h") == "shared-for-h"
    jar.add("c=3")
    jar.set("d=4")
    assert shared.added == ["c=3", "d=4"] and jar.cookies == "the rest of the jar"
    with private_cookies():
        assert ws_handshake.CookieJar is jar  # installed once
