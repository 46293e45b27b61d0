''' ``ClientSession``, with the API of ``bokeh.client.session.ClientSession``
(exported by ``bokehsync`` and ``bokehsync.session``).

A session is one server-side document, named by its session id, and one
connection to it. ``session.document`` is kept in step with the server's: see
``_docsync`` for the document lock (``session.lock``) and who holds it when,
and ``connection`` for the threads.
'''
from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from bokeh.client.util import websocket_url_for_server_url
from bokeh.resources import DEFAULT_SERVER_HTTP_URL

from ._browser import show_session
from ._deadline import check_timeout
from ._docsync import DocumentSync
from ._handshake import DEFAULT_TOKEN_EXPIRATION, HandshakeOptions, to_websocket_url
from ._hooks import Hooks
from ._legacy import BokehClientHooks
from ._loop import LoopThread
from ._params import shared_args
from ._parts import DEFAULT_SERVER_MAX_MESSAGE_SIZE
from ._reconnect import Reconnect
from ._wire import Progress
from .connection import DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT, DEFAULT_TIMEOUT, ClientConnection
from .exceptions import ConnectionFailed, UnknownModelType

if TYPE_CHECKING:
    from bokeh.core.types import ID
    from bokeh.document import Document
    from bokeh.models.ui import UIElement
    from tornado.ioloop import IOLoop

    from .states import ErrorReason

__all__ = (
    'DEFAULT_SESSION_ID',
    'ClientSession',
)

log = logging.getLogger(__name__)

DEFAULT_SESSION_ID = "default"

DEFAULT_SERVER_WEBSOCKET_URL = websocket_url_for_server_url(DEFAULT_SERVER_HTTP_URL)


def _extras(**given: Any) -> dict[str, Any]:
    ''' The bokehsync-only keyword arguments the caller gave (not None), so a
    call passes on exactly what bokeh.client's would when none were given.
    '''
    return {name: value for name, value in given.items() if value is not None}


@shared_args()
class ClientSession(BokehClientHooks):
    ''' A connection to one server-side session, and its document.

    ``session.document`` is kept in step both ways while connected: local
    changes go to the server as they happen, from the thread that made them
    (a burst made while the server has not yet acknowledged the previous
    change goes as one merged message); server changes are applied by the
    connection's reader thread holding :attr:`lock`, and are not echoed back.

    Use it as a context manager, so it is closed after a flush:

    .. code-block:: python

        with pull_session(url=app_url, session_id=browser_session_id) as session:
            session.document.get_model_by_name("title").text = "hello"
        # the change is on the server here

    Args:
        session_id (str, optional) : the session (one server-side document),
            e.g. a browser's ``bokeh-session-id``; None for a new random one
            (default: None)
        websocket_url (str, optional) : ``ws(s)://`` (or ``http(s)://``) URL of the
            application's websocket, ending in ``/ws``
            (default: ``ws://localhost:5006/ws``)
        io_loop (IOLoop, optional) : a Tornado loop to run document session
            callbacks on (default: None, one on its own thread, started when needed)
        arguments (dict[str, str], optional) : HTTP request arguments for the
            application code; they take effect only when the session is created
            (default: None)
        max_message_size (int, optional) : the largest message accepted from the
            server, in bytes (default: 20 MiB)
        {session_options}

    Raises:
        ValueError, TypeError: deployment options that contradict each other
            or are malformed (the message names the URL)
    '''

    _document: Document | None
    _id: ID
    _connection: ClientConnection

    def __init__(self, session_id: ID | None = None, websocket_url: str = DEFAULT_SERVER_WEBSOCKET_URL,
            io_loop: IOLoop | None = None, arguments: dict[str, str] | None = None,
            max_message_size: int = 20*1024*1024, *, timeout: float = DEFAULT_TIMEOUT,
            secret_key: str | bytes | None = None, sign_sessions: bool | None = None,
            token_expiration: int = DEFAULT_TOKEN_EXPIRATION, token: str | None = None,
            extra_payload: dict[str, Any] | None = None, headers: Mapping[str, str] | None = None,
            cookies: Mapping[str, str] | None = None, origin: str | None = None, verify: bool | str = True,
            ssl_context: ssl.SSLContext | None = None, proxy: str | bool | None = None,
            ping_interval: float | None = DEFAULT_PING_INTERVAL, ping_timeout: float = DEFAULT_PING_TIMEOUT,
            reconnect: Reconnect | bool | int | None = None,
            server_max_message_size: int = DEFAULT_SERVER_MAX_MESSAGE_SIZE) -> None:
        websocket_url = to_websocket_url(websocket_url)
        handshake = HandshakeOptions(
            websocket_url, secret_key=secret_key, sign_sessions=sign_sessions, token_expiration=token_expiration,
            token=token, extra_payload=extra_payload, headers=headers, cookies=cookies, origin=origin,
            verify=verify, ssl_context=ssl_context, proxy=proxy)
        self._handshake = handshake
        self._id = handshake.session_id(session_id)
        loop = LoopThread(f"bokehsync-ioloop-{str(self._id)[:8]}", io_loop)
        self._sync = DocumentSync(self, loop, websocket_url)
        self._hooks = Hooks(self)
        self._connection = ClientConnection(
            self, websocket_url, io_loop, arguments, max_message_size, timeout=check_timeout(timeout),
            ping_interval=ping_interval, ping_timeout=ping_timeout, reconnect=reconnect, handshake=handshake,
            sync=self._sync, hooks=self._hooks, server_max_message_size=server_max_message_size)

    def __enter__(self) -> ClientSession:
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, exc_traceback: Any) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except Exception as e:
            log.error("closing session %s after an exception: %s", self._id, e)

    # Properties --------------------------------------------------------------

    @property
    def connected(self) -> bool:
        ''' Whether this session is currently connected. '''
        return self._connection.connected

    @property
    def error_reason(self) -> ErrorReason | None:
        ''' Why the connection closed (``ErrorReason``), or None while it is open. '''
        return self._connection.error_reason

    @property
    def error_code(self) -> int | None:
        ''' The HTTP status or websocket close code of a failure (0 while not disconnected). '''
        return self._connection.error_code

    @property
    def error_detail(self) -> str:
        ''' The cause of a failure, in words (empty while not disconnected). '''
        return self._connection.error_detail

    @property
    def url(self) -> str:
        ''' The websocket URL of the session. '''
        return self._connection.url

    @property
    def document(self) -> Document:
        ''' The ``Document`` kept in step with the server's; None until
        :meth:`pull` or :meth:`push` succeeds.
        '''
        return self._sync.document  # type: ignore[return-value]

    @property  # type: ignore[no-redef]
    def _document(self) -> Document | None:
        ''' ``session.document`` (kept for code written against bokeh.client,
        which reads and sets it).
        '''
        return self._sync.document

    @_document.setter
    def _document(self, document: Document | None) -> None:
        self._sync.document = document

    @property
    def id(self) -> ID:
        ''' The session id. '''
        return self._id

    @property
    def token(self) -> str:
        ''' A fresh token for this session id (never logged), or the ``token=`` given. '''
        return self._handshake.token(self.id)

    @property
    def lock(self) -> threading.RLock:
        ''' The document lock, re-entrant: hold it to make several changes atomic
        with respect to server updates, or when several threads of yours change
        the document. Blocking calls made holding it raise RuntimeError.
        (bokehsync only)
        '''
        return self._sync.lock

    @property
    def timeout(self) -> float:
        ''' Default seconds for every blocking call. (bokehsync only) '''
        return self._connection.timeout

    # Public methods ----------------------------------------------------------

    def connect(self, *, timeout: float | None = None) -> None:
        ''' Connect to the server. Like bokeh.client, this does not raise:
        see :meth:`check_connection_errors`.

        Args:
            timeout (float, optional) : seconds for the handshake (default: the
                session's timeout) (bokehsync only)
        '''
        self._connection.connect(**_extras(timeout=timeout))

    def close(self, why: str = "closed", *, flush: bool = True, timeout: float | None = None) -> None:
        ''' Close the connection, after a flush. Idempotent.

        Args:
            why (str, optional) : the reason sent to the server (default: "closed")
            flush (bool, optional) : wait first until every change sent so far
                is acknowledged (default: True) (bokehsync only)
            timeout (float, optional) : seconds for that flush (default: the
                session's timeout) (bokehsync only)

        Raises:
            ServerError: the server rejected a change (the session is closed anyway)
            ConnectionLost, ReplyTimeout: changes could not be confirmed
        '''
        self._connection.close(why, **_extras(flush=None if flush else False, timeout=timeout))

    def flush(self, *, timeout: float | None = None) -> None:
        ''' Block until every change made so far is acknowledged by the server.
        (bokehsync only)

        Args:
            timeout (float, optional) : seconds (default: the session's timeout)

        Raises:
            ServerError: the server rejected a change; its text and traceback
            ConnectionLost: the connection died with changes unacknowledged
            ReplyTimeout: not acknowledged in time
            RuntimeError: called holding :attr:`lock`, or from the reader thread
        '''
        self._connection.flush(**_extras(timeout=timeout))

    def force_roundtrip(self, *, timeout: float | None = None) -> None:
        ''' Send a request and wait for its reply: every change sent before it
        has been processed by the server when this returns.

        Args:
            timeout (float, optional) : seconds (default: the session's timeout)
                (bokehsync only)

        Raises:
            ServerError: the server answered with an ERROR (its ``text`` and ``traceback``)
            ConnectionLost: the connection is closed, or died before the reply
            ReplyTimeout: no reply within ``timeout``
            RuntimeError: called holding :attr:`lock`, or from the reader thread
        '''
        self._connection.force_roundtrip(**_extras(timeout=timeout))

    def check_connection_errors(self) -> None:
        ''' Raise if the connection could not be established.

        Raises:
            ConnectionFailed (an OSError): with the URL and the cause
        '''
        if self.connected:
            return
        error = self._connection.error
        if error is not None:
            raise error
        raise ConnectionFailed("not connected (call connect() first)", self.url)

    def pull(self, *, timeout: float | None = None, progress: Progress | None = None) -> None:
        ''' Pull the server's document into ``session.document``, connecting
        first if needed. On later calls the same document object is overwritten.

        Args:
            timeout (float, optional) : seconds for the connect and for the pull
                (default: the session's timeout) (bokehsync only)
            progress (callable, optional) : ``progress(bytes_done, total)``
                as the document arrives (``total`` is None until the end);
                called on a bokehsync thread (default: None) (bokehsync only)

        Raises:
            ConnectionFailed: the server could not be reached, or refused the session (an ``OSError``)
            ServerError: the server answered with an ERROR (its ``text`` and ``traceback``)
            ConnectionLost: the connection is closed, or died before the reply
            ReplyTimeout: no reply within ``timeout``
            UnknownModelType: the document uses model classes this process
                does not define (import their module first); the session is closed
        '''
        self.connect(timeout=timeout)
        self.check_connection_errors()
        if self._sync.document is None:
            from bokeh.document import Document
            doc = Document()
        else:
            doc = self._sync.document
        try:
            self._connection.pull_doc(doc, **_extras(timeout=timeout, progress=progress))
        except UnknownModelType:
            # Every later change from the server would name those types too.
            self.close("the document uses model types this client does not define", flush=False)
            raise
        self._sync.mode = self._sync.mode or "pull"

    def push(self, document: Document | None = None, *, timeout: float | None = None,
            progress: Progress | None = None) -> None:
        ''' Push ``document`` to the server and keep it as ``session.document``.

        Args:
            document (Document, optional) : None for ``session.document`` (or
                a new empty document); it must be ``session.document`` if set
            timeout (float, optional) : seconds for the connect and for the push
                (default: the session's timeout) (bokehsync only)
            progress (callable, optional) : ``progress(bytes_sent, total)``
                as the document is sent, on the sending thread (default: None)
                (bokehsync only)

        Raises:
            ValueError: a different document than ``session.document``
            ConnectionFailed: the server could not be reached, or refused the session (an ``OSError``)
            ServerError: the server answered with an ERROR (its ``text`` and ``traceback``)
            ConnectionLost: the connection is closed, or died before the reply
            ReplyTimeout: no reply within ``timeout``
        '''
        current = self._sync.document
        if current is None:
            if document is None:
                from bokeh.document import Document
                doc = Document()
            else:
                doc = document
        elif document is None or document is current:
            doc = current
        else:
            raise ValueError("Cannot push() a different document from existing session.document")
        self.connect(timeout=timeout)
        self.check_connection_errors()
        self._connection.push_doc(doc, **_extras(timeout=timeout, progress=progress))
        self._sync.mode = self._sync.mode or "push"

    def request_server_info(self, *, timeout: float | None = None) -> dict[str, Any]:
        ''' Ask the server for its version information (cached).

        Args:
            timeout (float, optional) : seconds (default: the session's timeout)
                (bokehsync only)

        Returns:
            dict : ``{"version_info": {"bokeh": ..., "server": ...}}``

        Raises:
            ServerError: the server answered with an ERROR (its ``text`` and ``traceback``)
            ConnectionLost: the connection is closed, or died before the reply
            ReplyTimeout: no reply within ``timeout``
        '''
        return self._connection.request_server_info(**_extras(timeout=timeout))

    @contextmanager
    def batch(self) -> Iterator[None]:
        ''' Send the changes made inside the block as one PATCH-DOC when the
        outermost block ends. (bokehsync only)

        Holds :attr:`lock` for the block, so server changes are applied
        before or after it, never in the middle.
        '''
        with self._sync.batch():
            yield

    def show(self, obj: UIElement | None = None, browser: str | None = None,
            new: Literal["tab", "window"] = "tab") -> None:
        ''' Open a browser displaying this session.

        Args:
            obj (UIElement, optional) : added to the document first if not a root
            browser (str, optional) : which browser (see :mod:`webbrowser`)
            new (str, optional) : ``"tab"`` or ``"window"`` (default: "tab")
        '''
        if obj and obj not in self.document.roots:
            self.document.add_root(obj)
        show_session(session=self, browser=browser, new=new)

    def on_disconnect(self, callback: Callable[[ClientSession, BaseException | None], Any]) -> Callable[..., Any]:
        ''' Register ``callback(session, error)``, called on a bokehsync thread
        when the connection is lost unexpectedly, and again if reconnecting
        gives up. Usable as a decorator. (bokehsync only)

        Returns:
            callable : ``callback``
        '''
        self._hooks.add("disconnect", callback)
        return callback

    def on_resync(self, callback: Callable[[ClientSession, str], Any]) -> Callable[..., Any]:
        ''' Register ``callback(session, reason)``, called on a bokehsync thread
        after the document was brought back to the server's state because it
        had diverged (a server change that could not be applied, or one that
        crossed a change of ours with no exact local rule); ``reason`` says
        why. Model objects the program holds stay in the document. Usable as a
        decorator. (bokehsync only)

        Returns:
            callable : ``callback``
        '''
        self._hooks.add("resync", callback)
        return callback

    def on_reconnect(self, callback: Callable[[ClientSession], Any]) -> Callable[..., Any]:
        ''' Register ``callback(session)``, called on a bokehsync thread after
        a reconnect and resync succeeded. Usable as a decorator. (bokehsync only)

        Returns:
            callable : ``callback``
        '''
        self._hooks.add("reconnect", callback)
        return callback
