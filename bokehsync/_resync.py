''' Bringing the session's document back in step with the server's.

Two occasions:

* **After a reconnect** (:meth:`Resync.after_reconnect`, on the reconnect
  thread): a pushed session pushes its document again (its state wins,
  changes made while disconnected included); a pulled session pulls again
  (the server's state wins, as in BokehJS), and changes made while
  disconnected are reported by the next ``flush()`` as lost.
* **When the document diverged** (:meth:`Resync.soon`, from any thread, the
  reader's included): a server change could not be applied, crossed a change
  of ours with no exact local rule (``_converge``), or the server rejected a
  change of ours. The server's document is pulled without waiting; the reader
  applies the reply in place (``DocumentSync.apply_resync``, ``_reconcile``),
  in order with the server's patches, and the user hears of it through
  ``session.on_resync``. One at a time: a divergence found while one is on
  its way is repaired by it, and ``flush()`` waits for it.
'''
from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from ._wire import PROTOCOL
from .exceptions import BokehSyncError, ConnectionLost

if TYPE_CHECKING:
    from bokeh.document import Document

    from ._docsync import DocumentSync
    from ._hooks import Hooks
    from ._link import Link
    from ._requests import Requests

__all__ = (
    'Resync',
)

log = logging.getLogger(__name__)


class Resync:
    ''' The resyncs of one connection.

    Args:
        sync (DocumentSync) : the session's document side
        requests (Requests) : to send the pull
        link (Link) : the connection's lifecycle (a failed resync ends it)
        hooks (Hooks) : ``resync`` callbacks
        url (str) : named in logs and exceptions
    '''

    def __init__(self, sync: DocumentSync, requests: Requests, link: Link, hooks: Hooks, url: str) -> None:
        self._sync = sync
        self._requests = requests
        self._link = link
        self._hooks = hooks
        self._url = url
        #: The reply of the resync on its way, if one is.
        self.outstanding: Future[Any] | None = None

    def soon(self, reason: str) -> None:
        ''' The document diverged: pull the server's, without waiting. '''
        if self.outstanding is not None or not self._link.connected:
            return
        log.warning("resynchronising the document of %s with the server: %s", self._url, reason)
        future = self._requests.submit(PROTOCOL.create('PULL-DOC-REQ'), on_reply=self._sync.apply_resync)
        self.outstanding = future
        future.add_done_callback(lambda done: self._done(done, reason))
        self._sync.outbox.wake()  # a request goes even while the window is full

    def _done(self, future: Future[Any], reason: str) -> None:
        ''' The resync's reply was applied, or failed (the thread that resolved it). '''
        self.outstanding = None
        error = future.exception()
        if error is None:
            self._hooks.run("resync", reason)
            if future.result():
                self.soon("changes of ours crossed the resync")
            return
        if isinstance(error, BokehSyncError) and not isinstance(error, ConnectionLost):
            log.error("resynchronising the document of %s failed: %s", self._url, error)
            self._link.abort(error)  # the document cannot follow the server's: this connection ends

    @staticmethod
    def failure(future: Future[Any] | None) -> BokehSyncError | None:
        ''' The error to report for a finished resync, if it failed. '''
        if future is None or not future.done() or future.exception() is None:
            return None
        error = future.exception()
        if not isinstance(error, BokehSyncError):
            return None
        return error.rephrased(f"the document could not be brought back in step with the server's: {error.message}")

    def after_reconnect(self, push: Callable[[Document], object], pull: Callable[[Document], object]) -> None:
        ''' Bring the server and the document together after a reconnect
        (the reconnect thread): push again or pull again, see the module docs.

        Args:
            push, pull (callable) : ``push(document)`` / ``pull(document)``, blocking

        Raises:
            BokehSyncError: the push or pull failed
        '''
        sync = self._sync
        doc = sync.document
        if doc is None:
            return
        if sync.mode == "push":
            push(doc)
            sync.forget_left_to_resync()
            sync.outbox.take_offline_changes()
            sync.outbox.forget_lost()
            return
        pull(doc)
        lost = sync.outbox.take_offline_changes()
        if lost:
            error = ConnectionLost(f"{lost} document change(s) made while disconnected were not sent: the session "
                                   "was pulled again and the server's state won", self._url)
            log.error("%s", error)
            sync.outbox.add_error(error)
