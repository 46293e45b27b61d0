''' The lifecycle of a connection's websocket: connecting, the reader
thread, losing it, reconnecting, closing, forking.

States, named as in ``bokeh.client.states``::

    NOT_YET_CONNECTED --connect()--> CONNECTED_BEFORE_ACK --ACK--> CONNECTED_AFTER_ACK
          ^                                  |                              |
          |                           refused/failed               lost, or close()
          |                                  v                              v
          +------ reconnect attempt ---- DISCONNECTED <---------------------+

A :class:`Link` lives as long as its ``ClientConnection``; each successful
connect gives it a new transport, pending table and reader thread. It tells
the session's outbox when changes can be sent (``online``) and when not
(``offline``), and the session's hooks when the link is lost or restored.

``state_mutex`` guards the state, the error, and the closing and
reconnecting flags; it is taken after ``session.lock`` and before the
outbox's and pending table's mutexes.
'''
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from bokeh.protocol.message import Message
from bokeh.util.strings import format_url_query_arguments

from . import _frames
from ._connect import open_session
from ._deadline import Deadline
from ._docsync import DocumentSync
from ._hooks import Hooks
from ._keepalive import Keepalive
from ._pending import Pending
from ._reader import Reader
from ._reconnect import Reconnect, Reconnector
from ._sender import CLOSE_HANDSHAKE_TIMEOUT, Sender
from ._transport import Transport
from .exceptions import BokehSyncError, ConnectionFailed, ConnectionLost, ConnectionRejected, WrongProcess
from .states import CONNECTED_AFTER_ACK, CONNECTED_BEFORE_ACK, DISCONNECTED, NOT_YET_CONNECTED, ErrorReason, State

__all__ = (
    'Link',
)

log = logging.getLogger(__name__)

#: Seconds between re-checks of a condition waited for (``wait_for``).
POLL = 0.05


class Link:
    ''' The websocket of one connection, through its whole life.

    Args:
        url (str) : the websocket URL
        arguments (dict, optional) : HTTP request arguments for the app
        name (str) : the suffix of thread names (the session id's start)
        options (callable) : ``options()``, websocket-client's connect keyword
            arguments with a fresh token (see ``HandshakeOptions``)
        max_message_size (int) : the largest message accepted, in bytes
        timeout (float) : seconds for joins and background sends
        keepalive (tuple) : ``(ping_interval or None, ping_timeout)``, seconds
        policy (Reconnect, optional) : reconnect after a loss, or not
        resync (callable) : ``resync()``, run after a reconnect (on the
            reconnect thread); raises BokehSyncError if it fails
        sync (DocumentSync) : the session's document side
        sender (Sender) : writes the session's outbox
        hooks (Hooks) : the session's disconnect/reconnect callbacks
        on_patch (callable) : ``on_patch(message)`` applies a server PATCH-DOC
            (on the reader thread)
    '''

    def __init__(self, url: str, arguments: dict[str, str] | None, *, name: str,
            options: Callable[[], dict[str, Any]], max_message_size: int, timeout: float,
            keepalive: tuple[float | None, float], policy: Reconnect | None, resync: Callable[[], None],
            sync: DocumentSync, sender: Sender, hooks: Hooks, on_patch: Callable[[Message[Any]], None]) -> None:
        self.url = url
        self._arguments = arguments
        self._name = name
        self._options = options
        self._max_message_size = max_message_size
        self._timeout = timeout
        self._keepalive = keepalive
        self._policy = policy
        self._resync = resync
        self._sync = sync
        self._sender = sender
        self._hooks = hooks
        self._on_patch = on_patch
        #: The process that made the link; its socket is not usable in any other.
        self.pid = os.getpid()
        #: Notified after every message the reader handled (see :meth:`wait_for`).
        self.message_seen = threading.Condition(threading.Lock())
        self.reset()

    def reset(self) -> None:
        ''' Not yet connected, with fresh locks (also in a forked child). '''
        self.state_mutex = threading.Lock()
        self.state: State = NOT_YET_CONNECTED()
        self.closed = threading.Event()
        self.pending = Pending()
        self.error: BokehSyncError | None = None
        self.closing = False
        self.reconnecting = False
        #: Open in the parent when this forked child was made: the first call
        #: opens the child's own connection to the session (see :meth:`claim`).
        self.inherited = False
        self._transport: Transport | None = None
        self._reader: Reader | None = None
        self._reconnector: Reconnector | None = None

    @property
    def connected(self) -> bool:
        ''' Whether the websocket is open and the server sent its ACK. '''
        return isinstance(self.state, CONNECTED_AFTER_ACK)

    @property
    def reader_thread(self) -> threading.Thread | None:
        reader = self._reader
        return reader.thread if reader is not None else None

    def claim(self, deadline: Deadline) -> None:
        ''' The start of every call that uses the link. In a forked child whose
        parent had the link open, the first call opens the child's own
        connection to the same session (no push, no pull: the child holds
        the document the server has). Never touches the parent's socket.

        Raises:
            WrongProcess: the process was forked without bokehsync's fork
                handler running (a fork from C code): the parent's socket is
                still in this link, and using it would corrupt the parent's
                connection
        '''
        if os.getpid() != self.pid:
            raise WrongProcess(f"this connection belongs to process {self.pid} and cannot be used in process "
                               f"{os.getpid()}, which was forked without Python's fork handlers: create a new "
                               "session here", self.url)
        if self.inherited:
            self.inherited = False
            self.connect(deadline)

    def wait_for(self, predicate: Callable[[], object], deadline: Deadline) -> bool:
        ''' Wait until ``predicate()`` is true: re-checked after every message
        the reader handles, and every ``POLL`` seconds for conditions no
        message announces.

        Returns:
            bool : whether it became true before ``deadline``
        '''
        while not predicate():
            remaining = deadline.remaining()
            if remaining <= 0:
                return False
            with self.message_seen:
                self.message_seen.wait(min(POLL, remaining))
        return True

    def _message_handled(self) -> None:
        with self.message_seen:
            self.message_seen.notify_all()

    # Connecting --------------------------------------------------------------

    def connect(self, deadline: Deadline) -> None:
        ''' From NOT_YET_CONNECTED: open, or end DISCONNECTED with :attr:`error`
        set. Other states: nothing. Raises only what is not a BokehSyncError
        (e.g. KeyboardInterrupt), after recording it.
        '''
        with self.state_mutex:
            if not isinstance(self.state, NOT_YET_CONNECTED):
                return
            self.state = CONNECTED_BEFORE_ACK()
        try:
            self._open(deadline)
        except BokehSyncError as e:
            self._fail_connect(e)
        except BaseException as e:
            self._fail_connect(ConnectionFailed(f"failed to connect: {e!r}", self.url))
            raise

    def _open(self, deadline: Deadline) -> None:
        url = format_url_query_arguments(self.url, self._arguments)
        opened = open_session(url, self._options(), self._max_message_size, deadline)
        pending = self.pending
        reader = Reader(opened, pending, url=self.url, name=f"bokehsync-reader-{self._name}",
                        keepalive=Keepalive(*self._keepalive), on_patch=self._on_patch,
                        send_control=self._sender.send_control, closing=lambda: self.closing,
                        on_exit=self._reader_exit, on_message=self._message_handled)
        with self.state_mutex:
            if self.closing:
                opened.transport.close()
                raise ConnectionLost("closed while connecting", self.url)
            self._transport = opened.transport
            self._reader = reader
            self._sender.attach(opened.transport, pending)
            self.state = CONNECTED_AFTER_ACK()
            self._sync.outbox.online()
        reader.start()
        log.debug("connected to %s", self.url)

    def _fail_connect(self, error: BokehSyncError) -> None:
        if isinstance(error, ConnectionFailed) and error.status is not None:
            state = DISCONNECTED(ErrorReason.HTTP_ERROR, error.status, error.message)
        elif isinstance(error, ConnectionRejected):
            state = DISCONNECTED(ErrorReason.HTTP_ERROR, error.close_code, error.message)
        else:
            state = DISCONNECTED(ErrorReason.NETWORK_ERROR, None, error.message)
        log.info("connecting to %s failed: %s", self.url, error)
        with self.state_mutex:
            self.error = error
            self.state = state
            self._sync.outbox.offline(reconnecting=self.reconnecting, cause=error)
        self.pending.fail_all(error)
        reconnector = self._reconnector
        if reconnector is None or threading.current_thread() is not reconnector.thread:
            self.finish()

    # Losing it ---------------------------------------------------------------

    def _reader_exit(self, cause: BokehSyncError | None, reason: ErrorReason, code: int | None) -> None:
        ''' Last acts of the reader thread: state, futures, socket, hooks, reconnect. '''
        if cause is None and reason is not ErrorReason.NO_ERROR:
            cause = ConnectionLost("the connection closed", self.url)
        detail = cause.message if cause is not None else ""
        with self.state_mutex:
            if cause is not None and self.error is None:
                self.error = cause
            # Decided together with the state change, so a change made the
            # moment ``connected`` turns False already counts as offline.
            reconnect = cause is not None and self._policy is not None and not self.closing
            start_reconnector = reconnect and not self.reconnecting
            self.reconnecting = reconnect
            self.state = DISCONNECTED(reason, code, detail)
            self._sync.outbox.offline(reconnecting=reconnect, cause=cause)
        self.pending.fail_all(cause or ConnectionLost("the connection was closed", self.url))
        if self._transport is not None:
            self._transport.close()
        if cause is not None:
            log.warning("connection to %s lost: %s", self.url, detail)
            self._hooks.run("disconnect", cause)
        if start_reconnector:
            assert self._policy is not None
            reconnector = Reconnector(self._policy, f"bokehsync-reconnect-{self._name}", self.url,
                                      self._attempt, self._reconnected)
            with self.state_mutex:
                self._reconnector = reconnector
            reconnector.start(cause or ConnectionLost("lost", self.url))
        elif not reconnect:
            self.finish()

    def abort(self, cause: BokehSyncError) -> None:
        ''' Give up on a broken connection from a sending thread: the reader
        sees the transport closing and exits with ``cause``.
        '''
        with self.state_mutex:
            if self.error is None:
                self.error = cause
        self.pending.fail_all(cause)
        if self._transport is not None:
            self._transport.mark_closing()

    def finish(self) -> None:
        ''' Closed for good: wake waiters, stop the document's session
        callbacks. The document stays listened to: a change made now is
        counted as not sent (see ``_outbox``) until ``close()`` detaches it.
        Idempotent.
        '''
        self.closed.set()
        try:
            self._sync.stop_callbacks()
        except Exception:
            log.exception("stopping the session callbacks of %s failed", self.url)

    # Reconnecting (the reconnect thread) -------------------------------------

    def _attempt(self) -> BokehSyncError | None:
        with self.state_mutex:
            if self.closing:
                return ConnectionLost("closed while reconnecting", self.url)
            self.state = NOT_YET_CONNECTED()
            self.pending = Pending()
            self._transport = None
            self._reader = None
            self.error = None
        self.connect(Deadline(self._timeout))
        if not isinstance(self.state, CONNECTED_AFTER_ACK):
            return self.error or ConnectionLost("reconnecting failed", self.url)
        try:
            self._resync()
        except BokehSyncError as e:
            log.warning("resynchronising after reconnecting to %s failed: %s", self.url, e)
            self.abort(e)
            reader = self._reader
            if reader is not None:
                reader.thread.join(self._timeout)  # its exit sees ``reconnecting``: no second reconnector
            return e
        with self.state_mutex:
            self.reconnecting = False
        return None

    def _reconnected(self, error: BokehSyncError | None) -> None:
        if error is None:
            self._hooks.run("reconnect")
            return
        with self.state_mutex:
            self.error = error
            self.state = DISCONNECTED(ErrorReason.NETWORK_ERROR, None, error.message)
            self.reconnecting = False
            self._sync.outbox.offline(reconnecting=False, cause=error)
        self._hooks.run("disconnect", error)
        self.finish()

    # Closing -----------------------------------------------------------------

    def begin_close(self) -> bool:
        ''' Mark the link closing and stop reconnecting.

        Returns:
            bool : whether it was open (the caller flushes and says goodbye)
        '''
        with self.state_mutex:
            state = self.state
            if isinstance(state, NOT_YET_CONNECTED):
                self.state = DISCONNECTED()
                self.closed.set()
            was_open = not self.closing and not isinstance(state, (NOT_YET_CONNECTED, DISCONNECTED))
            self.closing = True
            self.inherited = False
            reconnector = self._reconnector
        if reconnector is not None:
            reconnector.stop(self._timeout)
        self.reconnecting = False
        return was_open

    def close_handshake(self, why: str) -> None:
        ''' Send our close frame and give the server a moment to answer. '''
        self._sender.send_control(_frames.OP_CLOSE, _frames.close_payload(1000, why))
        reader = self.reader_thread
        if reader is not None and reader is not threading.current_thread():
            reader.join(CLOSE_HANDSHAKE_TIMEOUT)

    def join_reader(self) -> None:
        ''' Stop the reader thread (unless it is the caller) and wait for it. '''
        reader = self.reader_thread
        if reader is None:
            with self.state_mutex:
                if not isinstance(self.state, DISCONNECTED):
                    self.state = DISCONNECTED()
            self.closed.set()
            return
        if reader is threading.current_thread():
            return
        if reader.is_alive() and self._transport is not None:
            self._transport.mark_closing()
        reader.join(self._timeout)
        if reader.is_alive():
            log.error("the reader thread of %s did not stop", self.url)

    def close_if_never_opened(self) -> bool:
        ''' From NOT_YET_CONNECTED, end DISCONNECTED at once.

        Returns:
            bool : whether it did
        '''
        with self.state_mutex:
            if not isinstance(self.state, NOT_YET_CONNECTED):
                return False
            self.state = DISCONNECTED()
            self.closed.set()
        return True

    # Forking -----------------------------------------------------------------

    def after_fork(self) -> None:
        ''' In a forked child, before any other code of it runs: release the
        parent's socket (this process's descriptors only), forget its threads
        and its queued changes. A link open in the parent opens the child's
        own connection on first use: the first change made here
        (:meth:`_first_change_in_child`), or the first call (:meth:`claim`).
        '''
        self._sender.reset()
        reconnects = self._forget_parent()
        self._sync.after_fork(accept_changes=reconnects)
        if reconnects:
            self._sync.outbox.set_writer(self._first_change_in_child)

    def _first_change_in_child(self) -> None:
        ''' The outbox's writer until the child's first change: connect, then send. '''
        self._sync.outbox.set_writer(self._sender.send_queued)
        self.claim(Deadline(self._timeout))
        self._sender.send_queued()

    def _forget_parent(self) -> bool:
        ''' Returns whether the link was open in the parent (and reconnects on first use). '''
        transport = self._transport
        state, closing = self.state, self.closing
        was_open = not closing and (isinstance(state, (CONNECTED_BEFORE_ACK, CONNECTED_AFTER_ACK))
                                    or self.reconnecting)
        self.message_seen = threading.Condition(threading.Lock())
        self.reset()
        self.pid = os.getpid()
        if transport is not None:
            transport.forget()
        if was_open:
            self.inherited = True
        elif not isinstance(state, NOT_YET_CONNECTED):
            self.state = DISCONNECTED(ErrorReason.NO_ERROR, None, "closed before the fork")
            self.closed.set()
        return was_open
