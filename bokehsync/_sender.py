''' Writing a connection's outbox to its socket, one message's frames at a time.

Any thread may send: the thread that changed the document, a thread making a
request, the reader thread (answering pings, or sending changes that waited
for an acknowledgement). ``send_lock`` keeps the frames of one message
together on the wire (websocket-client locked each frame, not each message);
it is held while writing, which may wait for the socket up to the caller's
deadline, and never while waiting for a reply.

Lock order: ``send_lock``, then the document lock (``session.lock``, to take
and serialize queued changes in the order they were made), then the outbox's
``outbox_mutex`` and the pending table's ``pending_mutex``.
'''
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from bokeh.protocol.message import Message

from . import _frames
from ._deadline import Deadline
from ._outbox import Outbox
from ._pending import Pending
from ._transport import Transport, WouldBlockTimeout
from ._wire import encode_messages
from .exceptions import BokehSyncError, ConnectionLost, ReplyTimeout, ServerError

__all__ = (
    'CLOSE_HANDSHAKE_TIMEOUT',
    'Sender',
)

log = logging.getLogger(__name__)

#: Seconds a control frame (ping, pong, close) may wait for the wire.
CLOSE_HANDSHAKE_TIMEOUT = 2.0


class Sender:
    ''' The writing side of one connection (and of its later reconnections).

    Args:
        outbox (Outbox) : what to send
        document_lock (RLock) : ``session.lock``, held to take queued changes
        url (str) : named in the exceptions
        timeout (float) : seconds a change sent in the background may take
        on_failure (callable) : ``on_failure(cause)``, called (in the sending
            thread) when a write fails: the connection is broken
        on_rejected (callable) : ``on_rejected(error)``, called (in the thread
            that resolved it, usually the reader) when the server rejected a
            PATCH-DOC: the document holds a change the server does not
    '''

    def __init__(self, outbox: Outbox, document_lock: threading.RLock, url: str, timeout: float,
            on_failure: Callable[[ConnectionLost], None], on_rejected: Callable[[ServerError], None]) -> None:
        self._outbox = outbox
        self._document_lock = document_lock
        self._url = url
        self._timeout = timeout
        self._on_failure = on_failure
        self._on_rejected = on_rejected
        self.reset()
        outbox.set_writer(self.send_queued)

    def reset(self) -> None:
        ''' No socket, a fresh lock (also in a forked child). '''
        self.send_lock = threading.Lock()
        self.transport: Transport | None = None
        self.pending = Pending()

    def attach(self, transport: Transport, pending: Pending) -> None:
        ''' Write to ``transport`` from now on, tracking replies in ``pending``. '''
        self.transport = transport
        self.pending = pending

    # Messages ----------------------------------------------------------------

    def send_queued(self) -> None:
        ''' Send queued changes now, unless another thread is sending (it
        sends them) or the window is full (they go, merged, when an OK
        arrives). Never blocks; failures are logged and reported by the
        next flush. Any thread; runs after every document change.
        '''
        if self._outbox.window_full() or self.transport is None:
            # The reader sends the queue when an OK arrives, and it looks at
            # the queue after this change was added to it; with no socket
            # yet, the thread that connects sends it.
            return
        try:
            self.pump(block=False, deadline=Deadline(self._timeout), force=False)
        except BokehSyncError as e:
            log.error("sending document changes to %s failed: %s", self._url, e)

    def pump(self, block: bool, deadline: Deadline, force: bool = True) -> None:
        ''' Send what is queued, in order.

        ``force=False`` (a document change) returns at once if another
        thread holds ``send_lock`` (that thread sends what was queued before
        it releases the lock), and leaves changes queued while the window is
        full. ``force=True`` (requests, flush) sends everything and waits for
        the lock until ``deadline``.

        Raises:
            ReplyTimeout: the lock or the socket was busy until ``deadline``
            ConnectionLost: writing failed
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
            # A thread that queued while we held the lock left its items to us.
            if not self._outbox.ready(force):
                return
            block = force

    def send_without_waiting(self, deadline: Deadline) -> BokehSyncError | None:
        ''' Send everything queued if no other thread is sending; never block
        on the lock (``close()`` from the reader thread or under ``session.lock``).

        Returns:
            the error to report, if something could not be sent
        '''
        if not self.send_lock.acquire(blocking=False):
            if not self._outbox.queued():
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

    def _drain(self, force: bool, deadline: Deadline) -> None:
        ''' Write what is queued until nothing (or only held-back changes) is left. '''
        assert self.send_lock.locked()
        while True:
            with self._document_lock:
                messages = self._outbox.take(force)
                # Tracked before the document lock is released: the reader
                # applies server changes holding it, and must find every change
                # of ours either queued or tracked (Outbox.pending), never in
                # between (a change cut in parts is many messages).
                self._track(messages)
            if not messages:
                return
            self._write(messages, deadline)

    def _track(self, messages: list[Message[Any]]) -> None:
        ''' Register each PATCH-DOC's reply and track it until then (holding the document lock). '''
        for message in messages:
            if message.msgtype == 'PATCH-DOC':
                future = self.pending.add(message.header["msgid"])
                self._outbox.track(future, message)
                future.add_done_callback(self._patch_done)

    def _write(self, messages: list[Message[Any]], deadline: Deadline) -> None:
        ''' Write ``messages`` (tracked already) in order. '''
        assert self.send_lock.locked()
        transport = self.transport
        try:
            if transport is None:
                raise BrokenPipeError("not connected")
            transport.send(encode_messages(messages), deadline=deadline.at)
        except (OSError, WouldBlockTimeout) as e:
            cause = ConnectionLost(f"sending to the server failed: {e!r}", self._url)
            cause.__cause__ = e
            self._on_failure(cause)
            raise cause from e

    def _patch_done(self, future: Future[Any]) -> None:
        ''' A PATCH-DOC was answered: runs in the thread that resolved it
        (usually the reader). An acknowledgement may open the window.
        '''
        # A rejected part of a push is the push's to report; resynchronising
        # would bring the pushed document to the server's partial state.
        owned = self._outbox.owned_by_call(future)
        if self._outbox.settled(future):
            self.send_queued()
        error = future.exception()
        if isinstance(error, ServerError) and not owned:
            self._on_rejected(error)

    # Control frames ----------------------------------------------------------

    def send_control(self, opcode: int, payload: bytes) -> bool:
        ''' Send a ping, pong or close frame (any thread); failures are only logged.

        Returns:
            bool : whether the frame was written
        '''
        transport = self.transport
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
