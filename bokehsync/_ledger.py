''' What the next ``flush()`` must report, for one connection's outgoing
changes: the server's rejections (and the patches it drops with an OK), the
changes that may not be on the server because the connection was lost (and
why), and the changes made while reconnecting. No sockets, no lock of its
own: the outbox calls it holding ``outbox_mutex``.
'''
from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from ._parts import Split
from .exceptions import BokehSyncError, ConnectionLost, ServerError

__all__ = (
    'Ledger',
)


class Ledger:
    ''' The errors and counts of lost changes since the last report.

    Args:
        url (str, optional) : named in the exceptions
    '''

    def __init__(self, url: str | None = None) -> None:
        self._url = url
        self.errors: list[BokehSyncError] = []
        #: Changes made while reconnecting (the resync decides their fate).
        self.offline_changes = 0
        self._unsent = 0        # changes that could not be sent: the connection was gone
        self._unconfirmed = 0   # changes written whose acknowledgement never came
        self._cause: BokehSyncError | None = None
        self._partial: list[Split] = []  # changes sent in parts that failed part way
        self._rejected_parts: dict[int, Split] = {}  # id(ServerError) -> the split of the part it rejected
        #: Unacknowledged PATCH-DOCs the server will drop with an OK, and the error to report for each.
        self._dropped: dict[Future[Any], ServerError] = {}

    def unsent(self, n: int) -> None:
        ''' ``n`` changes could not be sent: the connection is gone for good. '''
        self._unsent += n

    def unconfirmed(self, n: int, cause: BaseException) -> None:
        ''' ``n`` changes were written, and their acknowledgement failed with ``cause``. '''
        self._unconfirmed += n
        self.set_cause(cause if isinstance(cause, BokehSyncError) else ConnectionLost(repr(cause), self._url))

    def set_cause(self, cause: BokehSyncError) -> None:
        ''' Why changes are lost: the first cause given since the last :meth:`clear_cause` wins. '''
        if self._cause is None:
            self._cause = cause

    def clear_cause(self) -> None:
        self._cause = None

    def gave_up(self) -> None:
        ''' Reconnecting gave up: the changes made meanwhile were not sent. '''
        self._unsent += self.offline_changes
        self.offline_changes = 0

    def rejected_part(self, error: ServerError, split: Split) -> None:
        ''' The server rejected a part of ``split``: its report says what of the change it has. '''
        self._rejected_parts[id(error)] = split

    def failed_part(self, split: Split) -> None:
        ''' A part of ``split`` was lost with the connection. '''
        self._partial.append(split)

    def will_drop(self, future: Future[Any], named: set[str], changes: int, msgid: str | None) -> None:
        ''' The server will drop the PATCH-DOC of ``future`` (``changes``
        changes) with an OK: it names the models ``named``, which it removed
        first. Reported, as a rejection is, once its OK arrives (:meth:`dropped`).
        '''
        names = ", ".join(sorted(named))
        text = (f"a document patch of {changes} change(s) names model(s) {names}, which another client "
                "removed first: the server dropped the patch (with an OK)")
        self._dropped[future] = ServerError(text, self._url, text=text, traceback=None, reqid=msgid)

    def dropping(self, future: Future[Any]) -> bool:
        ''' Whether the PATCH-DOC of ``future`` is known to be dropped. '''
        return future in self._dropped

    def dropped(self, future: Future[Any]) -> ServerError | None:
        ''' The error to report for the PATCH-DOC of ``future``, answered, if
        the server dropped it; forgets it.
        '''
        return self._dropped.pop(future, None)

    def take_offline_changes(self) -> int:
        ''' How many changes were made while reconnecting; resets the count. '''
        count, self.offline_changes = self.offline_changes, 0
        return count

    def forget_lost(self) -> None:
        ''' Forget the changes lost with the old connection (a re-push supersedes them). '''
        self.errors = [e for e in self.errors if not isinstance(e, ConnectionLost)]
        self._unsent = self._unconfirmed = 0
        self._cause = None
        self._partial = []
        self._dropped = {}

    def take(self) -> tuple[list[BokehSyncError], ConnectionLost | None]:
        ''' The errors since the last call (the rejections rephrased with what
        of a cut change the server has), and one ``ConnectionLost`` for every
        change that may not be on the server, or None; resets both.
        '''
        errors, self.errors = self.errors, []
        unsent, unconfirmed, cause = self._unsent, self._unconfirmed, self._cause
        self._unsent = self._unconfirmed = 0
        partial, self._partial = self._partial, []
        rejected, self._rejected_parts = self._rejected_parts, {}
        reports = {key: split.report() for key, split in rejected.items()}
        errors = [error.rephrased(f"{error.message}; {reports[id(error)]}") if id(error) in reports else error
                  for error in errors]
        if not (unsent or unconfirmed):
            return errors, None
        parts = ([f"{unconfirmed} sent but never acknowledged"] if unconfirmed else []) \
            + ([f"{unsent} not sent"] if unsent else [])
        why = cause.message if cause is not None else "the connection is closed"
        told = "".join(f"; {split.report()}" for split in partial)
        lost = ConnectionLost(f"{unsent + unconfirmed} document change(s) may not be on the server "
                              f"({', '.join(parts)}): {why}{told}", self._url, unsent=unsent,
                              unacknowledged=unconfirmed)
        lost.__cause__ = cause
        return errors, lost
