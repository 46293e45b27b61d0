''' Opening sessions: ``pull_session`` and ``push_session``, with the
signatures of bokeh.client's (exported by ``bokehsync`` and ``bokehsync.session``).
'''
from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bokeh.client.util import websocket_url_for_server_url
from bokeh.resources import SessionCoordinates

from ._client import ClientSession
from ._handshake import DEFAULT_TOKEN_EXPIRATION
from ._params import shared_args
from ._parts import DEFAULT_SERVER_MAX_MESSAGE_SIZE
from ._reconnect import Reconnect
from ._wire import Progress
from .connection import DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT, DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from bokeh.core.types import ID
    from bokeh.document import Document
    from tornado.ioloop import IOLoop

__all__ = (
    'pull_session',
    'push_session',
)


@shared_args()
def pull_session(session_id: ID | None = None, url: str = "default", io_loop: IOLoop | None = None,
        arguments: dict[str, str] | None = None, max_message_size: int = 20*1024*1024, *,
        timeout: float = DEFAULT_TIMEOUT, secret_key: str | bytes | None = None, sign_sessions: bool | None = None,
        token_expiration: int = DEFAULT_TOKEN_EXPIRATION, token: str | None = None,
        extra_payload: dict[str, Any] | None = None, headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None, origin: str | None = None, verify: bool | str = True,
        ssl_context: ssl.SSLContext | None = None, proxy: str | bool | None = None,
        ping_interval: float | None = DEFAULT_PING_INTERVAL, ping_timeout: float = DEFAULT_PING_TIMEOUT,
        reconnect: Reconnect | bool | int | None = None, progress: Progress | None = None,
        server_max_message_size: int = DEFAULT_SERVER_MAX_MESSAGE_SIZE) -> ClientSession:
    ''' Open a session and load its current document from the server.

    ``session.document`` is a fresh document with the server's content. While
    the connection is open, server changes are applied to it by a background
    thread, and local changes are sent to the server as they happen.

    Args:
        session_id (str, optional) : the session to open: one server-side
            document, e.g. the ``bokeh-session-id`` of a browser showing the app
            (its change then shows in that browser); None for a new session,
            which the app's code creates for this client alone (default: None)
        url (str, optional) : URL of a Bokeh application on a Bokeh server, or
            ``"default"`` for ``http://localhost:5006/`` (default: "default")
        io_loop (IOLoop, optional) : a Tornado loop to run document session
            callbacks on (default: None, one on its own thread, started when needed)
        arguments (dict[str, str], optional) : HTTP request arguments for the
            application code; they take effect only when the session is created
            (default: None)
        max_message_size (int, optional) : the largest message accepted from the
            server, in bytes (default: 20 MiB)
        {session_options}
        progress (callable, optional) : ``progress(bytes_done, total)`` while
            the document arrives, ``total`` None until the end; called on the
            reader thread (default: None) (bokehsync only)

    Returns:
        ClientSession : connected, with the server's document

    Raises:
        ConnectionFailed (an OSError): the server could not be reached, or
            refused the session (``status`` 404: no app at that path)
        ServerError: the server answered the pull with an error
        ConnectionLost: the connection died during the pull
        ReplyTimeout: no document within ``timeout``
        ValueError, TypeError: malformed or contradictory options
    '''
    coords = SessionCoordinates(session_id=session_id, url=url)
    session = ClientSession(session_id=session_id, websocket_url=websocket_url_for_server_url(coords.url),
                            io_loop=io_loop, arguments=arguments, max_message_size=max_message_size,
                            timeout=timeout, secret_key=secret_key, sign_sessions=sign_sessions,
                            token_expiration=token_expiration, token=token, extra_payload=extra_payload,
                            headers=headers, cookies=cookies, origin=origin, verify=verify,
                            ssl_context=ssl_context, proxy=proxy, ping_interval=ping_interval,
                            ping_timeout=ping_timeout, reconnect=reconnect,
                            server_max_message_size=server_max_message_size)
    try:
        session.pull(progress=progress)
    except BaseException:
        session.close(flush=False)
        raise
    return session


@shared_args()
def push_session(document: Document, session_id: ID | None = None, url: str = "default",
        io_loop: IOLoop | None = None, max_message_size: int = 20*1024*1024, *,
        timeout: float = DEFAULT_TIMEOUT, secret_key: str | bytes | None = None, sign_sessions: bool | None = None,
        token_expiration: int = DEFAULT_TOKEN_EXPIRATION, token: str | None = None,
        extra_payload: dict[str, Any] | None = None, headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None, origin: str | None = None, verify: bool | str = True,
        ssl_context: ssl.SSLContext | None = None, proxy: str | bool | None = None,
        ping_interval: float | None = DEFAULT_PING_INTERVAL, ping_timeout: float = DEFAULT_PING_TIMEOUT,
        reconnect: Reconnect | bool | int | None = None, progress: Progress | None = None,
        server_max_message_size: int = DEFAULT_SERVER_MAX_MESSAGE_SIZE) -> ClientSession:
    ''' Open a session and push ``document`` to it, replacing the server-side
    document of that session.

    ``session.document`` is ``document``; it is kept in step both ways while
    the connection is open.

    Args:
        document (Document) : the document to push
        session_id (str, optional) : the session; None for a new random one,
            which :func:`show_session` or ``session.show()`` opens in a browser
            (default: None)
        url (str, optional) : URL of a Bokeh application on a Bokeh server, or
            ``"default"`` for ``http://localhost:5006/`` (default: "default")
        io_loop (IOLoop, optional) : a Tornado loop to run document session
            callbacks on (default: None, one on its own thread, started when needed)
        max_message_size (int, optional) : the largest message accepted from the
            server, in bytes (default: 20 MiB)
        {session_options}
        progress (callable, optional) : ``progress(bytes_sent, total)`` while
            the document is sent, on the calling thread (default: None)
            (bokehsync only)

    Returns:
        ClientSession : connected, serving ``document``

    Raises:
        ConnectionFailed (an OSError): the server could not be reached, or
            refused the session (``status`` 404: no app at that path)
        ServerError: the server rejected the document
        ConnectionLost: the connection died during the push
        ReplyTimeout: not acknowledged within ``timeout``
        ValueError, TypeError: malformed or contradictory options
    '''
    coords = SessionCoordinates(session_id=session_id, url=url)
    # session_id None: the session makes the id, signed if sessions are signed.
    session = ClientSession(session_id=coords.session_id_allowing_none,
                            websocket_url=websocket_url_for_server_url(coords.url),
                            io_loop=io_loop, max_message_size=max_message_size, timeout=timeout,
                            secret_key=secret_key, sign_sessions=sign_sessions,
                            token_expiration=token_expiration, token=token, extra_payload=extra_payload,
                            headers=headers, cookies=cookies, origin=origin, verify=verify,
                            ssl_context=ssl_context, proxy=proxy, ping_interval=ping_interval,
                            ping_timeout=ping_timeout, reconnect=reconnect,
                            server_max_message_size=server_max_message_size)
    try:
        session.push(document, progress=progress)
    except BaseException:
        session.close(flush=False)
        raise
    return session
