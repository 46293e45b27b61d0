''' What goes into a websocket handshake: the session token, headers and
cookies, TLS settings and the proxy.

One job: turn the deployment keywords of ``ClientSession`` / ``pull_session``
/ ``push_session`` into the session id, a fresh token, and the keyword
arguments of websocket-client's ``WebSocket.connect``. No sockets here.

* Tokens and session ids come from ``bokeh.util.token``, with the secret key
  and signing flag passed explicitly. bokeh reads ``BOKEH_SECRET_KEY`` and
  ``BOKEH_SIGN_SESSIONS`` into default arguments when it is imported, so a
  later change of the environment is ignored by its defaults; here they are
  read when the session is made.
* Proxies are decided here, once (explicit ``proxy=``, else ``HTTPS_PROXY`` /
  ``HTTP_PROXY`` and ``NO_PROXY`` from the environment), and websocket-client
  is told the decision so that it does not read the environment again.
* websocket-client keeps one cookie jar per process and adds the cookies it
  holds to every handshake. :func:`private_cookies` keeps bokehsync's
  handshakes out of it: only the ``cookies=`` given to a session are sent.

Nothing here logs a token, a cookie, a header value or a secret key.
'''
from __future__ import annotations

import calendar
import contextlib
import datetime as dt
import logging
import os
import ssl
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

from bokeh.util.token import (
    check_session_id_signature,
    generate_jwt_token,
    generate_session_id,
    get_session_id,
    get_token_payload,
)

from .exceptions import ConnectionFailed

if TYPE_CHECKING:
    from bokeh.core.types import ID

__all__ = (
    'HandshakeOptions',
    'private_cookies',
    'proxy_in',
    'to_websocket_url',
)

log = logging.getLogger(__name__)

#: Seconds a token is valid for, as bokeh's default.
DEFAULT_TOKEN_EXPIRATION = 300

#: A ``no_proxy`` entry that matches no host name: handed to websocket-client
#: with a proxy we chose, so that it does not apply ``NO_PROXY`` a second time.
_MATCHES_NO_HOST = "bokehsync.invalid."

#: How to tell websocket-client "no proxy" so that it does not read
#: ``HTTP(S)_PROXY`` itself: it keeps ``http_no_proxy`` only along with a
#: proxy host, and a ``no_proxy`` of ``*`` then bypasses that host.
#: A proxy's host, port and optional (user, password).
_Proxy = tuple[str, int, "tuple[str, str] | None"]

_DIRECT = {"http_proxy_host": "direct.bokehsync.invalid", "http_proxy_port": 1, "http_no_proxy": ["*"],
           "proxy_type": "http"}


def to_websocket_url(url: str) -> str:
    ''' ``url`` with an ``http``/``https`` scheme mapped to ``ws``/``wss``
    (anything else is returned as it is, for the connect to report).
    '''
    scheme, sep, rest = url.partition("://")
    mapped = {"http": "ws", "https": "wss"}.get(scheme.lower()) if sep else None
    return f"{mapped}://{rest}" if mapped else url


class HandshakeOptions:
    ''' Everything a handshake needs besides the URL, resolved once per session.

    Args:
        url (str) : the ``ws://`` or ``wss://`` URL (named in errors)
        secret_key (str or bytes, optional) : the server's secret key, to sign
            session ids and tokens (default: ``BOKEH_SECRET_KEY`` now)
        sign_sessions (bool, optional) : sign them (default:
            ``BOKEH_SIGN_SESSIONS`` now, else True when a secret key is known)
        token_expiration (int, optional) : seconds each fresh token is valid
        token (str, optional) : a token issued elsewhere (e.g. by the server's
            page); used as is, for every connect
        extra_payload (dict, optional) : carried in each token; the app sees
            its ``headers``, ``cookies`` and ``arguments`` in place of the
            request's
        headers (dict, optional) : extra HTTP headers of the upgrade request
        cookies (dict, optional) : cookies of the upgrade request
        origin (str, optional) : an ``Origin`` header (default: none sent)
        verify (bool or str, optional) : verify the server's TLS certificate
            (default True), or a CA bundle file to verify it with; False
            disables verification (a warning is logged at each connect)
        ssl_context (ssl.SSLContext, optional) : the TLS context to use
        proxy (str or False, optional) : ``http://[user:password@]host:port``
            of an HTTP CONNECT proxy; False for none; default: from
            ``HTTPS_PROXY`` / ``HTTP_PROXY`` unless ``NO_PROXY`` matches

    Raises:
        ValueError, TypeError: contradictory or malformed options (the
        message names the URL)
    '''

    def __init__(self, url: str, *, secret_key: str | bytes | None = None, sign_sessions: bool | None = None,
            token_expiration: int = DEFAULT_TOKEN_EXPIRATION, token: str | None = None,
            extra_payload: dict[str, Any] | None = None, headers: Mapping[str, str] | None = None,
            cookies: Mapping[str, str] | None = None, origin: str | None = None,
            verify: bool | str = True, ssl_context: ssl.SSLContext | None = None,
            proxy: str | bool | None = None) -> None:
        from bokeh.settings import convert_bool, settings
        self.url = url
        if secret_key is None:
            secret_key = settings.secret_key()
        if sign_sessions is None:
            env = settings.sign_sessions()
            sign_sessions = convert_bool(env) if isinstance(env, str) else bool(env)
        self._secret_key = secret_key.encode("utf-8") if isinstance(secret_key, str) else secret_key
        self.sign_sessions = bool(sign_sessions)
        if self.sign_sessions and not self._secret_key:
            raise ValueError(f"sign_sessions needs secret_key= (or BOKEH_SECRET_KEY) to connect to {url}")
        if not isinstance(token_expiration, int) or token_expiration <= 0:
            raise ValueError(f"token_expiration must be a positive number of seconds, not {token_expiration!r} "
                             f"({url})")
        self.token_expiration = token_expiration
        if token is not None and extra_payload is not None:
            raise ValueError("give either token= (issued elsewhere) or extra_payload= (for tokens made "
                             f"here), not both ({url})")
        if extra_payload is not None and "session_id" in extra_payload:
            raise ValueError(f"extra_payload may not contain 'session_id' ({url})")
        self._token = token
        self._extra_payload = dict(extra_payload) if extra_payload is not None else None
        self._headers = _strings("headers", headers, url)
        self._cookies = _strings("cookies", cookies, url)
        self.origin = origin
        self._sslopt = _sslopt(url, verify, ssl_context)
        self._proxy = _proxy_option(url, proxy)
        self._proxy_decision: dict[str, Any] | None = None

    def __repr__(self) -> str:
        # Never show the key, the token, header or cookie values.
        return (f"HandshakeOptions(url={self.url!r}, sign_sessions={self.sign_sessions}, "
                f"headers={sorted(self._headers)}, cookies={sorted(self._cookies)})")

    # Session ids and tokens --------------------------------------------------

    def session_id(self, session_id: ID | None) -> ID:
        ''' The session id to use: ``session_id``, the one in ``token=``, or
        a new random one (signed when sessions are signed).

        Raises:
            ValueError: it contradicts ``token=``, or is not signed with the key
        '''
        if self._token is not None:
            try:
                in_token = get_session_id(self._token)
            except Exception as e:
                raise ValueError(f"token= is not a Bokeh session token ({self.url}): {e}") from None
            if session_id is not None and session_id != in_token:
                raise ValueError(f"session_id {session_id!r} is not the session of token= ({self.url})")
            return in_token
        if session_id is None:
            return generate_session_id(secret_key=self._secret_key, signed=self.sign_sessions)
        if self.sign_sessions and not check_session_id_signature(session_id, secret_key=self._secret_key,
                                                                 signed=True):
            raise ValueError(f"session_id {session_id!r} is not signed with this secret_key, and the "
                             f"server at {self.url} only accepts signed session ids: leave session_id "
                             "None for a new one, or use an id made with generate_session_id(secret_key, "
                             "signed=True)")
        return session_id

    def token(self, session_id: ID) -> str:
        ''' A fresh token for ``session_id`` (or the ``token=`` given). '''
        if self._token is not None:
            return self._token
        return generate_jwt_token(session_id, secret_key=self._secret_key, signed=self.sign_sessions,
                                  extra_payload=self._extra_payload, expiration=self.token_expiration)

    def check_token(self, token: str) -> None:
        ''' Refuse a token that has already expired, before connecting.

        Raises:
            ConnectionFailed: it expired (says when)
        '''
        try:
            expiry = get_token_payload(token).get("session_expiry")
        except Exception:
            return
        now = calendar.timegm(dt.datetime.now(tz=dt.timezone.utc).timetuple())
        if isinstance(expiry, (int, float)) and now >= expiry:
            raise ConnectionFailed(f"the session token expired {int(now - expiry)} s ago (token_expiration, "
                                   "or the server's --session-token-expiration for a token it issued): "
                                   "get a fresh token", self.url)

    # websocket-client --------------------------------------------------------

    def connect_kwargs(self, token: str) -> dict[str, Any]:
        ''' Keyword arguments for ``websocket.WebSocket.connect``.

        Args:
            token (str) : the session token to send (see :meth:`token`)

        Raises:
            ConnectionFailed: the token has expired
        '''
        self.check_token(token)
        kwargs: dict[str, Any] = {"subprotocols": ["bokeh", token], "sslopt": dict(self._sslopt)}
        if self.origin is None:
            kwargs["suppress_origin"] = True
        else:
            kwargs["origin"] = self.origin
        if self._headers:
            kwargs["header"] = [f"{k}: {v}" for k, v in self._headers.items()]
        if self._cookies:
            kwargs["cookie"] = "; ".join(f"{k}={v}" for k, v in self._cookies.items())
        if self._sslopt.get("cert_reqs") == ssl.CERT_NONE and self.url.startswith("wss:"):
            log.warning("TLS certificate verification is disabled (verify=False) for %s: the connection "
                        "is encrypted but the server is not authenticated", self.url)
        if self._proxy_decision is None:
            # Decided once per session (the environment scan costs ~50 us per connect).
            self._proxy_decision = self._proxy_kwargs()
        kwargs.update({k: list(v) if isinstance(v, list) else v for k, v in self._proxy_decision.items()})
        return kwargs

    def _proxy_kwargs(self) -> dict[str, Any]:
        ''' The proxy decision for websocket-client, made here (see module docs). '''
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        proxy = self._proxy
        if proxy is None:
            # urllib.request costs ~10 ms to import: only when it is needed.
            from urllib.request import getproxies_environment, proxy_bypass_environment  # type: ignore[attr-defined]
            env = getproxies_environment()
            value = env.get("https" if parts.scheme == "wss" else "http")
            bypass = host and proxy_bypass_environment(host if parts.port is None else f"{host}:{parts.port}")
            proxy = _parse_proxy(self.url, value) if value and not bypass else False
        if proxy is False:
            return dict(_DIRECT, http_no_proxy=["*"])
        phost, pport, auth = proxy
        log.debug("connecting to %s through the proxy %s:%s", self.url, phost, pport)
        return {"http_proxy_host": phost, "http_proxy_port": pport, "http_proxy_auth": auth,
                "proxy_type": "http", "http_no_proxy": [_MATCHES_NO_HOST]}


def proxy_in(options: Mapping[str, Any]) -> str | None:
    ''' ``host:port`` of the proxy that ``options`` (from
    :meth:`HandshakeOptions.connect_kwargs`) go through, or None if direct.
    '''
    if not options.get("http_proxy_host") or "*" in (options.get("http_no_proxy") or ()):
        return None
    return f"{options['http_proxy_host']}:{options['http_proxy_port']}"


def _strings(what: str, values: Mapping[str, str] | None, url: str) -> dict[str, str]:
    if values is None:
        return {}
    out = {}
    for k, v in dict(values).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"{what} must map str to str ({url}): got {type(k).__name__} -> {type(v).__name__}")
        if any(c in k + v for c in "\r\n") or (what == "cookies" and any(c in k + v for c in ";=")):
            raise ValueError(f"{what}: name or value of {k!r} has characters not allowed there ({url})")
        out[k] = v
    return out


def _sslopt(url: str, verify: bool | str, ssl_context: ssl.SSLContext | None) -> dict[str, Any]:
    ''' websocket-client's ``sslopt`` for the TLS keywords. '''
    if ssl_context is not None:
        if verify is not True:
            raise ValueError(f"give either ssl_context= or verify=, not both ({url})")
        if not isinstance(ssl_context, ssl.SSLContext):
            raise TypeError(f"ssl_context must be an ssl.SSLContext ({url})")
        return {"context": ssl_context}
    if verify is True:
        return {}  # websocket-client's default: the system's CAs, host name checked
    if verify is False:
        return {"cert_reqs": ssl.CERT_NONE, "check_hostname": False}
    if isinstance(verify, (str, os.PathLike)):
        try:
            return {"context": ssl.create_default_context(cafile=os.fspath(verify))}
        except (OSError, ssl.SSLError) as e:
            raise ValueError(f"verify={os.fspath(verify)!r}: cannot load a CA bundle from it ({e}) "
                             f"to connect to {url}") from None
    raise TypeError(f"verify must be True, False or a CA bundle path, not {verify!r} ({url})")


def _proxy_option(url: str, proxy: str | bool | None) -> _Proxy | Literal[False] | None:
    if proxy is None or proxy is False:
        return None if proxy is None else False
    if proxy is True or not isinstance(proxy, str):
        raise TypeError(f"proxy must be a URL such as 'http://host:3128', False or None, not {proxy!r} ({url})")
    if not proxy:
        return False
    return _parse_proxy(url, proxy)


def _parse_proxy(url: str, proxy: str) -> _Proxy:
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"proxy {_redact(proxy)!r} is not an http://host:port URL (for {url}): only HTTP "
                         "CONNECT proxies are supported")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"proxy {_redact(proxy)!r} has an invalid port (for {url})") from None
    auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
    return parts.hostname, port, auth


def _redact(proxy: str) -> str:
    parts = urlsplit(proxy)
    if parts.password:
        return proxy.replace(f":{parts.password}@", ":***@")
    return proxy


# websocket-client's process-wide cookie jar --------------------------------

class _ThreadAwareJar:
    ''' Stands in for websocket-client's module-level cookie jar: handshakes
    made inside :func:`private_cookies` neither read nor fill it; every other
    handshake of the process uses the original jar as before.
    '''

    def __init__(self, jar: Any) -> None:
        self.original = jar
        self.private = threading.local()

    def _inside(self) -> bool:
        return getattr(self.private, "depth", 0) > 0

    def add(self, set_cookie: str | None) -> None:
        if not self._inside():
            self.original.add(set_cookie)

    def set(self, set_cookie: str) -> None:
        if not self._inside():
            self.original.set(set_cookie)

    def get(self, host: str) -> str:
        return "" if self._inside() else self.original.get(host)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


_JAR_INSTALL = threading.Lock()


def _jar() -> _ThreadAwareJar | None:
    ''' Install the stand-in once (idempotent, thread-safe). '''
    try:
        from websocket import _handshake as ws_handshake
    except ImportError:  # pragma: no cover - websocket-client reorganised
        return None
    with _JAR_INSTALL:
        jar = getattr(ws_handshake, "CookieJar", None)
        if jar is None:  # pragma: no cover
            return None
        if not isinstance(jar, _ThreadAwareJar):
            jar = _ThreadAwareJar(jar)
            ws_handshake.CookieJar = jar  # type: ignore[assignment]  # a stand-in with its interface
        return jar


@contextlib.contextmanager
def private_cookies() -> Iterator[None]:
    ''' Run a websocket-client handshake in this thread without its shared
    cookie jar: only the cookies passed explicitly are sent, and the
    ``Set-Cookie`` of the response is not kept for other connections.
    '''
    jar = _jar()
    if jar is None:  # pragma: no cover
        yield
        return
    jar.private.depth = getattr(jar.private, "depth", 0) + 1
    try:
        yield
    finally:
        jar.private.depth -= 1
