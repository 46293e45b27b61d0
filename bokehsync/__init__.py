''' A thread-based synchronous client for the Bokeh server.

A drop-in for ``bokeh.client``: change the import, keep the code.

.. code-block:: python

    from bokehsync import pull_session

    with pull_session(url="http://localhost:5006/app") as session:
        session.document.roots[0].title.text = "hello"

No event loop is exposed or needed: one background thread per connection
reads the socket, and every blocking call has a timeout.
'''
from __future__ import annotations

import logging

from . import _compat  # noqa: F401  (first: refuses an unsupported bokeh with a clear ImportError)

# isort: split
# bokeh.document next, before anything else of bokeh's: every session needs it,
# and importing it first is cheaper (measured in spawned worker processes:
# 370 ms for all of bokehsync this way, 485 ms when bokeh.resources comes first).
import bokeh.document  # noqa: F401

# isort: split
from ._ids import use_unique_ids
from ._reconnect import Reconnect
from .connection import DEFAULT_TIMEOUT, ClientConnection
from .exceptions import (
    BokehSyncError,
    ConnectionFailed,
    ConnectionLost,
    ConnectionRejected,
    MessageTooBig,
    ProtocolViolation,
    ReplyTimeout,
    ServerError,
    UnknownModelType,
    WrongProcess,
)
from .session import DEFAULT_SESSION_ID, ClientSession, pull_session, push_session, show_session
from .states import ErrorReason

# Models the program makes from now on get UUIDs, not the per-process counter
# whose ids collide with the server's (_ids).
use_unique_ids()

__version__ = "0.1.0"

__all__ = (
    'DEFAULT_SESSION_ID',
    'DEFAULT_TIMEOUT',
    'BokehSyncError',
    'ClientConnection',
    'ClientSession',
    'ConnectionFailed',
    'ConnectionLost',
    'ConnectionRejected',
    'ErrorReason',
    'MessageTooBig',
    'ProtocolViolation',
    'Reconnect',
    'ReplyTimeout',
    'ServerError',
    'UnknownModelType',
    'WrongProcess',
    'pull_session',
    'push_session',
    'show_session',
)

logging.getLogger(__name__).addHandler(logging.NullHandler())
