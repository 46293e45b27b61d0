''' Comparing documents across processes, and waiting until every client is in step. '''
from __future__ import annotations

from typing import Any

import numpy as np
from bokeh.document import Document

from bokehsync import ClientSession, pull_session
from tests.support import LONG

__all__ = (
    'Recorder',
    'canonical',
    'quiet',
    'server_state',
)


def canonical(doc: Document) -> Any:
    ''' A document's content, comparable across processes: every model's id, class and values
    (models by id, arrays as lists), the roots in order, the title. '''
    def norm(value: Any) -> Any:
        if hasattr(value, "id") and hasattr(value, "properties_with_values"):
            return ("ref", value.id)
        if isinstance(value, dict):
            return sorted((k, norm(v)) for k, v in value.items())
        if isinstance(value, (list, tuple, np.ndarray)):
            return [norm(v) for v in list(value)]
        if isinstance(value, np.generic):
            return value.item()
        return value
    with_values = [(m.id, type(m).__name__, norm(m.properties_with_values(include_defaults=True)))
                   for m in doc.models]
    return sorted(with_values), [r.id for r in doc.roots], doc.title


def server_state(url: str, session_id: str) -> Any:
    ''' The server's document, pulled back in a fresh session. '''
    with pull_session(session_id=session_id, url=url, timeout=LONG) as fresh:
        return canonical(fresh.document)


def quiet(*sessions: ClientSession) -> None:
    ''' Every client flushed; every broadcast the server sent before has been applied (a round trip
    on each client), and every resync that caused is done (a flush waits for it). '''
    for _ in range(2):
        for session in sessions:
            session.flush()
        for session in sessions:
            session.force_roundtrip()
    for session in sessions:
        session.flush()


class Recorder:
    ''' Receives a document's change events, as a session does
    (``document.callbacks.on_change_dispatch_to(recorder)``). '''

    def __init__(self) -> None:
        self.events: list[Any] = []

    def _document_patched(self, event: Any) -> None:
        self.events.append(event)
