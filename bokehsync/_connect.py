''' Opening a session's websocket: the HTTP upgrade, then the server's ACK.

websocket-client performs the upgrade (URL, TLS, proxies, headers, cookies);
its socket is then handed to a :class:`~bokehsync._transport.Transport` and
websocket-client never touches it again. Every failure becomes an exception
of ``bokehsync.exceptions`` that names the URL and the cause, and the socket
is closed before the exception leaves.

The Bokeh server accepts the upgrade (101) before it checks the session
token, its signature and expiry, and the auth hook: a refused session shows
as the socket closing right after the upgrade, before the ACK
(``bokeh/server/views/ws.py``); :func:`open_session` names those causes.
'''
from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import websocket
from bokeh.protocol.message import Message

from . import _frames
from ._deadline import Deadline
from ._handshake import private_cookies, proxy_in
from ._transport import RECV_SIZE, Transport, WouldBlockTimeout
from ._wire import Assembler
from .exceptions import BokehSyncError, ConnectionFailed, ConnectionRejected, ProtocolViolation, ReplyTimeout

__all__ = (
    'Opened',
    'open_session',
)


@dataclass
class Opened:
    ''' A session websocket after the server's ACK.

    Args:
        transport (Transport) : the socket
        parser (FrameParser) : its frame parser, mid-stream
        assembler (Assembler) : its message assembler, mid-stream
        early (list) : frame events that arrived after the ACK, in the same read
    '''
    transport: Transport
    parser: _frames.FrameParser
    assembler: Assembler
    early: list[_frames.Event]


def open_session(url: str, options: dict[str, Any], max_message_size: int, deadline: Deadline) -> Opened:
    ''' Upgrade to a websocket at ``url`` and wait for the server's ACK.

    Args:
        url (str) : ``ws://`` or ``wss://`` URL, with the app's query arguments
        options (dict) : keyword arguments of websocket-client's ``connect``,
            plus ``sslopt`` (see ``HandshakeOptions.connect_kwargs``)
        max_message_size (int) : the largest websocket message accepted, in bytes
        deadline (Deadline) : for the whole handshake

    Returns:
        Opened : the open session

    Raises:
        ConnectionFailed: refused, DNS, TLS, proxy, or an HTTP error status
            (``status`` set: 404 wrong app path, 403 Origin refused)
        ConnectionRejected: the server closed right after the upgrade
        ReplyTimeout: the handshake or the ACK did not come in time
        ProtocolViolation: the server sent something else than the ACK first
    '''
    # websocket-client takes the TLS options in the constructor, not in connect().
    ws = websocket.WebSocket(skip_utf8_validation=True, sslopt=options.pop("sslopt", None))
    try:
        with private_cookies():
            ws.connect(url, timeout=deadline.remaining(), **options)  # type: ignore[no-untyped-call]
    except Exception as e:
        error = _upgrade_error(e, url, options, deadline)
        if error is None:
            raise
        raise error from e
    sock = ws.sock
    assert sock is not None  # connect() returned: the socket is open
    ws.sock = None  # the socket is ours now; websocket-client must not touch it again
    transport = Transport(sock)
    parser = _frames.FrameParser(max_message_size, url)
    assembler = Assembler(url)
    early = _wait_for_ack(transport, parser, assembler, url, deadline)
    return Opened(transport, parser, assembler, early)


def _upgrade_error(e: Exception, url: str, options: dict[str, Any], deadline: Deadline) -> BokehSyncError | None:
    ''' The bokehsync exception for a failed upgrade; None for an unexpected one. '''
    if isinstance(e, websocket.WebSocketBadStatusException):
        status = e.status_code
        body = (e.resp_body or b"")[:200].decode("utf-8", "replace").strip()
        if status == 404:
            detail = f"HTTP 404: no Bokeh application at this path. Check your application path! ({url})"
        elif status == 403:
            detail = "HTTP 403: the server refused the websocket (Origin not allowed, or forbidden)"
        else:
            detail = f"HTTP {status} at the websocket handshake"
        if body:
            detail += f": {body}"
        return ConnectionFailed(detail, url, status=status)
    if isinstance(e, (TimeoutError, websocket.WebSocketTimeoutException)):
        return ReplyTimeout(f"connecting timed out after {deadline.timeout} s", url, msgid=None,
                            timeout=deadline.timeout)
    if isinstance(e, ssl.SSLError):
        hint = ("; pass verify='ca.pem' or ssl_context= to trust its CA (or verify=False, insecure)"
                if isinstance(e, ssl.SSLCertVerificationError) else "")
        return ConnectionFailed(f"TLS error: {e}{hint}", url)
    if isinstance(e, ConnectionRefusedError):
        proxy = proxy_in(options)
        if proxy:
            return ConnectionFailed(f"connection refused by the proxy {proxy}", url)
        return ConnectionFailed("connection refused: is the Bokeh server running? (start one with 'bokeh serve')",
                                url)
    if isinstance(e, OSError):
        return ConnectionFailed(f"network error: {e}", url)
    if isinstance(e, websocket.WebSocketProxyException):
        return ConnectionFailed(f"the proxy refused the tunnel: {e}", url)
    if isinstance(e, websocket.WebSocketException):
        return ConnectionFailed(f"websocket handshake failed: {e}", url)
    return None


def _wait_for_ack(transport: Transport, parser: _frames.FrameParser, assembler: Assembler, url: str,
        deadline: Deadline) -> list[_frames.Event]:
    ''' Read until the ACK; return the events that came after it.
    On any failure the socket is closed before the exception leaves.
    '''
    buf = bytearray(RECV_SIZE)
    view = memoryview(buf)
    try:
        while True:
            try:
                n = transport.recv(buf, deadline=deadline.at)
            except WouldBlockTimeout:
                raise ReplyTimeout(f"the server upgraded the websocket but sent no ACK within {deadline.timeout} s",
                                   url, msgid=None, timeout=deadline.timeout) from None
            except OSError as e:
                raise _rejected(url, None, f"the connection broke right after the upgrade ({e!r})") from e
            if n == 0:
                raise _rejected(url, None, "the socket closed right after the upgrade")
            events = parser.feed(view[:n])
            for i, event in enumerate(events):
                if isinstance(event, _frames.Close):
                    raise _rejected(url, event, "")
                if isinstance(event, (_frames.Ping, _frames.Pong)):
                    continue
                message: Message[Any] | None = assembler.feed(event)
                if message is None:
                    continue
                if message.msgtype != 'ACK':
                    raise ProtocolViolation(f"bokeh protocol violation: expected ACK, got {message.msgtype}", url)
                return events[i + 1:]
    except BaseException:
        transport.close()
        raise


def _rejected(url: str, close: _frames.Close | None, what: str) -> ConnectionRejected:
    code = close.code if close else None
    reason = close.reason if close else ""
    got = what or ("the server closed the connection right after the upgrade ("
                   + (f"code {code}" if code is not None else "no close code")
                   + (f", reason {reason!r})" if reason else ")"))
    return ConnectionRejected(
        f"{got}, before its ACK: the server refused the session. Likely causes: an invalid or expired "
        "session token (check secret_key / sign_sessions / token_expiration), or the server's auth hook "
        "rejected the request", url, close_code=code, close_reason=reason)
