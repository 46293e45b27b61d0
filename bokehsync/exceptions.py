''' Every exception bokehsync raises.

Each class also inherits the built-in exception that ``bokeh.client`` raises
in the same situation, so ``except OSError`` / ``except RuntimeError`` /
``except TimeoutError`` clauses written for ``bokeh.client`` keep working:

.. code-block:: none

    BokehSyncError(Exception)
    ├── ConnectionFailed(BokehSyncError, OSError)      no session could be opened
    │   └── ConnectionRejected(ConnectionFailed)       the server closed right after the upgrade
    ├── ConnectionLost(BokehSyncError, RuntimeError)   an open connection died, or is closed
    ├── ServerError(BokehSyncError, RuntimeError)      the server answered a request with ERROR
    ├── MessageTooBig(BokehSyncError, RuntimeError)    one value is over the server's message limit
    ├── ProtocolViolation(BokehSyncError, RuntimeError) the server sent what the protocol forbids
    ├── ReplyTimeout(BokehSyncError, TimeoutError)     no reply within the timeout
    ├── UnknownModelType(BokehSyncError, DeserializationError)
    │                                                   the document uses model classes this process lacks
    └── WrongProcess(BokehSyncError, RuntimeError)     a session used in a process forked from C code

Every exception keeps the websocket ``url`` it concerns (``None`` when it has
none), names it in its message, and pickles, so it can cross a process pool.

``DeserializationError`` is bokeh's (``bokeh.core.serialization``, a
``ValueError``). This module imports nothing from the rest of the package.
'''
from __future__ import annotations

from typing import Any

from bokeh.core.serialization import DeserializationError

__all__ = (
    'BokehSyncError',
    'ConnectionFailed',
    'ConnectionLost',
    'ConnectionRejected',
    'MessageTooBig',
    'ProtocolViolation',
    'ReplyTimeout',
    'ServerError',
    'UnknownModelType',
    'WrongProcess',
)


class BokehSyncError(Exception):
    ''' Base class of every bokehsync exception.

    Args:
        message (str) : what went wrong, in words
        url (str, optional) : the websocket URL concerned
    '''

    def __init__(self, message: str, url: str | None = None, **context: Any) -> None:
        self.message = message
        self.url = url
        self._context = context
        for name, value in context.items():
            setattr(self, name, value)
        super().__init__(self._format())

    def _format(self) -> str:
        if self.url and self.url not in self.message:
            return f"{self.message} [{self.url}]"
        return self.message

    def __str__(self) -> str:
        return self._format()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.url, self._context))

    def rephrased(self, message: str) -> BokehSyncError:
        ''' A new exception of the same class, URL and context, saying ``message``.

        Args:
            message (str) : what went wrong, in words

        Returns:
            BokehSyncError : of ``type(self)``
        '''
        return _rebuild(type(self), message, self.url, self._context)


def _rebuild(cls: type[BokehSyncError], message: str, url: str | None,
        context: dict[str, Any]) -> BokehSyncError:
    return cls(message, url, **context)


class ConnectionFailed(BokehSyncError, OSError):
    ''' No session could be opened: refused, DNS, TLS, an HTTP error at the
    handshake (``status`` holds the code, e.g. 404 for a wrong app path, 403
    for a refused Origin), or a timeout while connecting.
    '''

    #: The HTTP status of the handshake's answer, if it was an error.
    status: int | None = None


class ConnectionRejected(ConnectionFailed):
    ''' The server accepted the websocket upgrade and then closed before its
    ACK: it refused the session token (bad signature, expired) or an auth hook
    refused the request. ``close_code`` and ``close_reason`` hold what the
    server sent, if anything.
    '''

    #: The websocket close code the server sent, if any.
    close_code: int | None = None
    #: The close reason the server sent ("" if none).
    close_reason: str = ""


class ConnectionLost(BokehSyncError, RuntimeError):
    ''' The connection died (or was closed) while a call needed it. The cause
    is chained as ``__cause__`` where there is one.
    '''

    #: The websocket close code the server sent, if it closed the connection.
    close_code: int | None = None
    #: The close reason the server sent ("" if none).
    close_reason: str = ""
    #: Document changes that were not sent because the connection was gone.
    unsent: int = 0
    #: Document changes that were sent but never acknowledged by the server.
    unacknowledged: int = 0


class ServerError(BokehSyncError, RuntimeError):
    ''' The server answered a request (or rejected a document patch) with an
    ERROR message. ``text`` and ``traceback`` hold what the server sent;
    ``reqid`` the id of the request it answered. Also raised by ``flush()``
    for a document patch the server dropped with an OK because it names a
    model another client had removed (``text`` says which; ``traceback`` is
    None).
    '''

    #: The error text the server sent.
    text: str = ""
    #: The server-side traceback it sent, if any.
    traceback: str | None = None
    #: The msgid of the request (or PATCH-DOC) it answered.
    reqid: str | None = None


class MessageTooBig(BokehSyncError, RuntimeError):
    ''' A change or push holds a single value that cannot be sent in parts
    (one 2-D image, one string, a multi-dimensional array column...) and is
    larger than the server accepts in one websocket message
    (``server_max_message_size``, the server's ``--websocket-max-message-size``,
    20 MiB by default). Raised before anything of that change was sent; the
    connection stays open. Everything else too big for one message is sent
    in parts. (bokeh.client raises ``RuntimeError("Connection to server was
    lost")`` here: the server closes the connection.)
    '''

    #: The model holding the value, e.g. ``ColumnDataSource(id='p1001')``.
    model: str = ""
    #: The property, e.g. ``data`` or ``text``.
    attr: str = ""
    #: The column, for a value in a data source's column (else None).
    column: str | None = None
    #: The value's size in bytes.
    size: int = 0
    #: The server's limit it is over, in bytes.
    limit: int = 0


class ProtocolViolation(BokehSyncError, RuntimeError):
    ''' The server sent something the Bokeh or websocket protocol forbids; the
    connection is closed. The message names what was wrong.
    '''


class ReplyTimeout(BokehSyncError, TimeoutError):
    ''' A blocking call did not complete within its timeout. ``msgid`` is the
    request that went unanswered (``None`` for a connect), ``timeout`` the
    limit in seconds.
    '''

    #: The msgid of the request that went unanswered (None for a connect or a flush).
    msgid: str | None = None
    #: The limit that passed, in seconds.
    timeout: float | None = None


class UnknownModelType(BokehSyncError, DeserializationError):
    ''' The server's document uses model classes that this process does not
    define (bokeh.client raises bokeh's ``DeserializationError`` here). The
    client needs the same model classes as the server: import the module that
    defines them (``module``) before pulling. bokehsync never imports a module
    because a server named it. The session is closed.
    '''

    #: The first model type name that could not be resolved, e.g. ``panel.models.layout.Column``.
    type_name: str = ""
    #: Its module, e.g. ``panel.models.layout`` (empty for a name without one).
    module: str = ""
    #: Every unresolved type name in the document, sorted.
    type_names: tuple[str, ...] = ()


class WrongProcess(BokehSyncError, RuntimeError):
    ''' A session was used in a process forked without Python's fork handlers
    (a ``fork()`` from C code), so the parent's socket is still in it. After
    ``os.fork()`` and ``multiprocessing`` forks, a session opens the child's
    own connection on first use instead (see :doc:`threading`).
    '''
