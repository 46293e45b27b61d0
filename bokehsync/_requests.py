''' Blocking requests: queue a message, send it, wait for the reply its msgid names.

A request's future is entered in the link's pending table before the message
is queued, so a reply can never come before it is expected; the message goes
through the session's outbox, in order with the document changes queued
before it, and the caller's thread sends it (with whatever is queued ahead of
it). Then the caller waits on the future, up to its deadline. Many threads
may have requests in flight on one connection: each gets the reply that
carries its own msgid as ``reqid``.

No blocking call may run on the reader thread or holding ``session.lock``:
the reader may need that lock to apply server changes that come before the
reply (the Bokeh server sends on one connection in the order it applied).
'''
from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from bokeh.protocol.message import Message

from ._compat import FutureTimeout
from ._deadline import Deadline, check_timeout
from ._docsync import DocumentSync
from ._link import Link
from ._sender import Sender
from .exceptions import ConnectionLost, ProtocolViolation, ReplyTimeout, ServerError
from .states import CONNECTED_AFTER_ACK, NOT_YET_CONNECTED

__all__ = (
    'Requests',
)


class Requests:
    ''' The request/reply side of one connection.

    Args:
        link (Link) : the connection's websocket lifecycle
        sync (DocumentSync) : the session's document side (its lock and outbox)
        sender (Sender) : writes the outbox
        timeout (float) : the default seconds of every blocking call
    '''

    def __init__(self, link: Link, sync: DocumentSync, sender: Sender, timeout: float) -> None:
        self._link = link
        self._sync = sync
        self._sender = sender
        self.timeout = timeout

    def deadline(self, timeout: float | None) -> Deadline:
        ''' A deadline ``timeout`` seconds away (default: the connection's).

        Raises:
            ValueError: not a positive number of seconds
        '''
        return Deadline(self.timeout if timeout is None else check_timeout(timeout))

    def can_wait(self) -> bool:
        ''' Whether this thread may block on replies (see :meth:`check_can_wait`). '''
        return threading.current_thread() is not self._link.reader_thread and not self._sync.holds_lock()

    def check_can_wait(self, what: str) -> None:
        ''' Raise RuntimeError on the reader thread or holding ``session.lock``. '''
        if threading.current_thread() is self._link.reader_thread:
            raise RuntimeError(f"cannot {what} from the reader thread (a document callback run for a "
                               "server change): it would wait for itself")
        if self._sync.holds_lock():
            raise RuntimeError(f"cannot {what} while holding session.lock: the reader thread needs it "
                               "to apply server changes that may come before the reply")

    def begin(self, what: str, timeout: float | None) -> Deadline:
        ''' The checks every blocking request starts with; its deadline.

        Raises:
            WrongProcess, RuntimeError, ValueError, ConnectionLost
        '''
        deadline = self.deadline(timeout)
        self.check_can_wait(what)
        self._link.claim(deadline)
        if not isinstance(self._link.state, CONNECTED_AFTER_ACK):
            raise self.not_connected(what)
        return deadline

    def not_connected(self, what: str) -> ConnectionLost:
        ''' The error for a call that needs an open connection. '''
        link = self._link
        if isinstance(link.state, NOT_YET_CONNECTED):
            return ConnectionLost(f"cannot {what}: not connected (call connect() first)", link.url)
        error = link.error
        exc = ConnectionLost(f"cannot {what}: the connection is closed"
                             + (f" ({error.message})" if error is not None else ""), link.url)
        exc.__cause__ = error
        return exc

    def wait_until(self, predicate: Callable[[], object], timeout: float | None) -> None:
        ''' Block until ``predicate()`` is true (``ClientConnection._loop_until``):
        re-checked after every message and every ``_link.POLL`` seconds.
        A connection never connected connects first, as bokeh.client's does
        (its ``connect()`` is ``_loop_until(connected_or_closed)``).

        Raises:
            ReplyTimeout, RuntimeError
        '''
        deadline = self.deadline(timeout)
        self.check_can_wait("wait in _loop_until")
        self._link.claim(deadline)
        self._link.connect(deadline)
        if not self._link.wait_for(predicate, deadline):
            raise ReplyTimeout(f"_loop_until: {getattr(predicate, '__name__', 'the predicate')} still false after "
                               f"{deadline.timeout} s", self._link.url, msgid=None, timeout=deadline.timeout)

    def request(self, message: Message[Any], *, on_reply: Callable[[Message[Any]], Any] | None = None,
            timeout: float | None = None, what: str = "", progress: Callable[[int, int | None], Any] | None = None,
            ) -> Any:
        ''' Send a request and wait for its reply.

        Returns:
            the reply, or what ``on_reply`` returned for it

        Raises:
            ServerError, ConnectionLost, ReplyTimeout, ProtocolViolation, and
            what :meth:`begin` raises
        '''
        deadline = self.begin(what or message.msgtype, timeout)
        future = self.submit(message, on_reply, progress=progress)
        return self.wait_reply(message, future, deadline, what)

    def submit(self, message: Message[Any], on_reply: Callable[[Message[Any]], Any] | None = None, *,
            progress: Callable[[int, int | None], Any] | None = None, drops_patches: bool = False) -> Future[Any]:
        ''' Register the reply's future, then queue the request (in this order). '''
        future = self._link.pending.add(message.header["msgid"], on_reply, progress=progress,
                                        drops_patches=drops_patches)
        self._sync.outbox.add_request(message)
        return future

    def wait_reply(self, message: Message[Any], future: Future[Any], deadline: Deadline, what: str) -> Any:
        ''' Send what is queued, then wait for ``future`` until ``deadline``. '''
        msgid = message.header["msgid"]
        pending = self._link.pending
        url = self._link.url
        try:
            self._sender.pump(block=True, deadline=deadline)
        except BaseException:
            pending.abandon(msgid)  # a reply may still come: drop it quietly
            raise
        try:
            return future.result(timeout=deadline.remaining())
        except FutureTimeout:
            if not future.done():
                pending.abandon(msgid)
                raise ReplyTimeout(f"no reply to {message.msgtype} within {deadline.timeout} s", url,
                                   msgid=msgid, timeout=deadline.timeout) from None
            return future.result()
        except (ConnectionLost, ProtocolViolation) as e:
            # A fresh exception per caller: the shared cause is raised in
            # many threads at once and must not collect their tracebacks.
            raise e.rephrased(f"cannot {what or message.msgtype}: {e.message}") from e
        except ServerError as e:
            if what:
                raise ServerError(f"failed to {what}: {e.message}", url, text=e.text, traceback=e.traceback,
                                  reqid=e.reqid) from e
            raise
