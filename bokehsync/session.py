''' ``ClientSession`` and the ``pull_session`` / ``push_session`` /
``show_session`` functions, with the signatures of ``bokeh.client``.

The document rule
-----------------
bokeh's ``Document`` has no lock of its own. Each session has one,
``session.lock`` (re-entrant):

* the reader thread holds it while it applies a server change to
  ``session.document`` (and while it applies a pulled document);
* document session callbacks (periodic, timeout, next-tick) run holding it;
* serializing a local change for the server holds it;
* user code holds it (``with session.lock:``) to make several changes atomic
  with respect to server updates, and whenever more than one thread of its
  own changes the document.

A blocking call (pull, push, flush, force_roundtrip, request_server_info)
made while holding ``session.lock`` raises ``RuntimeError`` at once instead of
deadlocking: the reader needs the lock to apply server changes that may
precede the reply.
'''
from __future__ import annotations

import contextlib
import logging
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote_plus

from bokeh.client.util import server_url_for_websocket_url, websocket_url_for_server_url
from bokeh.resources import DEFAULT_SERVER_HTTP_URL, SessionCoordinates
from bokeh.util.token import generate_session_id

from ._deadline import check_timeout
from ._events import is_heavy, size_groups
from ._handshake import DEFAULT_TOKEN_EXPIRATION, HandshakeOptions, to_websocket_url
from ._reconnect import Reconnect
from ._wire import Progress
from .connection import DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT, DEFAULT_TIMEOUT, ClientConnection
from .exceptions import ConnectionFailed, ConnectionLost

if TYPE_CHECKING:
    from bokeh.core.types import ID
    from bokeh.document import Document
    from bokeh.document.events import DocumentPatchedEvent, SessionCallbackAdded, SessionCallbackRemoved
    from bokeh.models.ui import UIElement
    from bokeh.protocol.message import Message
    from bokeh.util.browser import BrowserLike, BrowserTarget
    from tornado.ioloop import IOLoop

    from .states import ErrorReason

__all__ = (
    'DEFAULT_SESSION_ID',
    'ClientSession',
    'pull_session',
    'push_session',
    'show_session',
)

log = logging.getLogger(__name__)

DEFAULT_SESSION_ID = "default"

DEFAULT_SERVER_WEBSOCKET_URL = websocket_url_for_server_url(DEFAULT_SERVER_HTTP_URL)


def pull_session(session_id: ID | None = None, url: str = "default", io_loop: IOLoop | None = None,
        arguments: dict[str, str] | None = None, max_message_size: int = 20*1024*1024, *,
        timeout: float = DEFAULT_TIMEOUT, secret_key: str | bytes | None = None, sign_sessions: bool | None = None,
        token_expiration: int = DEFAULT_TOKEN_EXPIRATION, token: str | None = None,
        extra_payload: dict[str, Any] | None = None, headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None, origin: str | None = None, verify: bool | str = True,
        ssl_context: ssl.SSLContext | None = None, proxy: str | bool | None = None,
        ping_interval: float | None = DEFAULT_PING_INTERVAL, ping_timeout: float = DEFAULT_PING_TIMEOUT,
        reconnect: Reconnect | bool | int | None = None, progress: Progress | None = None) -> ClientSession:
    ''' Create a session by loading the current server-side document.

    ``session.document`` is a fresh document loaded from the server. While the
    connection is open, server changes are applied to it by a background
    thread, and local changes are sent to the server as they happen.

    Args:
        session_id (str, optional) : the session to open, None for a new random one
        url (str, optional) : URL of a Bokeh application on a Bokeh server, or
            ``"default"`` for ``http://localhost:5006/``
        io_loop (IOLoop, optional) : a Tornado loop for document session
            callbacks (default: one on its own thread, started when needed)
        arguments (dict[str, str], optional) : HTTP request arguments for the
            application code; only take effect when the session is created
        max_message_size (int, optional) : largest message accepted from the
            server, in bytes (default: 20 MiB)
        timeout (float, optional) : seconds for every blocking call of this
            session, including this pull (default: 30) (bokehsync only)
        secret_key, sign_sessions, token_expiration, token, extra_payload : signed
            sessions and tokens (bokehsync only), see :class:`ClientSession`
        headers, cookies, origin, verify, ssl_context, proxy : the handshake,
            TLS and proxies (bokehsync only), see :class:`ClientSession`
        ping_interval, ping_timeout, reconnect : keepalive and reconnecting
            (bokehsync only), see :class:`ClientSession`
        progress (callable, optional) : ``progress(bytes_done, total)`` during
            the first pull or push (bokehsync only), see :meth:`ClientSession.pull`

    Returns:
        ClientSession : connected, with the server's document

    Raises:
        ConnectionFailed (an OSError): the server could not be reached or refused
        ServerError, ConnectionLost, ReplyTimeout
    '''
    coords = SessionCoordinates(session_id=session_id, url=url)
    session = ClientSession(session_id=session_id, websocket_url=websocket_url_for_server_url(coords.url),
                            io_loop=io_loop, arguments=arguments, max_message_size=max_message_size,
                            timeout=timeout, secret_key=secret_key, sign_sessions=sign_sessions,
                            token_expiration=token_expiration, token=token, extra_payload=extra_payload,
                            headers=headers, cookies=cookies, origin=origin, verify=verify,
                            ssl_context=ssl_context, proxy=proxy, ping_interval=ping_interval,
                            ping_timeout=ping_timeout, reconnect=reconnect)
    try:
        session.pull(progress=progress)
    except BaseException:
        session.close(flush=False)
        raise
    return session


def push_session(document: Document, session_id: ID | None = None, url: str = "default",
        io_loop: IOLoop | None = None, max_message_size: int = 20*1024*1024, *,
        timeout: float = DEFAULT_TIMEOUT, secret_key: str | bytes | None = None, sign_sessions: bool | None = None,
        token_expiration: int = DEFAULT_TOKEN_EXPIRATION, token: str | None = None,
        extra_payload: dict[str, Any] | None = None, headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None, origin: str | None = None, verify: bool | str = True,
        ssl_context: ssl.SSLContext | None = None, proxy: str | bool | None = None,
        ping_interval: float | None = DEFAULT_PING_INTERVAL, ping_timeout: float = DEFAULT_PING_TIMEOUT,
        reconnect: Reconnect | bool | int | None = None, progress: Progress | None = None) -> ClientSession:
    ''' Create a session by pushing ``document`` to the server, replacing any
    server-side document of that session.

    ``session.document`` is ``document``; it is kept in sync both ways while
    the connection is open.

    Args:
        document (Document) : the document to push
        session_id (str, optional) : the session, None for a new random one
        url (str, optional) : URL of a Bokeh application, or ``"default"``
        io_loop (IOLoop, optional) : a Tornado loop for document session callbacks
        max_message_size (int, optional) : largest message accepted from the server
        timeout (float, optional) : seconds for every blocking call of this
            session (default: 30) (bokehsync only)
        secret_key, sign_sessions, token_expiration, token, extra_payload : signed
            sessions and tokens (bokehsync only), see :class:`ClientSession`
        headers, cookies, origin, verify, ssl_context, proxy : the handshake,
            TLS and proxies (bokehsync only), see :class:`ClientSession`
        ping_interval, ping_timeout, reconnect : keepalive and reconnecting
            (bokehsync only), see :class:`ClientSession`
        progress (callable, optional) : ``progress(bytes_done, total)`` during
            the first pull or push (bokehsync only), see :meth:`ClientSession.pull`

    Returns:
        ClientSession : connected, serving ``document``

    Raises:
        ConnectionFailed (an OSError), ServerError, ConnectionLost, ReplyTimeout
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
                            ping_timeout=ping_timeout, reconnect=reconnect)
    try:
        session.push(document, progress=progress)
    except BaseException:
        session.close(flush=False)
        raise
    return session


def show_session(session_id: ID | None = None, url: str = "default", session: ClientSession | None = None,
        browser: str | None = None, new: BrowserTarget = "tab", controller: BrowserLike | None = None) -> None:
    ''' Open a browser displaying a session document.

    Args:
        session_id (str, optional) : the session, None for a new random one
        url (str, optional) : URL of a Bokeh application, or ``"default"``
        session (ClientSession, optional) : take the session id and server URL from it
        browser (str, optional) : which browser (see :mod:`webbrowser`)
        new (str, optional) : ``"tab"`` or ``"window"``
        controller (optional) : a ``webbrowser`` controller to use instead
    '''
    from bokeh.util.browser import NEW_PARAM, get_browser_controller
    if session is not None:
        server_url = server_url_for_websocket_url(session._connection.url)
        session_id = session.id
    else:
        coords = SessionCoordinates(session_id=session_id, url=url)
        server_url = coords.url
        session_id = coords.session_id
    if controller is None:
        controller = get_browser_controller(browser=browser)
    controller.open(server_url + "?bokeh-session-id=" + quote_plus(session_id), new=NEW_PARAM[new])


class ClientSession:
    ''' A connection to one server-side session, and its document.

    ``session.document`` is kept in sync both ways while connected: local
    changes go to the server as they happen, from the thread that made them;
    server changes are applied by the connection's reader thread under
    ``session.lock``, and are not echoed back.

    Use it as a context manager so it is closed (after a flush):

    .. code-block:: python

        with pull_session(url=app_url) as session:
            session.document.roots[0].title.text = "hello"
        # the change is on the server here

    Args:
        session_id (str, optional) : the session, None for a new random one
        websocket_url (str, optional) : ``ws(s)://`` URL ending in ``/ws``
        io_loop (IOLoop, optional) : a Tornado loop for document session callbacks
        arguments (dict[str, str], optional) : HTTP request arguments for the app
        max_message_size (int, optional) : largest message accepted from the server
        timeout (float, optional) : seconds for every blocking call (default: 30)
            (bokehsync only)
        secret_key (str or bytes, optional) : the server's secret key, to sign
            session ids and tokens (default: ``BOKEH_SECRET_KEY``, read now)
            (bokehsync only, like all below; see ``docs/deployment.rst``)
        sign_sessions (bool, optional) : sign them (default: ``BOKEH_SIGN_SESSIONS``)
        token_expiration (int, optional) : seconds each fresh token is valid
            (one is made at every connect; default: 300)
        token (str, optional) : a token issued elsewhere, used as is
        extra_payload (dict, optional) : carried in each token, as the server's
            page does: the app sees its ``headers``/``cookies``/``arguments``
        headers (dict, optional) : extra HTTP headers of the websocket request
        cookies (dict, optional) : cookies of the websocket request (only these)
        origin (str, optional) : an ``Origin`` header (default: none is sent)
        verify (bool or str, optional) : verify the server's TLS certificate
            (default: True), or a CA bundle file to verify it with; False
            skips verification (insecure; logs a warning)
        ssl_context (ssl.SSLContext, optional) : the TLS context to use
        proxy (str or False, optional) : ``http://host:port`` of an HTTP
            CONNECT proxy, False for none (default: ``HTTPS_PROXY`` /
            ``HTTP_PROXY`` unless ``NO_PROXY`` matches)
        ping_interval (float, optional) : seconds of silence from the server
            before a keepalive ping; None turns keepalive off (default: 20)
        ping_timeout (float, optional) : seconds to wait for its answer before
            the connection counts as lost (default: 20)
        reconnect (Reconnect, bool or int, optional) : reconnect after an
            unexpected loss: True for the default policy, an int for that many
            attempts, or a :class:`~bokehsync.Reconnect` (default: None, as
            bokeh.client). A pulled session pulls again (the server wins), a
            pushed one pushes its document again (it wins). See
            ``docs/reliability.rst``.

    Raises:
        ValueError, TypeError: deployment options that contradict each other
            or are malformed
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
            reconnect: Reconnect | bool | int | None = None) -> None:
        self._document = None
        websocket_url = to_websocket_url(websocket_url)
        self._handshake = HandshakeOptions(
            websocket_url, secret_key=secret_key, sign_sessions=sign_sessions, token_expiration=token_expiration,
            token=token, extra_payload=extra_payload, headers=headers, cookies=cookies, origin=origin,
            verify=verify, ssl_context=ssl_context, proxy=proxy)
        self._id = self._handshake.session_id(session_id)
        self._lock = threading.RLock()
        self._applying = threading.local()
        self._callback_group: Any = None
        self._batch: list[Any] | None = None
        self._batch_patches: list[Message[Any]] = []
        self._mode: str | None = None
        self._hooks: dict[str, list[Callable[..., Any]]] = {"disconnect": [], "reconnect": []}
        self._connection = ClientConnection(session=self, websocket_url=websocket_url, io_loop=io_loop,
                                            arguments=arguments, max_message_size=max_message_size,
                                            timeout=check_timeout(timeout), ping_interval=ping_interval,
                                            ping_timeout=ping_timeout, reconnect=reconnect)

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
        return self._connection.error_reason

    @property
    def error_code(self) -> int | None:
        return self._connection.error_code

    @property
    def error_detail(self) -> str:
        return self._connection.error_detail

    @property
    def url(self) -> str:
        return self._connection.url

    @property
    def document(self) -> Document:
        ''' The ``Document`` kept in sync with the server's; None until
        :meth:`pull` or :meth:`push` succeeds.
        '''
        return self._document  # type: ignore[return-value]

    @property
    def id(self) -> ID:
        ''' The session id. '''
        return self._id

    @property
    def token(self) -> str:
        ''' A fresh token for this session id (never logged), or ``token=``. '''
        return self._handshake.token(self.id)

    @property
    def lock(self) -> threading.RLock:
        ''' The document lock (see the module docs). (bokehsync only) '''
        return self._lock  # type: ignore[return-value]

    @property
    def timeout(self) -> float:
        ''' Default seconds for every blocking call. (bokehsync only) '''
        return self._connection.timeout

    # Public methods ----------------------------------------------------------

    def connect(self, *, timeout: float | None = None) -> None:
        ''' Connect to the server (does not raise; see :meth:`check_connection_errors`). '''
        self._connection.connect(timeout=timeout)

    def close(self, why: str = "closed", *, flush: bool = True, timeout: float | None = None) -> None:
        ''' Close the connection, after a flush.

        Args:
            why (str, optional) : reason sent to the server
            flush (bool, optional) : wait first until every change sent so far
                is acknowledged (default: True) (bokehsync only)
            timeout (float, optional) : seconds for that flush (bokehsync only)

        Raises:
            ServerError: the server rejected a change (the session is closed anyway)
            ConnectionLost, ReplyTimeout: changes could not be confirmed
        '''
        self._connection.close(why, flush=flush, timeout=timeout)

    def flush(self, timeout: float | None = None) -> None:
        ''' Block until every change sent so far is acknowledged by the server.
        (bokehsync only)

        Args:
            timeout (float, optional) : seconds (default: the session timeout)

        Raises:
            ServerError: the server rejected a change; its text and traceback
            ConnectionLost: the connection died with changes unacknowledged
            ReplyTimeout: not acknowledged in time
        '''
        self._connection.flush(timeout=timeout)

    def force_roundtrip(self, *, timeout: float | None = None) -> None:
        ''' Send a request and wait for its reply: every change sent before it
        has been processed by the server when this returns.
        '''
        self._connection.force_roundtrip(timeout=timeout)

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
            timeout (float, optional) : seconds (bokehsync only)
            progress (callable, optional) : ``progress(bytes_done, total)``
                as the document arrives (``total`` is None until the end);
                called on a bokehsync thread (bokehsync only)

        Raises:
            ConnectionFailed, ServerError, ConnectionLost, ReplyTimeout
        '''
        self.connect(timeout=timeout)
        self.check_connection_errors()
        if self._document is None:
            from bokeh.document import Document
            doc = Document()
        else:
            doc = self._document
        self._connection.pull_doc(doc, timeout=timeout, progress=progress)
        self._mode = self._mode or "pull"

    def push(self, document: Document | None = None, *, timeout: float | None = None,
            progress: Progress | None = None) -> None:
        ''' Push ``document`` to the server and keep it as ``session.document``.

        Args:
            document (Document, optional) : None for ``session.document`` (or
                a new empty document); it must be ``session.document`` if set
            timeout (float, optional) : seconds (bokehsync only)
            progress (callable, optional) : ``progress(bytes_sent, total)``
                as the document is sent; called on the sending thread
                (bokehsync only)

        Raises:
            ValueError: a different document than ``session.document``
            ConnectionFailed, ServerError, ConnectionLost, ReplyTimeout
        '''
        if self._document is None:
            if document is None:
                from bokeh.document import Document
                doc = Document()
            else:
                doc = document
        elif document is None or document is self._document:
            doc = self._document
        else:
            raise ValueError("Cannot push() a different document from existing session.document")
        self.connect(timeout=timeout)
        self.check_connection_errors()

        def snapshot() -> Message[Any]:
            # Under session.lock: the PUSH-DOC, listening to the document, and
            # queueing happen in one step, so no change falls in between.
            from ._wire import PROTOCOL
            message = PROTOCOL.create('PUSH-DOC', doc)
            if self._document is None:
                self._attach_document(doc)
            return message
        self._connection._push(snapshot, timeout=timeout, progress=progress, lock=self._lock)
        self._mode = self._mode or "push"

    def request_server_info(self, *, timeout: float | None = None) -> dict[str, Any]:
        ''' Ask the server for its version information.

        Returns:
            dict : ``{"version_info": {"bokeh": ..., "server": ...}}``
        '''
        return self._connection.request_server_info(timeout=timeout)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        ''' Send the changes made inside the block as one PATCH-DOC when the
        outermost block ends. (bokehsync only)

        Holds ``session.lock`` for the block, so server changes are applied
        before or after it, never in the middle.
        '''
        with self._lock:
            outer = self._batch is None
            if outer:
                self._batch = []
                self._batch_patches = []
            try:
                yield
            finally:
                if outer:
                    events, self._batch = self._batch or [], None
                    patches = self._batch_patches + (self._serialize_events(events) if events else [])
                    self._batch_patches = []
                    if patches:
                        self._connection._check_process()
                        # Queued together, they go out merged into one PATCH-DOC
                        # (or a few, if they add up to more than a few MiB).
                        self._connection._queue_patches(patches)
        if outer:
            self._connection._pump_patches()

    def show(self, obj: UIElement | None = None, browser: str | None = None,
            new: Literal["tab", "window"] = "tab") -> None:
        ''' Open a browser displaying this session.

        Args:
            obj (UIElement, optional) : added to the document first if not a root
            browser (str, optional) : which browser
            new (str, optional) : ``"tab"`` or ``"window"``
        '''
        if obj and obj not in self.document.roots:
            self.document.add_root(obj)
        show_session(session=self, browser=browser, new=new)

    # Internal methods --------------------------------------------------------

    @property
    def _callbacks(self) -> Any:
        ''' The ``DocumentCallbackGroup``-like runner of document session
        callbacks, created (with the io_loop) on first use.
        '''
        if self._callback_group is None:
            from ._callbacks import SessionCallbacks
            self._callback_group = SessionCallbacks(self._connection._loop, self._lock)
        return self._callback_group

    def _handshake_options(self) -> dict[str, Any]:
        ''' Keyword arguments for websocket-client's ``connect``, with a
        fresh token (each connect).

        Raises:
            ConnectionFailed: the ``token=`` given has expired
        '''
        return self._handshake.connect_kwargs(self.token)

    def _lock_held_by_me(self) -> bool:
        return self._lock._is_owned()  # type: ignore[attr-defined]

    def _attach_document(self, document: Document) -> None:
        self._document = document
        document.callbacks.on_change_dispatch_to(self)
        if document.session_callbacks:
            self._callbacks.add_session_callbacks(document.session_callbacks)

    def _document_patched(self, event: DocumentPatchedEvent) -> None:
        ''' A change of ``session.document``: runs in the thread that made it. '''
        if event.setter is self or getattr(self._applying, "active", False):
            return
        with self._lock:
            if self._batch is not None:
                self._batch.append(event)
                if is_heavy(event):
                    # Serialize now rather than keep the column's versions alive.
                    self._batch_patches.extend(self._serialize_events(self._batch))
                    self._batch = []
                return
            self._queue_events([event])
        self._connection._pump_patches()

    def _queue_events(self, events: list[Any]) -> None:
        ''' Queue change events for the server, in order (holding ``session.lock``).

        Light events are queued as they are and serialized when sent, so a
        burst costs one serialization. Column events (and any large change)
        are serialized now, together with the light ones queued before them:
        such an event keeps the column's old and new values alive until it
        is serialized, which for numpy columns is a full copy per event.
        '''
        assert self._lock._is_owned()  # type: ignore[attr-defined]
        if not events:
            return
        connection = self._connection
        connection._check_process()
        if any(is_heavy(event) for event in events):
            run = connection._take_queued_events() + events
            connection._queue_patches(self._serialize_events(run))
        else:
            connection._queue_events(events)

    def _serialize_events(self, events: list[Any]) -> list[Message[Any]]:
        ''' PATCH-DOCs for queued events, oldest first, each of a bounded size.

        Runs in the sending thread, holding ``session.lock`` so the document
        does not change while it is serialized.
        '''
        from ._wire import PROTOCOL
        messages = []
        with self._lock:
            for group in size_groups(events):
                messages.append(PROTOCOL.create('PATCH-DOC', group))
        return messages

    def _apply_server_patch(self, message: Message[Any]) -> None:
        ''' Apply a server PATCH-DOC (reader thread). '''
        doc = self._document
        if doc is None:
            log.debug("dropping a server patch: no document yet")
            return
        with self._lock:
            try:
                message.apply_to_document(doc, self)
            except Exception:
                log.exception("applying a server change to session %s failed", self._id)

    def _apply_pulled(self, reply: Message[Any], document: Document) -> None:
        ''' Apply a PULL-DOC-REPLY (reader thread), in order with server patches. '''
        with self._lock:
            self._applying.active = True
            try:
                reply.push_to_document(document)
            finally:
                self._applying.active = False
            if self._document is None:
                self._attach_document(document)

    def _handle_patch(self, message: Message[Any]) -> None:
        ''' Apply a server PATCH-DOC (kept for code written against bokeh.client). '''
        self._apply_server_patch(message)

    @classmethod
    def _ensure_session_id(cls, session_id: ID | None) -> ID:
        if session_id is None:
            session_id = generate_session_id()
        return session_id

    def _loop_until_closed(self) -> None:
        ''' Block until the connection closes (kept from bokeh.client). '''
        self._connection.loop_until_closed()

    def _notify_disconnected(self) -> None:
        ''' Called by the connection when it closes for good (idempotent). '''
        if self._document is not None:
            try:
                self._document.remove_on_change(self)
            except KeyError:
                pass  # removed already
        if self._callback_group is not None:
            self._callback_group.remove_all_callbacks()

    def _run_hooks(self, kind: str, error: BaseException | None) -> None:
        ''' Call the on_disconnect / on_reconnect callbacks (never raises). '''
        for callback in list(self._hooks[kind]):
            try:
                if kind == "disconnect":
                    callback(self, error)
                else:
                    callback(self)
            except Exception:
                log.exception("%s callback %r of session %s failed", kind, callback, self._id)

    def _resync(self) -> None:
        ''' After a reconnect: pull again (server wins) or push again (we win). '''
        connection = self._connection
        doc = self._document
        if doc is None:
            return
        if self._mode == "push":
            from ._wire import PROTOCOL
            connection._push(lambda: PROTOCOL.create('PUSH-DOC', doc), timeout=None, lock=self._lock)
            connection._take_offline_changes()
            connection._forget_lost_patches()
            return
        connection.pull_doc(doc)
        lost = connection._take_offline_changes()
        if lost:
            error = ConnectionLost(f"{lost} document change(s) made while disconnected were not sent: the "
                                   "session was pulled again and the server's state won", self.url)
            log.error("%s", error)
            with connection.outbox_mutex:
                connection._patch_errors.append(error)

    def on_disconnect(self, callback: Callable[[ClientSession, BaseException | None], Any]) -> Callable[..., Any]:
        ''' Register ``callback(session, error)``, called (on a bokehsync
        thread) when the connection is lost unexpectedly, and again if
        reconnecting gives up. Usable as a decorator. (bokehsync only)
        '''
        self._hooks["disconnect"].append(callback)
        return callback

    def on_reconnect(self, callback: Callable[[ClientSession], Any]) -> Callable[..., Any]:
        ''' Register ``callback(session)``, called (on a bokehsync thread)
        after a reconnect and resync succeeded. Usable as a decorator.
        (bokehsync only)
        '''
        self._hooks["reconnect"].append(callback)
        return callback

    def _session_callback_added(self, event: SessionCallbackAdded) -> None:
        self._callbacks.add_session_callback(event.callback)

    def _session_callback_removed(self, event: SessionCallbackRemoved) -> None:
        self._callbacks.remove_session_callback(event.callback)
