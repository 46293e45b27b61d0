''' The names of ``bokeh.client.session``: ``ClientSession``,
``pull_session``, ``push_session``, ``show_session``, so that
``from bokeh.client.session import ...`` becomes
``from bokehsync.session import ...``.

They live in modules of their own: ``_client`` (the session), ``_open``
(pull and push), ``_browser`` (show).
'''
from __future__ import annotations

from ._browser import show_session
from ._client import DEFAULT_SESSION_ID, ClientSession
from ._open import pull_session, push_session

__all__ = (
    'DEFAULT_SESSION_ID',
    'ClientSession',
    'pull_session',
    'push_session',
    'show_session',
)
