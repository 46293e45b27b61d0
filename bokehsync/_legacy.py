''' The private hooks of bokeh.client's ``ClientSession`` that code written
for it calls or overrides (bokeh's own connection calls ``_handle_patch`` and
``_notify_disconnected``; tests and helpers call ``_loop_until_closed``...),
kept on bokehsync's ``ClientSession`` with their bokeh.client signatures.
'''
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bokeh.util.token import generate_session_id

if TYPE_CHECKING:
    from bokeh.core.types import ID
    from bokeh.document import Document
    from bokeh.document.events import DocumentPatchedEvent, SessionCallbackAdded, SessionCallbackRemoved
    from bokeh.protocol.message import Message

    from ._docsync import DocumentSync
    from .connection import ClientConnection

__all__ = (
    'BokehClientHooks',
)


class BokehClientHooks:
    ''' bokeh.client's private session hooks, over a session's document side
    (``_sync``) and connection (``_connection``).
    '''

    _sync: DocumentSync
    _connection: ClientConnection

    def _attach_document(self, document: Document) -> None:
        with self._sync.lock:
            self._sync.attach(document)

    def _document_patched(self, event: DocumentPatchedEvent) -> None:
        ''' A change of ``session.document`` (bokeh calls this in the thread that made it). '''
        self._sync.on_change(event)

    def _handle_patch(self, message: Message[Any]) -> None:
        ''' Apply a server PATCH-DOC. '''
        self._sync.apply_patch(message)

    @classmethod
    def _ensure_session_id(cls, session_id: ID | None) -> ID:
        return session_id if session_id is not None else generate_session_id()

    def _loop_until_closed(self) -> None:
        ''' Block until the connection closes. '''
        self._connection.loop_until_closed()

    def _notify_disconnected(self) -> None:
        ''' The connection closed for good: stop listening to the document. '''
        self._sync.detach()

    def _session_callback_added(self, event: SessionCallbackAdded) -> None:
        self._sync.callbacks.add_session_callback(event.callback)

    def _session_callback_removed(self, event: SessionCallbackRemoved) -> None:
        self._sync.callbacks.remove_session_callback(event.callback)
