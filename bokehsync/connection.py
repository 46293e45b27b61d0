''' ``ClientConnection``: one websocket to a Bokeh server session, with the
API of ``bokeh.client.connection.ClientConnection``.

It puts together the parts that do the work, each in a module of its own:
``_link`` (the websocket's lifecycle and the reader and reconnect threads),
``_requests`` (requests and their replies), ``_sender`` (writes the
session's ``_outbox``), ``_docsync`` (the document and its lock), ``_resync``
and ``_process`` (exit and fork). Locks, in the order they are taken, and
never held while waiting for a reply: ``send_lock``, ``session.lock``,
``state_mutex``, then ``outbox_mutex``, ``pending_mutex``, ``socket_mutex``.
``docs/architecture.rst`` draws the threads and the path of a change, a
request, a server patch and a reconnect.
'''
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import Future, wait
from typing import TYPE_CHECKING, Any

from bokeh.protocol.message import Message

from . import _process
from ._deadline import check_timeout
from ._docsync import DocumentSync
from ._handshake import HandshakeOptions
from ._hooks import Hooks
from ._link import Link
from ._loop import LoopThread
from ._parts import DEFAULT_SERVER_MAX_MESSAGE_SIZE, check_limit
from ._push import push_document
from ._reconnect import Reconnect, as_policy
from ._requests import Requests
from ._resync import Resync
from ._sender import Sender
from ._wire import PROTOCOL, Progress, report_progress
from .exceptions import BokehSyncError, ReplyTimeout
from .states import DISCONNECTED, ErrorReason

if TYPE_CHECKING:
    from bokeh.document import Document
    from tornado.ioloop import IOLoop

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


class ClientConnection:
    ''' A websocket connection to a Bokeh server session.

    Users normally use :class:`~bokehsync.ClientSession`, which makes one;
    this class has the API of ``bokeh.client.connection.ClientConnection``.

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
            (default: 30) (bokehsync only, like all below)
        ping_interval (float or None, optional) : seconds of silence from the
            server before a keepalive ping; None turns keepalive off (default: 20)
        ping_timeout (float, optional) : seconds to wait for an answer to that
            ping before the connection counts as lost (default: 20)
        reconnect (Reconnect, bool or int, optional) : reconnect after an
            unexpected loss (default: None, no reconnecting, as bokeh.client)
        handshake (HandshakeOptions, optional) : token, headers, TLS and proxy
            settings (default: none beyond the session's token)
        sync (DocumentSync, optional) : the session's document side (default:
            a new one, with ``session`` as the setter of server changes)
        hooks (Hooks, optional) : the session's disconnect/reconnect callbacks
        server_max_message_size (int, optional) : the largest websocket message
            the server accepts, in bytes (its ``--websocket-max-message-size``);
            larger changes and pushes go in parts (default: 20 MiB)

    Raises:
        ValueError: a timeout that is not a positive number of seconds, or a
            ``server_max_message_size`` under 64 KiB
    '''

    def __init__(self, session: Any, websocket_url: str, io_loop: IOLoop | None = None,
            arguments: dict[str, str] | None = None, max_message_size: int = 20*1024*1024, *,
            timeout: float = DEFAULT_TIMEOUT, ping_interval: float | None = DEFAULT_PING_INTERVAL,
            ping_timeout: float = DEFAULT_PING_TIMEOUT, reconnect: Reconnect | bool | int | None = None,
            handshake: HandshakeOptions | None = None, sync: DocumentSync | None = None,
            hooks: Hooks | None = None, server_max_message_size: int = DEFAULT_SERVER_MAX_MESSAGE_SIZE) -> None:
        self._session = session
        self._url = websocket_url
        name = f"{str(session.id)[:8]}"
        timeout = check_timeout(timeout)
        self._server_max_message_size = check_limit(server_max_message_size)
        handshake = handshake or HandshakeOptions(websocket_url)
        self._sync = sync or DocumentSync(session, LoopThread(f"bokehsync-ioloop-{name}", io_loop), websocket_url)
        self._hooks = hooks or Hooks(session)
        self._sender = Sender(self._sync.outbox, self._sync.lock, websocket_url, timeout, self._abort,
                              lambda error: self._resync.soon(f"the server rejected a change of ours: {error.text}"))
        self._link = Link(
            websocket_url, arguments, name=name, options=lambda: handshake.connect_kwargs(session.token),
            max_message_size=max_message_size, timeout=timeout,
            keepalive=(None if ping_interval is None else check_timeout(ping_interval, "ping_interval"),
                       check_timeout(ping_timeout, "ping_timeout")),
            policy=as_policy(reconnect), resync=self._resync_after_reconnect, sync=self._sync,
            sender=self._sender, hooks=self._hooks,
            # bokeh.client's connection hands server patches to this hook of
            # the session: overrides and mocks of it see every one.
            on_patch=getattr(session, "_handle_patch", self._sync.apply_patch))
        self._requests = Requests(self._link, self._sync, self._sender, timeout)
        self._server_info: dict[str, Any] | None = None
        self._resync = Resync(self._sync, self._requests, self._link, self._hooks, websocket_url)
        self._sync.resync = self._resync.soon
        self._sync.outbox.configure(self._server_max_message_size, document=lambda: self._sync.document)
        _process.track(self._close_at_exit, self._link.after_fork)

    # Properties --------------------------------------------------------------

    @property
    def connected(self) -> bool:
        ''' Whether the websocket is open and the server has sent its ACK. '''
        return self._link.connected

    @property
    def io_loop(self) -> IOLoop:
        ''' The Tornado ``IOLoop`` for document session callbacks: created on
        first access and run on its own thread, unless one was passed in.
        '''
        return self._sync.loop.get()

    @property
    def url(self) -> str:
        ''' The URL of the websocket this connection is to. '''
        return self._url

    @property
    def error_reason(self) -> ErrorReason | None:
        ''' Why the connection is closed (an ``ErrorReason``), or None while it is not. '''
        state = self._link.state
        return state.error_reason if isinstance(state, DISCONNECTED) else None

    @property
    def error_code(self) -> int | None:
        ''' The HTTP status or close code of a failure; 0 while not disconnected. '''
        state = self._link.state
        return state.error_code if isinstance(state, DISCONNECTED) else 0

    @property
    def error_detail(self) -> str:
        ''' The cause of a failure in words; empty while not disconnected. '''
        state = self._link.state
        return state.error_detail if isinstance(state, DISCONNECTED) else ""

    @property
    def error(self) -> BokehSyncError | None:
        ''' The exception that says why the connection closed or never opened,
        or None. (bokehsync only)
        '''
        return self._link.error

    @property
    def timeout(self) -> float:
        ''' Default seconds for every blocking call. (bokehsync only) '''
        return self._requests.timeout

    @property
    def reconnecting(self) -> bool:
        ''' Whether the connection was lost and is being re-established. (bokehsync only) '''
        return self._link.reconnecting

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
                (default: the connection's timeout) (bokehsync only)

        Raises:
            WrongProcess: used in a process forked from C code, without Python's fork handlers
        '''
        deadline = self._requests.deadline(timeout)
        self._link.claim(deadline)
        self._link.connect(deadline)

    def close(self, why: str = "closed", *, flush: bool = True, timeout: float | None = None) -> None:
        ''' Close the connection: flush, send a close frame, stop the threads.

        Idempotent. Safe from any thread, the reader's included (it then
        sends what is queued without waiting for acknowledgements).

        Args:
            why (str, optional) : the reason sent in the close frame
            flush (bool, optional) : first wait until the server acknowledged
                every document change sent so far (default: True) (bokehsync only)
            timeout (float, optional) : seconds for the flush (default: the
                connection's timeout) (bokehsync only)

        Raises:
            ServerError, ConnectionLost, ReplyTimeout: from the flush, raised
                after the connection is closed
        '''
        if os.getpid() != self._link.pid:
            self._link.after_fork()  # forked without the fork handler: release the parent's socket
        was_open = self._link.begin_close()
        flush_error: BokehSyncError | None = None
        if was_open:
            if flush and self._requests.can_wait():
                try:
                    self.flush(timeout=timeout)
                except BokehSyncError as e:
                    flush_error = e
            elif flush:
                # From the reader thread, or holding session.lock, waiting would
                # wait for ourselves (the reader, or a sender that needs the
                # lock): send what is queued if the wire is free, don't wait.
                flush_error = self._sender.send_without_waiting(self._requests.deadline(timeout))
            self._link.close_handshake(why)
        self._link.join_reader()
        self._sync.detach()
        self._sync.loop.stop()
        if not self._link.closed.is_set():
            self._link.finish()
        if flush and flush_error is None:
            # Closed already (lost, or never opened): report what did not reach the server.
            errors = self._sync.outbox.take_errors()
            flush_error = errors[0] if errors else None
        if flush_error is not None:
            raise flush_error

    def flush(self, *, timeout: float | None = None) -> None:
        ''' Block until the server acknowledged every document change sent so
        far, then report any it rejected. (bokehsync only)

        Args:
            timeout (float, optional) : seconds (default: the connection's timeout)

        Raises:
            ServerError: the server rejected a change (its text and traceback)
            ConnectionLost: the connection died with changes unacknowledged
            ReplyTimeout: not all acknowledged in time
            RuntimeError: called from the reader thread or holding ``session.lock``
        '''
        deadline = self._requests.deadline(timeout)
        self._requests.check_can_wait("flush")
        self._link.claim(deadline)
        self._sender.pump(block=True, deadline=deadline)
        waiting: list[Future[Any]] = self._sync.outbox.unacked()
        resyncing = self._resync.outstanding
        if resyncing is not None:
            waiting.append(resyncing)  # the document is in step again when it is done
        if waiting:
            _, not_done = wait(waiting, timeout=deadline.remaining())
            if not_done:
                raise ReplyTimeout(f"{len(not_done)} document patch(es) not acknowledged within "
                                   f"{deadline.timeout} s", self._url, msgid=None, timeout=deadline.timeout)
        errors = self._sync.outbox.take_errors()
        failed = Resync.failure(resyncing)
        if failed is not None:
            errors.append(failed)
        if errors:
            if len(errors) > 1:
                log.error("%d document patches failed; raising the first", len(errors))
            raise errors[0]

    def force_roundtrip(self, *, timeout: float | None = None) -> None:
        ''' Send a request and wait for its reply: every change sent before
        has then been processed by the server.

        Args:
            timeout (float, optional) : seconds (bokehsync only)

        Raises:
            ServerError: the server answered with an ERROR (its ``text`` and ``traceback``)
            ConnectionLost: the connection is closed, or died before the reply
            ReplyTimeout: no reply within ``timeout``
        '''
        self._requests.request(PROTOCOL.create('SERVER-INFO-REQ'), timeout=timeout)

    def loop_until_closed(self) -> None:
        ''' Block until the connection closes (e.g. by hitting Ctrl-C).

        Server updates are applied by the reader thread meanwhile. Ctrl-C
        closes the connection and returns.
        '''
        self._link.claim(self._requests.deadline(None))
        if self._link.close_if_never_opened():
            self._sync.detach()
            return
        try:
            self._link.closed.wait()
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
            ServerError: the server answered with an ERROR (its ``text`` and ``traceback``)
            ConnectionLost: the connection is closed, or died before the reply
            ReplyTimeout: no reply within ``timeout``
        '''
        sync = self._sync

        def apply(reply: Message[Any]) -> None:
            if sync.apply_pull(reply, document):
                self._resync.soon("changes of ours crossed the pull")
            if progress is not None:
                total = len(reply.content_json) + sum(len(b.data) for b in reply.buffers)
                report_progress(progress, total, total)
        self._requests.request(PROTOCOL.create('PULL-DOC-REQ'), on_reply=apply, timeout=timeout,
                               what="pull the document", progress=progress)

    def push_doc(self, document: Document, *, timeout: float | None = None,
            progress: Progress | None = None) -> Message[Any]:
        ''' Push ``document`` to the server, replacing the session document.

        The document is serialized and queued holding ``session.lock``, and
        becomes the session's document there if it has none, so no change
        falls between the snapshot and the listening. The server answers by
        replacing its document and broadcasting the replacement, to this
        connection too, before its OK: those PATCH-DOCs describe what was
        sent, and are dropped. A document over the server's message limit
        goes in parts (``_push``), all acknowledged before this returns.

        Args:
            document (Document) : what to push
            timeout (float, optional) : seconds (bokehsync only)
            progress (callable, optional) : ``progress(bytes_sent, total)`` as
                the document is written, on the sending thread (bokehsync only)

        Returns:
            Message : the server's OK reply

        Raises:
            MessageTooBig: a single value over the server's limit; nothing was sent
            ServerError: the server answered with an ERROR (its ``text`` and ``traceback``)
            ConnectionLost: the connection is closed, or died before the reply
            ReplyTimeout: no reply within ``timeout``
        '''
        what = "push the document"
        deadline = self._requests.begin(what, timeout)
        return push_document(self._requests, self._sync, document, limit=self._server_max_message_size,
                             deadline=deadline, what=what, url=self._url, progress=progress)

    def request_server_info(self, *, timeout: float | None = None) -> dict[str, Any]:
        ''' Ask the server for its version information (cached).

        Args:
            timeout (float, optional) : seconds (bokehsync only)

        Returns:
            dict : ``{"version_info": {"bokeh": ..., "server": ...}}``

        Raises:
            ServerError: the server answered with an ERROR (its ``text`` and ``traceback``)
            ConnectionLost: the connection is closed, or died before the reply
            ReplyTimeout: no reply within ``timeout``
        '''
        if self._server_info is None:
            reply = self._requests.request(PROTOCOL.create('SERVER-INFO-REQ'), timeout=timeout)
            self._server_info = reply.content
        return self._server_info

    # Internal ----------------------------------------------------------------

    def _loop_until(self, predicate: Callable[[], object], *, timeout: float | None = None) -> None:
        ''' Block until ``predicate()`` is true (kept from bokeh.client, whose
        test helpers and users wait with it): re-checked after every message
        the reader thread handles, and every 50 ms for conditions no message
        announces. As with bokeh.client, a connection never connected connects
        first; bokeh.client waits forever, this up to the timeout.

        Args:
            predicate (callable) : ``predicate() -> bool``, called on this thread
            timeout (float, optional) : seconds (default: the connection's
                timeout) (bokehsync only)

        Raises:
            ReplyTimeout: still false after ``timeout``
            RuntimeError: called from the reader thread or holding ``session.lock``
        '''
        self._requests.wait_until(predicate, timeout)

    def _resync_after_reconnect(self) -> None:
        ''' After a reconnect (the reconnect thread): push or pull again (``_resync``). '''
        self._resync.after_reconnect(push=lambda doc: self.push_doc(doc), pull=lambda doc: self.pull_doc(doc))

    def _abort(self, cause: BokehSyncError) -> None:
        ''' Writing failed (a sending thread): the link is broken. '''
        self._link.abort(cause)

    def _close_at_exit(self) -> None:
        ''' At interpreter exit: flush and close, briefly. '''
        if self._link.pid == os.getpid() and self.connected:
            self.close("interpreter exit", timeout=min(self.timeout, 5.0))

