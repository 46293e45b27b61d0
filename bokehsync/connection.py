''' ``ClientConnection``: one websocket to a Bokeh server session.

Threads of a connection:

* **callers** (any thread): send requests and document patches, then wait on
  a ``concurrent.futures.Future`` for the reply;
* **reader** ``bokehsync-reader-<session>`` (one, started after the server's
  ACK, daemon so an open session never blocks interpreter exit): the only
  thread that reads the socket; it assembles Bokeh messages, resolves
  futures by ``reqid``, applies server PATCH-DOCs to the session document,
  answers pings, and on its way out fails every pending future, closes the
  socket and marks the connection DISCONNECTED;
* **io_loop** ``bokehsync-ioloop-<session>``: only if something needs it (see
  ``_loop``).

Locks, always taken in this order, and never held while waiting for a reply:

* ``send_lock``: one message's frames at a time on the wire (held while
  writing, which may wait for the socket up to the call's deadline);
* ``outbox_mutex``: the queue of messages waiting for ``send_lock``;
* ``state_mutex``: the connection state;
* ``Pending.pending_mutex`` and ``Transport.socket_mutex``: leaves.
'''
from __future__ import annotations

import atexit
import contextlib
import logging
import os
import ssl
import threading
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, wait
from typing import TYPE_CHECKING, Any

import websocket
from bokeh.protocol.message import Message
from bokeh.util.strings import format_url_query_arguments

from . import _frames
from ._compat import FutureTimeout
from ._deadline import Deadline, check_timeout
from ._handshake import private_cookies, proxy_in
from ._keepalive import Keepalive
from ._loop import LoopThread
from ._pending import Pending
from ._reconnect import Reconnect, as_policy
from ._transport import RECV_SIZE, Transport, WouldBlockTimeout
from ._wire import PROTOCOL, Assembler, Progress, encode_messages, merge_runs, report_progress
from .exceptions import (
    BokehSyncError,
    ConnectionFailed,
    ConnectionLost,
    ConnectionRejected,
    ProtocolViolation,
    ReplyTimeout,
    ServerError,
    WrongProcess,
)
from .states import (
    CONNECTED_AFTER_ACK,
    CONNECTED_BEFORE_ACK,
    DISCONNECTED,
    NOT_YET_CONNECTED,
    ErrorReason,
    State,
)

if TYPE_CHECKING:
    from bokeh.document import Document
    from tornado.ioloop import IOLoop

    from .session import ClientSession

__all__ = (
    'DEFAULT_TIMEOUT',
    'ClientConnection',
)

log = logging.getLogger(__name__)

#: Seconds a blocking call waits when no timeout is given.
DEFAULT_TIMEOUT = 30.0

#: Seconds of silence before a keepalive ping, and to wait for its answer.
DEFAULT_PING_INTERVAL = 20.0
DEFAULT_PING_TIMEOUT = 20.0

#: Seconds ``close()`` waits for the server to answer its close frame.
CLOSE_HANDSHAKE_TIMEOUT = 2.0

#: PATCH-DOCs in flight before further changes wait, merged, for an OK.
PATCH_WINDOW = 1

#: Connections alive in this process, closed at interpreter exit and
#: disowned in a forked child.
_LIVE: weakref.WeakSet[ClientConnection] = weakref.WeakSet()


class _Events(list):  # type: ignore[type-arg]
    ''' A run of queued document change events, serialized when sent. '''


class ClientConnection:
    ''' A websocket connection to a Bokeh server session.

    Users normally use :class:`~bokehsync.ClientSession`; this class has the
    API of ``bokeh.client.connection.ClientConnection``.

    Args:
        session (ClientSession) : the session that owns this connection
        websocket_url (str) : ``ws://`` or ``wss://`` URL ending in ``/ws``
        io_loop (IOLoop, optional) : a Tornado loop for document session
            callbacks, used as given; by default one is started on its own
            thread when first needed
        arguments (dict[str, str], optional) : HTTP request arguments for the app
        max_message_size (int, optional) : the largest message accepted from
            the server, in bytes (default: 20 MiB)
        timeout (float, optional) : default seconds for every blocking call
            (default: 30)
        ping_interval (float, optional) : seconds of silence from the server
            before a keepalive ping; None turns keepalive off (default: 20)
        ping_timeout (float, optional) : seconds to wait for an answer to that
            ping before the connection counts as lost (default: 20)
        reconnect (Reconnect, bool or int, optional) : reconnect after an
            unexpected loss (default: None, no reconnecting, as bokeh.client)
    '''

    def __init__(self, session: ClientSession, websocket_url: str, io_loop: IOLoop | None = None,
            arguments: dict[str, str] | None = None, max_message_size: int = 20*1024*1024, *,
            timeout: float = DEFAULT_TIMEOUT, ping_interval: float | None = DEFAULT_PING_INTERVAL,
            ping_timeout: float = DEFAULT_PING_TIMEOUT, reconnect: Reconnect | bool | int | None = None) -> None:
        self._session = session
        self._url = websocket_url
        self._arguments = arguments
        self._max_message_size = max_message_size
        self._timeout = check_timeout(timeout)
        self._ping_interval = None if ping_interval is None else check_timeout(ping_interval, "ping_interval")
        self._ping_timeout = check_timeout(ping_timeout, "ping_timeout")
        self._policy = as_policy(reconnect)
        self._pid = os.getpid()
        self._name = f"{str(session.id)[:8]}"
        self._loop = LoopThread(f"bokehsync-ioloop-{self._name}", io_loop)
        self._init_runtime()
        _LIVE.add(self)

    def _init_runtime(self) -> None:
        ''' The mutable machinery, fresh (also in a forked child). '''
        self.send_lock = threading.Lock()
        self.outbox_mutex = threading.Lock()
        self.state_mutex = threading.Lock()
        self._state: State = NOT_YET_CONNECTED()
        self._closed_event = threading.Event()
        self._pending = Pending()
        self._outbox: deque[Message[Any] | _Events] = deque()
        self._unacked: set[Future[Any]] = set()
        self._patch_errors: list[BokehSyncError] = []
        self._transport: Transport | None = None
        self._reader: threading.Thread | None = None
        self._closing = False
        self._server_info: dict[str, Any] | None = None
        self._error: BokehSyncError | None = None
        self._reconnector: threading.Thread | None = None
        self._reconnecting = False
        self._stop_reconnecting = threading.Event()
        self._offline_changes = 0
        self._pull_progress: dict[str, Progress] = {}
        self._pushes: set[str] = set()
        self._requests_queued = False

    # Properties --------------------------------------------------------------

    @property
    def connected(self) -> bool:
        ''' Whether the websocket is open and the server has sent its ACK. '''
        return isinstance(self._state, CONNECTED_AFTER_ACK)

    @property
    def io_loop(self) -> IOLoop:
        ''' The Tornado ``IOLoop`` for document session callbacks.

        Created on first access, running on its own thread, unless one was
        passed in.
        '''
        return self._loop.get()

    @property
    def url(self) -> str:
        ''' The URL of the websocket this connection is to. '''
        return self._url

    @property
    def error_reason(self) -> ErrorReason | None:
        ''' Why the connection is closed (an ``ErrorReason``), or None while it is not. '''
        state = self._state
        return state.error_reason if isinstance(state, DISCONNECTED) else None

    @property
    def error_code(self) -> int | None:
        ''' The HTTP status or close code of a failure; 0 while not disconnected. '''
        state = self._state
        return state.error_code if isinstance(state, DISCONNECTED) else 0

    @property
    def error_detail(self) -> str:
        ''' The cause of a failure in words; empty while not disconnected. '''
        state = self._state
        return state.error_detail if isinstance(state, DISCONNECTED) else ""

    @property
    def error(self) -> BokehSyncError | None:
        ''' The exception that describes why the connection closed or never
        opened, or None. (bokehsync only)
        '''
        return self._error

    @property
    def timeout(self) -> float:
        ''' Default seconds for every blocking call. (bokehsync only) '''
        return self._timeout

    # Public methods ----------------------------------------------------------

    def connect(self, *, timeout: float | None = None) -> None:
        ''' Open the websocket and wait for the server's ACK.

        Like ``bokeh.client``, this does not raise when the server cannot be
        reached: the connection ends DISCONNECTED with ``error_reason``,
        ``error_code`` and ``error_detail`` set (and :attr:`error` holding
        the exception), and :meth:`ClientSession.check_connection_errors`
        raises it. Calling it on an open or closed connection does nothing.

        Args:
            timeout (float, optional) : seconds for the whole handshake
        '''
        self._check_process()
        with self.state_mutex:
            if not isinstance(self._state, NOT_YET_CONNECTED):
                return
            self._state = CONNECTED_BEFORE_ACK()
        deadline = Deadline(self._resolve(timeout))
        try:
            self._open(deadline)
        except BokehSyncError as e:
            self._fail_connect(e)
        except BaseException as e:
            self._fail_connect(ConnectionFailed(f"failed to connect: {e!r}", self._url))
            raise

    def close(self, why: str = "closed", *, flush: bool = True, timeout: float | None = None) -> None:
        ''' Close the connection: flush, send a close frame, stop the threads.

        Idempotent. Safe from any thread, the reader's included.

        Args:
            why (str, optional) : the reason sent in the close frame
            flush (bool, optional) : first wait until the server acknowledged
                every document change sent so far (bokehsync only)
            timeout (float, optional) : seconds for the flush (bokehsync only)

        Raises:
            ServerError, ConnectionLost, ReplyTimeout: from the flush, after
            the connection is closed
        '''
        if os.getpid() != self._pid:
            self._disown()
            return
        with self.state_mutex:
            state = self._state
            if isinstance(state, NOT_YET_CONNECTED):
                self._state = DISCONNECTED()
                self._closed_event.set()
            already = self._closing or isinstance(state, (NOT_YET_CONNECTED, DISCONNECTED))
            self._closing = True
            reconnector = self._reconnector
        self._stop_reconnecting.set()
        if reconnector is not None and reconnector is not threading.current_thread():
            reconnector.join(self._timeout)
        self._reconnecting = False
        flush_error: BokehSyncError | None = None
        if not already:
            if flush and self._can_wait():
                try:
                    self.flush(timeout=timeout)
                except BokehSyncError as e:
                    flush_error = e
            elif flush:
                # From the reader thread, or holding session.lock, waiting would
                # wait for ourselves (the reader, or a sender that needs the
                # lock): send what is queued if the wire is free, don't wait.
                flush_error = self._send_without_waiting(Deadline(self._resolve(timeout)))
            self._close_handshake(why)
        self._join_reader()
        self._loop.stop()
        if not self._closed_event.is_set():
            self._finish_disconnect()
        if flush_error is not None:
            raise flush_error

    def flush(self, *, timeout: float | None = None) -> None:
        ''' Block until the server acknowledged every document change sent so
        far, then report any it rejected. (bokehsync only)

        Args:
            timeout (float, optional) : seconds

        Raises:
            ServerError: the server rejected a change (its text and traceback)
            ConnectionLost: the connection died with changes unacknowledged
            ReplyTimeout: not all acknowledged in time
        '''
        self._check_process()
        self._check_not_blocking_reader("flush")
        deadline = Deadline(self._resolve(timeout))
        self._pump(block=True, deadline=deadline)
        with self.outbox_mutex:
            waiting = list(self._unacked)
        if waiting:
            _, not_done = wait(waiting, timeout=deadline.remaining())
            if not_done:
                raise ReplyTimeout(f"{len(not_done)} document patch(es) not acknowledged within "
                                   f"{deadline.timeout} s", self._url, msgid=None, timeout=deadline.timeout)
        with self.outbox_mutex:
            errors, self._patch_errors = self._patch_errors, []
        if errors:
            first = errors[0]
            if len(errors) > 1:
                log.error("%d document patches failed; raising the first", len(errors))
            raise first

    def force_roundtrip(self, *, timeout: float | None = None) -> None:
        ''' Send a request and wait for its reply: every change sent before
        has then been processed by the server.

        Args:
            timeout (float, optional) : seconds (bokehsync only)
        '''
        self._request(PROTOCOL.create('SERVER-INFO-REQ'), timeout=timeout)

    def loop_until_closed(self) -> None:
        ''' Block until the connection closes (e.g. by hitting Ctrl-C).

        Server updates are applied by the reader thread meanwhile. Ctrl-C
        closes the connection and returns.
        '''
        self._check_process()
        with self.state_mutex:
            if isinstance(self._state, NOT_YET_CONNECTED):
                self._state = DISCONNECTED()
                self._closed_event.set()
                closed_now = True
            else:
                closed_now = False
        if closed_now:
            self._session._notify_disconnected()
            return
        try:
            self._closed_event.wait()
        except KeyboardInterrupt:
            self.close("user interruption")

    def pull_doc(self, document: Document, *, timeout: float | None = None,
            progress: Progress | None = None) -> None:
        ''' Pull the session document from the server into ``document``.

        Args:
            document (Document) : overwritten with the server's content
            timeout (float, optional) : seconds (bokehsync only)
            progress (callable, optional) : ``progress(bytes_received, None)``,
                called on the reader thread as the reply arrives, and
                ``progress(total, total)`` at the end (bokehsync only)

        Raises:
            ServerError, ConnectionLost, ReplyTimeout
        '''
        message = PROTOCOL.create('PULL-DOC-REQ')
        msgid = message.header["msgid"]

        def apply(reply: Message[Any]) -> None:
            self._session._apply_pulled(reply, document)
            if progress is not None:
                total = len(reply.content_json) + sum(len(b.data) for b in reply.buffers)
                report_progress(progress, total, total)
        if progress is not None:
            self._pull_progress[msgid] = progress
        try:
            self._request(message, on_reply=apply, timeout=timeout, what="pull the document")
        finally:
            self._pull_progress.pop(msgid, None)

    def push_doc(self, document: Document, *, timeout: float | None = None,
            progress: Progress | None = None) -> Message[Any]:
        ''' Push ``document`` to the server, replacing the session document.

        Args:
            document (Document) : what to push
            timeout (float, optional) : seconds (bokehsync only)

        Returns:
            Message : the server's OK reply

        Raises:
            ServerError, ConnectionLost, ReplyTimeout
        '''
        return self._push(lambda: PROTOCOL.create('PUSH-DOC', document), timeout=timeout, progress=progress)

    def _push(self, make: Callable[[], Message[Any]], *, timeout: float | None,
            progress: Progress | None = None, lock: Any = None) -> Message[Any]:
        ''' Send a PUSH-DOC made by ``make()`` and wait for its OK.

        ``make()`` runs holding ``lock`` (``session.lock``), and the message is
        queued before the lock is released, so no document change can fall
        between the snapshot and the queue.

        The server answers a push by replacing its document, and broadcasts
        that replacement, to this connection too, as PATCH-DOCs sent before
        the OK. They describe the document we sent, so the reader drops the
        PATCH-DOCs that arrive while a push is unanswered (``bokeh.client``
        drops every message that arrives while it waits for a reply).
        '''
        what = "push the document"
        deadline = self._begin(what, timeout)
        pushes = self._pushes

        def answered(reply: Message[Any]) -> Message[Any]:
            with self.state_mutex:
                pushes.discard(reply.header["reqid"])
            return reply
        with lock if lock is not None else contextlib.nullcontext():
            message = make()
            msgid = message.header["msgid"]
            if progress is not None:
                message._bokehsync_progress = progress  # type: ignore[attr-defined]
            with self.state_mutex:
                pushes.add(msgid)
            future = self._submit(message, answered)
        try:
            return self._wait_reply(message, future, deadline, what)
        finally:
            with self.state_mutex:
                pushes.discard(msgid)

    def request_server_info(self, *, timeout: float | None = None) -> dict[str, Any]:
        ''' Ask the server for its version information (cached).

        Returns:
            dict : ``{"version_info": {"bokeh": ..., "server": ...}}``
        '''
        if self._server_info is None:
            reply = self._request(PROTOCOL.create('SERVER-INFO-REQ'), timeout=timeout)
            self._server_info = reply.content
        return self._server_info

    # Sending -----------------------------------------------------------------

    def _queue_events(self, events: list[Any]) -> None:
        ''' Queue document change events, to be serialized when sent.

        The caller holds ``session.lock``, which keeps the order of changes
        and the order of the queue the same.
        '''
        if not self.connected:
            if self.reconnecting:
                with self.outbox_mutex:
                    self._offline_changes += len(events)
                return
            log.debug("not connected: dropping %d document change(s) for %s", len(events), self._url)
            return
        with self.outbox_mutex:
            if self._outbox and isinstance(self._outbox[-1], _Events):
                self._outbox[-1].extend(events)
            else:
                self._outbox.append(_Events(events))

    def _take_queued_events(self) -> list[Any]:
        ''' Remove and return the events queued last, not yet serialized (the
        caller holds ``session.lock`` and serializes them itself).
        '''
        with self.outbox_mutex:
            if self._outbox and isinstance(self._outbox[-1], _Events):
                return list(self._outbox.pop())
        return []

    def _queue_patches(self, messages: list[Message[Any]]) -> None:
        ''' Queue PATCH-DOCs serialized already (the caller holds ``session.lock``). '''
        if not self.connected:
            self._queue_events([event for m in messages for event in m.content["events"]])
            return
        with self.outbox_mutex:
            self._outbox.extend(messages)

    def _pump_patches(self) -> None:
        ''' Send queued changes now, unless another thread is sending (it
        sends them) or a PATCH-DOC is still unacknowledged (they go, merged,
        when its OK arrives). Never blocks; failures are logged and reported
        by the next flush.
        '''
        if self._unacked and not self._requests_queued:
            # The window is full: the reader sends the queue when an OK
            # arrives (and it checks the queue after this change was added).
            # Checked without locks because it runs for every change.
            return
        try:
            self._pump(block=False, deadline=Deadline(self._timeout), force=False)
        except BokehSyncError as e:
            log.error("sending document changes to %s failed: %s", self._url, e)

    def _request(self, message: Message[Any], *, on_reply: Callable[[Message[Any]], Any] | None = None,
            timeout: float | None = None, what: str = "") -> Any:
        ''' Send a request and wait for its reply.

        Returns:
            the reply, or what ``on_reply`` returned for it
        '''
        deadline = self._begin(what or message.msgtype, timeout)
        future = self._submit(message, on_reply)
        return self._wait_reply(message, future, deadline, what)

    def _begin(self, what: str, timeout: float | None) -> Deadline:
        ''' The checks every blocking request starts with; its deadline. '''
        self._check_process()
        self._check_not_blocking_reader(what)
        deadline = Deadline(self._resolve(timeout))
        if not self.connected:
            raise self._not_connected(what)
        return deadline

    def _submit(self, message: Message[Any], on_reply: Callable[[Message[Any]], Any] | None) -> Future[Any]:
        ''' Register the reply's future and queue the request, in order. '''
        future = self._pending.add(message.header["msgid"], on_reply)
        with self.outbox_mutex:
            self._outbox.append(message)
            self._requests_queued = True
        return future

    def _wait_reply(self, message: Message[Any], future: Future[Any], deadline: Deadline, what: str) -> Any:
        ''' Send what is queued, then wait for ``future`` until ``deadline``. '''
        msgid = message.header["msgid"]
        try:
            self._pump(block=True, deadline=deadline)
        except BaseException:
            self._pending.abandon(msgid)  # a reply may still come: drop it quietly
            raise
        try:
            return future.result(timeout=deadline.remaining())
        except FutureTimeout:
            if not future.done():
                self._pending.abandon(msgid)
                raise ReplyTimeout(f"no reply to {message.msgtype} within {deadline.timeout} s",
                                   self._url, msgid=msgid, timeout=deadline.timeout) from None
            return future.result()
        except (ConnectionLost, ProtocolViolation) as e:
            # A fresh exception per caller: the shared cause is raised in
            # many threads at once and must not collect their tracebacks.
            raise type(e)(f"cannot {what or message.msgtype}: {e.message}", self._url, **e._context) from e
        except ServerError as e:
            if what:
                raise ServerError(f"failed to {what}: {e.message}", self._url, text=e.text,
                                  traceback=e.traceback, reqid=e.reqid) from e
            raise

    def _pump(self, block: bool, deadline: Deadline, force: bool = True) -> None:
        ''' Send what is queued, in order.

        ``force=False`` (a document change) returns at once if another thread
        holds ``send_lock`` (that thread sends what was queued before it
        releases the lock), and leaves trailing changes queued while
        ``PATCH_WINDOW`` PATCH-DOCs are unacknowledged: the reader sends them,
        merged into one PATCH-DOC, when an OK arrives. This coalesces bursts
        of changes without reordering anything. ``force=True`` (requests,
        flush) sends everything and waits for the lock.
        '''
        block = block or force
        while True:
            if block:
                if not self.send_lock.acquire(timeout=deadline.remaining()):
                    raise ReplyTimeout(f"could not send within {deadline.timeout} s: the connection "
                                       "is busy sending", self._url, msgid=None, timeout=deadline.timeout)
            elif not self.send_lock.acquire(blocking=False):
                return
            try:
                self._drain(force, deadline)
            finally:
                self.send_lock.release()
            with self.outbox_mutex:
                if not self._outbox or (not force and self._hold_back()):
                    return
            block = force

    def _drain(self, force: bool, deadline: Deadline) -> None:
        ''' Write what is queued until nothing (or only held-back changes) is left.
        Holds ``send_lock``.
        '''
        assert self.send_lock.locked()
        while True:
            # Drain and serialize holding session.lock: changes are then
            # serialized in the order they were queued, whoever serializes
            # them (see ClientSession._queue_events).
            with self._session._lock:
                with self.outbox_mutex:
                    if not self._outbox or (not force and self._hold_back()):
                        return
                    batch = list(self._outbox)
                    self._outbox.clear()
                    self._requests_queued = False
                messages = self._prepare(batch)
            self._write(messages, deadline)

    def _send_without_waiting(self, deadline: Deadline) -> BokehSyncError | None:
        ''' Send everything queued if no other thread is sending; never block.

        Returns:
            the error to report, if something could not be sent
        '''
        if not self.send_lock.acquire(blocking=False):
            with self.outbox_mutex:
                queued = len(self._outbox)
            if not queued:
                return None
            return ConnectionLost("close() was called from the reader thread or holding session.lock "
                                  "while another thread was sending: queued changes were not sent", self._url)
        try:
            self._drain(True, deadline)
        except BokehSyncError as e:
            return e
        finally:
            self.send_lock.release()
        log.warning("close() of %s from this thread cannot wait for acknowledgements: changes were sent "
                    "but not confirmed", self._url)
        return None

    def _hold_back(self) -> bool:
        ''' Whether queued changes wait for an acknowledgement. '''
        assert self.outbox_mutex.locked()
        return len(self._unacked) >= PATCH_WINDOW and not self._requests_queued

    def _prepare(self, batch: list[Message[Any] | _Events]) -> list[Message[Any]]:
        ''' Serialize queued events and merge neighbouring PATCH-DOCs (holding ``session.lock``). '''
        messages: list[Message[Any]] = []
        for item in batch:
            if isinstance(item, _Events):
                messages.extend(self._session._serialize_events(item))
            else:
                messages.append(item)
        return merge_runs(messages)

    def _write(self, messages: list[Message[Any]], deadline: Deadline) -> None:
        ''' Write messages in order, tracking each PATCH-DOC. Holds ``send_lock``. '''
        assert self.send_lock.locked()
        for message in messages:
            if message.msgtype == 'PATCH-DOC':
                self._track_patch(message)
        transport = self._transport
        try:
            if transport is None:
                raise BrokenPipeError("not connected")
            transport.send(encode_messages(messages), deadline=deadline.at)
        except (OSError, WouldBlockTimeout) as e:
            cause = ConnectionLost(f"sending to the server failed: {e!r}", self._url)
            cause.__cause__ = e
            self._abort(cause)
            raise cause from e

    def _track_patch(self, message: Message[Any]) -> None:
        future = self._pending.add(message.header["msgid"])
        with self.outbox_mutex:
            self._unacked.add(future)
        future.add_done_callback(self._patch_done)

    def _patch_done(self, future: Future[Any]) -> None:
        ''' Runs in the thread that resolved a patch's future (usually the reader). '''
        error = future.exception()
        with self.outbox_mutex:
            self._unacked.discard(future)
            if error is not None:
                self._patch_errors.append(error if isinstance(error, BokehSyncError)
                                          else ConnectionLost(repr(error), self._url))
        if isinstance(error, ServerError):
            log.error("the server at %s rejected a document patch: %s", self._url, error.text)
        elif error is None and self._outbox:
            # An acknowledgement opened the window: send what waited for it.
            self._pump_patches()

    # Connecting --------------------------------------------------------------

    def _open(self, deadline: Deadline) -> None:
        ''' The handshake: websocket upgrade, then the server's ACK. '''
        url = format_url_query_arguments(self._url, self._arguments)
        # A fresh token, headers, cookies, TLS and proxy settings (see _handshake).
        options = self._session._handshake_options()
        # websocket-client takes the TLS options in the constructor, not in connect().
        ws = websocket.WebSocket(skip_utf8_validation=True, sslopt=options.pop("sslopt", None))
        try:
            with private_cookies():
                ws.connect(url, timeout=deadline.remaining(), **options)
        except websocket.WebSocketBadStatusException as e:
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
            raise ConnectionFailed(detail, self._url, status=status) from e
        except (TimeoutError, websocket.WebSocketTimeoutException) as e:
            raise ReplyTimeout(f"connecting timed out after {deadline.timeout} s", self._url,
                               msgid=None, timeout=deadline.timeout) from e
        except ssl.SSLError as e:
            hint = ("; pass verify='ca.pem' or ssl_context= to trust its CA (or verify=False, insecure)"
                    if isinstance(e, ssl.SSLCertVerificationError) else "")
            raise ConnectionFailed(f"TLS error: {e}{hint}", self._url) from e
        except ConnectionRefusedError as e:
            if proxy_in(options):
                raise ConnectionFailed(f"connection refused by the proxy {proxy_in(options)}", self._url) from e
            raise ConnectionFailed("connection refused: is the Bokeh server running? "
                                   "(start one with 'bokeh serve')", self._url) from e
        except OSError as e:
            raise ConnectionFailed(f"network error: {e}", self._url) from e
        except websocket.WebSocketProxyException as e:
            raise ConnectionFailed(f"the proxy refused the tunnel: {e}", self._url) from e
        except websocket.WebSocketException as e:
            raise ConnectionFailed(f"websocket handshake failed: {e}", self._url) from e
        sock = ws.sock
        ws.sock = None  # the socket is ours now; websocket-client must not touch it again
        transport = Transport(sock)
        self._transport = transport
        parser = _frames.FrameParser(self._max_message_size, self._url)
        assembler = Assembler(self._url)
        early = self._wait_for_ack(transport, parser, assembler, deadline)
        with self.state_mutex:
            if self._closing:
                raise ConnectionLost("closed while connecting", self._url)
            self._state = CONNECTED_AFTER_ACK()
        self._reader = threading.Thread(target=self._run_reader, args=(parser, assembler, early),
                                        name=f"bokehsync-reader-{self._name}", daemon=True)
        self._reader.start()
        log.debug("connected to %s", self._url)

    def _wait_for_ack(self, transport: Transport, parser: _frames.FrameParser, assembler: Assembler,
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
                    raise ReplyTimeout(f"the server upgraded the websocket but sent no ACK within "
                                       f"{deadline.timeout} s", self._url, msgid=None,
                                       timeout=deadline.timeout) from None
                except OSError as e:
                    raise self._rejected(None, f"the connection broke right after the upgrade ({e!r})") from e
                if n == 0:
                    raise self._rejected(None, "the socket closed right after the upgrade")
                events = parser.feed(view[:n])
                for i, event in enumerate(events):
                    if isinstance(event, _frames.Close):
                        raise self._rejected(event, "")
                    if isinstance(event, (_frames.Ping, _frames.Pong)):
                        continue
                    message = assembler.feed(event)
                    if message is None:
                        continue
                    if message.msgtype != 'ACK':
                        raise ProtocolViolation(f"bokeh protocol violation: expected ACK, got "
                                                f"{message.msgtype}", self._url)
                    return events[i + 1:]
        except BaseException:
            transport.close()
            raise

    def _rejected(self, close: _frames.Close | None, what: str) -> ConnectionRejected:
        code = close.code if close else None
        reason = close.reason if close else ""
        got = what or ("the server closed the connection right after the upgrade ("
                       + (f"code {code}" if code is not None else "no close code")
                       + (f", reason {reason!r})" if reason else ")"))
        return ConnectionRejected(
            f"{got}, before its ACK: the server refused the session. Likely causes: an invalid or "
            "expired session token (check secret_key / sign_sessions / token_expiration), or the "
            "server's auth hook rejected the request", self._url, close_code=code, close_reason=reason)

    def _fail_connect(self, error: BokehSyncError) -> None:
        if isinstance(error, ConnectionFailed) and getattr(error, "status", None) is not None:
            state = DISCONNECTED(ErrorReason.HTTP_ERROR, error.status, error.message)
        elif isinstance(error, ConnectionRejected):
            state = DISCONNECTED(ErrorReason.HTTP_ERROR, error.close_code, error.message)
        else:
            state = DISCONNECTED(ErrorReason.NETWORK_ERROR, None, error.message)
        log.info("connecting to %s failed: %s", self._url, error)
        with self.state_mutex:
            self._error = error
            self._state = state
        self._pending.fail_all(error)
        if threading.current_thread() is not self._reconnector:
            self._finish_disconnect()

    # The reader thread -------------------------------------------------------

    def _run_reader(self, parser: _frames.FrameParser, assembler: Assembler,
            early: list[_frames.Event]) -> None:
        ''' Body of the reader thread: read, assemble, dispatch, until closed. '''
        transport = self._transport
        assert transport is not None
        cause: BokehSyncError | None = None
        reason = ErrorReason.NETWORK_ERROR
        code: int | None = None
        buf = bytearray(RECV_SIZE)
        view = memoryview(buf)
        keepalive = Keepalive(self._ping_interval, self._ping_timeout)
        received = 0  # bytes of a reply with a progress callback, so far
        try:
            events = early
            while True:
                for event in events:
                    if isinstance(event, _frames.Close):
                        code = event.code
                        cause, reason = self._on_close_frame(event)
                        return
                    if isinstance(event, _frames.Ping):
                        self._send_control(_frames.OP_PONG, event.payload)
                    elif isinstance(event, _frames.Pong):
                        pass
                    else:
                        message = assembler.feed(event)
                        if message is not None:
                            self._dispatch(message)
                        parser.discard_binary = self._is_push_echo(assembler.partial_header)
                try:
                    n = transport.recv(buf, deadline=keepalive.deadline())
                except WouldBlockTimeout:
                    if keepalive.expired():
                        cause = ConnectionLost(f"no answer to a keepalive ping within {keepalive.timeout} s: "
                                               "the server or the network stopped responding", self._url)
                        return
                    if self._send_control(_frames.OP_PING, b"bokehsync"):
                        keepalive.pinged()
                    else:
                        keepalive.traffic()  # busy sending: try again later
                    events = []
                    continue
                keepalive.traffic()
                if self._pull_progress:
                    header = assembler.partial_header
                    callback = self._pull_progress.get(header.get("reqid")) if header else None
                    if callback is not None:
                        received += n
                        report_progress(callback, received, None)
                    else:
                        received = n
                if n == 0:
                    if self._closing:
                        reason = ErrorReason.NO_ERROR
                    else:
                        cause = ConnectionLost("the server closed the connection without a close frame",
                                               self._url)
                    return
                events = parser.feed(view[:n])
        except ProtocolViolation as e:
            log.error("%s", e)
            cause, code = e, 1002
            self._send_control(_frames.OP_CLOSE, _frames.close_payload(1002, "protocol error"))
        except OSError as e:
            if self._closing:
                reason = ErrorReason.NO_ERROR
            else:
                cause = ConnectionLost(f"the connection broke: {e!r}", self._url)
                cause.__cause__ = e
        except BaseException as e:
            log.exception("the reader thread of %s failed", self._url)
            cause = ConnectionLost(f"the reader thread failed: {e!r}", self._url)
            cause.__cause__ = e
        finally:
            self._reader_exit(cause, reason, code)

    def _on_close_frame(self, close: _frames.Close) -> tuple[BokehSyncError | None, ErrorReason]:
        ''' The server sent a close frame: answer it, and say what it meant. '''
        if not self._closing:
            payload = _frames.close_payload(close.code, "") if close.code else b""
            self._send_control(_frames.OP_CLOSE, payload)
        if self._closing and close.code in (None, 1000, 1001):
            return None, ErrorReason.NO_ERROR
        detail = f"the server closed the connection (code {close.code}"
        if close.code in (10000, 10001):
            detail += ", Bokeh protocol error"
        elif close.code == 1009:
            detail += ", message too big: raise the server's --websocket-max-message-size"
        detail += f", reason {close.reason!r})" if close.reason else ")"
        return ConnectionLost(detail, self._url, close_code=close.code, close_reason=close.reason), \
            ErrorReason.NETWORK_ERROR

    def _dispatch(self, message: Message[Any]) -> None:
        ''' Route one complete message (reader thread). '''
        reqid = message.header.get("reqid")
        msgtype = message.msgtype
        if reqid is not None:
            entry = self._pending.pop(reqid)
            if entry is None:
                if self._pending.was_abandoned(reqid):
                    log.debug("dropping the late reply %s to %s", msgtype, reqid)
                    return
                raise ProtocolViolation(f"bokeh protocol violation: {msgtype} answers unknown request "
                                        f"{reqid!r}", self._url)
            future, on_reply = entry
            if msgtype == 'ERROR':
                content = message.content if isinstance(message.content, dict) else {}
                text = str(content.get("text", ""))
                future.set_exception(ServerError(f"the server answered ERROR: {text}", self._url,
                                                 text=text, traceback=content.get("traceback"),
                                                 reqid=reqid))
                return
            try:
                result = on_reply(message) if on_reply is not None else message
            except BaseException as e:
                future.set_exception(e)
            else:
                future.set_result(result)
            return
        if msgtype == 'PATCH-DOC':
            if self._pushes:
                log.debug("dropping the server's echo of a pushed document")
                return
            self._session._apply_server_patch(message)
        elif msgtype == 'ERROR':
            log.error("the server at %s sent an ERROR: %s", self._url, message.content)
        else:
            raise ProtocolViolation(f"bokeh protocol violation: unexpected unsolicited {msgtype}", self._url)

    def _is_push_echo(self, header: dict[str, Any] | None) -> bool:
        ''' Whether a message being assembled is a server PATCH-DOC that
        :meth:`_push` will drop: its buffers need not be kept in memory.
        '''
        return bool(self._pushes) and header is not None and header.get("msgtype") == "PATCH-DOC" \
            and "reqid" not in header

    def _send_control(self, opcode: int, payload: bytes) -> bool:
        ''' Send a ping, pong or close frame (any thread); failures are only logged.

        Returns:
            bool : whether the frame was written
        '''
        transport = self._transport
        if transport is None:
            return False
        deadline = Deadline(min(self._timeout, CLOSE_HANDSHAKE_TIMEOUT))
        if not self.send_lock.acquire(timeout=deadline.remaining()):
            log.debug("could not send control frame %#x: the connection is busy", opcode)
            return False
        try:
            transport.send([_frames.encode_frame(opcode, payload)], deadline=deadline.at)
            return True
        except (OSError, WouldBlockTimeout) as e:
            log.debug("could not send control frame %#x: %r", opcode, e)
            return False
        finally:
            self.send_lock.release()

    def _reader_exit(self, cause: BokehSyncError | None, reason: ErrorReason, code: int | None) -> None:
        ''' Last acts of the reader thread: state, futures, socket, session. '''
        if cause is None and reason is not ErrorReason.NO_ERROR:
            cause = ConnectionLost("the connection closed", self._url)
        detail = cause.message if cause is not None else ""
        with self.state_mutex:
            if cause is not None and self._error is None:
                self._error = cause
            # Decided together with the state change, so a change made the
            # moment ``connected`` turns False already counts as offline.
            reconnect = cause is not None and self._policy is not None and not self._closing
            start_reconnector = reconnect and not self._reconnecting
            self._reconnecting = reconnect
            self._state = DISCONNECTED(reason, code, detail)
        lost = cause or ConnectionLost("the connection was closed", self._url)
        self._pending.fail_all(lost)
        if self._transport is not None:
            self._transport.close()
        if cause is not None:
            log.warning("connection to %s lost: %s", self._url, detail)
            self._session._run_hooks("disconnect", cause)
        if start_reconnector:
            with self.state_mutex:
                self._reconnector = threading.Thread(target=self._run_reconnect, args=(cause,),
                                                     name=f"bokehsync-reconnect-{self._name}", daemon=True)
                self._reconnector.start()
        elif not reconnect:
            self._finish_disconnect()

    def _finish_disconnect(self) -> None:
        ''' The connection is closed for good: wake waiters, detach the document. '''
        self._closed_event.set()
        try:
            self._session._notify_disconnected()
        except Exception:
            log.exception("notifying the session of %s about the disconnect failed", self._url)

    # Reconnecting ------------------------------------------------------------

    @property
    def reconnecting(self) -> bool:
        ''' Whether the connection was lost and is being re-established. (bokehsync only) '''
        return self._reconnecting

    def _run_reconnect(self, cause: BokehSyncError) -> None:
        ''' Body of the reconnect thread: attempts with backoff, then resync. '''
        policy = self._policy
        assert policy is not None
        last: BaseException = cause
        for attempt, delay in enumerate(policy.delays(), 1):
            if self._stop_reconnecting.wait(delay):
                self._reconnecting = False
                return
            with self.state_mutex:
                if self._closing:
                    self._reconnecting = False
                    return
                self._state = NOT_YET_CONNECTED()
                self._pending = Pending()
                self._transport = None
                self._reader = None
                self._error = None
            self.connect()
            if not self.connected:
                last = self._error or last
                log.info("reconnect attempt %d/%d to %s failed: %s", attempt, policy.attempts, self._url, last)
                continue
            try:
                self._session._resync()
            except BokehSyncError as e:
                last = e
                log.warning("resynchronising after reconnecting to %s failed: %s", self._url, e)
                self._abort(e)
                reader = self._reader
                if reader is not None:
                    reader.join(self._timeout)  # its exit sees _reconnecting: no second reconnector
                continue
            with self.state_mutex:
                self._reconnecting = False
            log.info("reconnected to %s (attempt %d)", self._url, attempt)
            self._session._run_hooks("reconnect", None)
            return
        error = ConnectionLost(f"gave up reconnecting after {policy.attempts} attempts: {last}", self._url)
        error.__cause__ = last
        with self.state_mutex:
            self._error = error
            self._state = DISCONNECTED(ErrorReason.NETWORK_ERROR, None, error.message)
            self._reconnecting = False
        log.error("%s", error)
        self._session._run_hooks("disconnect", error)
        self._finish_disconnect()

    def _take_offline_changes(self) -> int:
        ''' How many changes were made while reconnecting; resets the count. '''
        with self.outbox_mutex:
            count, self._offline_changes = self._offline_changes, 0
            return count

    def _forget_lost_patches(self) -> None:
        ''' Drop the errors of patches lost with the old connection (a re-push supersedes them). '''
        with self.outbox_mutex:
            self._patch_errors = [e for e in self._patch_errors if not isinstance(e, ConnectionLost)]
            self._unacked.clear()

    # Closing -----------------------------------------------------------------

    def _close_handshake(self, why: str) -> None:
        ''' Send our close frame and give the server a moment to answer. '''
        self._send_control(_frames.OP_CLOSE, _frames.close_payload(1000, why))
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(CLOSE_HANDSHAKE_TIMEOUT)

    def _join_reader(self) -> None:
        reader = self._reader
        if reader is None:
            with self.state_mutex:
                if not isinstance(self._state, DISCONNECTED):
                    self._state = DISCONNECTED()
            self._closed_event.set()
            return
        if reader is threading.current_thread():
            return
        if reader.is_alive() and self._transport is not None:
            self._transport.mark_closing()
        reader.join(self._timeout)
        if reader.is_alive():
            log.error("the reader thread of %s did not stop", self._url)

    def _abort(self, cause: BokehSyncError) -> None:
        ''' Give up on a broken connection from a sending thread: the reader
        sees the transport closing and exits with ``cause``.
        '''
        with self.state_mutex:
            if self._error is None:
                self._error = cause
        self._pending.fail_all(cause)
        if self._transport is not None:
            self._transport.mark_closing()

    # Processes ---------------------------------------------------------------

    def _check_process(self) -> None:
        if os.getpid() != self._pid:
            raise WrongProcess(f"this connection was opened in process {self._pid} and cannot be used "
                               f"in process {os.getpid()} (after fork): create a new session in the "
                               "child", self._url)

    def _disown(self) -> None:
        ''' In a forked child: drop the parent's socket and threads untouched. '''
        transport = self._transport
        self._init_runtime()
        if transport is not None:
            transport.forget()
        self._state = DISCONNECTED(ErrorReason.NO_ERROR, None, "inherited across fork")
        self._closed_event.set()
        self._loop.forget()

    # Helpers -----------------------------------------------------------------

    def _resolve(self, timeout: float | None) -> float:
        return self._timeout if timeout is None else check_timeout(timeout)

    def _not_connected(self, what: str) -> ConnectionLost:
        error = self._error
        if isinstance(self._state, NOT_YET_CONNECTED):
            return ConnectionLost(f"cannot {what}: not connected (call connect() first)", self._url)
        exc = ConnectionLost(f"cannot {what}: the connection is closed"
                             + (f" ({error.message})" if error is not None else ""), self._url)
        exc.__cause__ = error
        return exc

    def _can_wait(self) -> bool:
        ''' Whether this thread may block on replies (see :meth:`_check_not_blocking_reader`). '''
        return threading.current_thread() is not self._reader and not self._session._lock_held_by_me()

    def _check_not_blocking_reader(self, what: str) -> None:
        if threading.current_thread() is self._reader:
            raise RuntimeError(f"cannot {what} from the reader thread (a document callback run for a "
                               "server change): it would wait for itself")
        if self._session._lock_held_by_me():
            raise RuntimeError(f"cannot {what} while holding session.lock: the reader thread needs it "
                               "to apply server changes that may come before the reply")


def _close_all_at_exit() -> None:
    ''' Flush and close connections still open at interpreter exit. '''
    for connection in list(_LIVE):
        if connection._pid == os.getpid() and connection.connected:
            try:
                connection.close("interpreter exit", timeout=min(connection.timeout, 5.0))
            except Exception as e:
                log.warning("closing %s at exit: %s", connection.url, e)


def _disown_all_in_child() -> None:
    for connection in list(_LIVE):
        connection._disown()


atexit.register(_close_all_at_exit)
os.register_at_fork(after_in_child=_disown_all_in_child)
