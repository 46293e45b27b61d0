''' The reader thread: the only reader of a connection's socket.

It turns bytes into frames (``_frames``), frames into Bokeh messages
(``_wire.Assembler``), and routes each message: a reply resolves the future
of the request whose msgid it carries as ``reqid`` (``_pending``); a server
PATCH-DOC is applied to the session document (``on_patch``); pings are
answered; silence is broken by keepalive pings. When the connection ends, for
whatever reason, it reports the cause once (``on_exit``) in ``finally``: a
reader thread never dies silently.
'''
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from bokeh.protocol.message import Message

from . import _frames
from ._connect import Opened
from ._keepalive import Keepalive
from ._pending import Pending
from ._transport import RECV_SIZE, WouldBlockTimeout
from ._wire import report_progress
from .exceptions import BokehSyncError, ConnectionLost, ProtocolViolation, ServerError
from .states import ErrorReason

__all__ = (
    'Exit',
    'Reader',
)

log = logging.getLogger(__name__)

#: ``on_exit(cause, reason, close_code)``: why the reader stopped; ``cause``
#: is None for a close we asked for.
Exit = Callable[[BokehSyncError | None, ErrorReason, "int | None"], None]


class Reader:
    ''' The reader thread of one open session websocket.

    Args:
        opened (Opened) : the socket, parser and assembler after the ACK
        pending (Pending) : the requests waiting for replies
        url (str) : named in the exceptions and logs
        name (str) : the thread's name (``bokehsync-reader-<session>``)
        keepalive (Keepalive) : when to ping, when silence means death
        on_patch (callable) : ``on_patch(message)`` applies a server PATCH-DOC
            (called on this thread)
        send_control (callable) : ``send_control(opcode, payload) -> bool``
        closing (callable) : ``closing() -> bool``, whether the connection is
            being closed on purpose
        on_exit (callable) : see :data:`Exit`; called once, on this thread
        on_message (callable) : ``on_message()``, called on this thread after
            each message was handled (waiters re-check their conditions)
    '''

    def __init__(self, opened: Opened, pending: Pending, *, url: str, name: str, keepalive: Keepalive,
            on_patch: Callable[[Message[Any]], None], send_control: Callable[[int, bytes], bool],
            closing: Callable[[], bool], on_exit: Exit, on_message: Callable[[], None]) -> None:
        self._opened = opened
        self._pending = pending
        self._url = url
        self._keepalive = keepalive
        self._on_patch = on_patch
        self._send_control = send_control
        self._closing = closing
        self._on_exit = on_exit
        self._on_message = on_message
        # A daemon: an open session must never keep the interpreter from
        # exiting (at-exit handling closes it first, see _process).
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        ''' Read, assemble, dispatch, until the connection ends. '''
        transport, parser, assembler = self._opened.transport, self._opened.parser, self._opened.assembler
        keepalive = self._keepalive
        cause: BokehSyncError | None = None
        reason = ErrorReason.NETWORK_ERROR
        code: int | None = None
        buf = bytearray(RECV_SIZE)
        view = memoryview(buf)
        received = 0  # bytes of a reply with a progress callback, so far
        try:
            events = self._opened.early
            while True:
                for event in events:
                    if isinstance(event, _frames.Close):
                        code = event.code
                        cause, reason = self._on_close_frame(event)
                        return
                    if isinstance(event, _frames.Ping):
                        self._send_control(_frames.OP_PONG, event.payload)
                    elif not isinstance(event, _frames.Pong):
                        message = assembler.feed(event)
                        if message is not None:
                            self._dispatch(message)
                            self._on_message()
                        parser.discard_binary = self._is_push_echo(assembler.partial_header)
                try:
                    n = transport.recv(buf, deadline=keepalive.deadline())
                except WouldBlockTimeout:
                    if keepalive.expired():
                        cause = ConnectionLost(f"no answer to a keepalive ping within {keepalive.timeout} s: "
                                               "the server or the network stopped responding", self._url)
                        return
                    if self._send_control(_frames.OP_PING, b"bokehsync"):
                        keepalive.pinged()
                    else:
                        keepalive.traffic()  # busy sending: try again later
                    events = []
                    continue
                keepalive.traffic()
                if self._pending.reporting:
                    received = self._report(assembler.partial_header, received, n)
                if n == 0:
                    if self._closing():
                        reason = ErrorReason.NO_ERROR
                    else:
                        cause = ConnectionLost("the server closed the connection without a close frame", self._url)
                    return
                events = parser.feed(view[:n])
        except ProtocolViolation as e:
            log.error("%s", e)
            cause, code = e, 1002
            self._send_control(_frames.OP_CLOSE, _frames.close_payload(1002, "protocol error"))
        except OSError as e:
            if self._closing():
                reason = ErrorReason.NO_ERROR
            else:
                cause = ConnectionLost(f"the connection broke: {e!r}", self._url)
                cause.__cause__ = e
        except BaseException as e:
            log.exception("the reader thread of %s failed", self._url)
            cause = ConnectionLost(f"the reader thread failed: {e!r}", self._url)
            cause.__cause__ = e
        finally:
            self._on_exit(cause, reason, code)

    def _report(self, header: dict[str, Any] | None, received: int, n: int) -> int:
        ''' Report the bytes of a reply that has a progress callback; returns the new count. '''
        entry = self._pending.peek(header["reqid"]) if header and "reqid" in header else None
        if entry is None or entry.progress is None:
            return n
        received += n
        report_progress(entry.progress, received, None)
        return received

    def _on_close_frame(self, close: _frames.Close) -> tuple[BokehSyncError | None, ErrorReason]:
        ''' The server sent a close frame: answer it, and say what it meant. '''
        closing = self._closing()
        if not closing:
            payload = _frames.close_payload(close.code, "") if close.code else b""
            self._send_control(_frames.OP_CLOSE, payload)
        if closing and close.code in (None, 1000, 1001):
            return None, ErrorReason.NO_ERROR
        detail = f"the server closed the connection (code {close.code}"
        if close.code in (10000, 10001):
            detail += ", Bokeh protocol error"
        elif close.code == 1009:
            detail += ", message too big: raise the server's --websocket-max-message-size"
        detail += f", reason {close.reason!r})" if close.reason else ")"
        return ConnectionLost(detail, self._url, close_code=close.code, close_reason=close.reason), \
            ErrorReason.NETWORK_ERROR

    def _dispatch(self, message: Message[Any]) -> None:
        ''' Route one complete message. '''
        reqid = message.header.get("reqid")
        msgtype = message.msgtype
        if reqid is not None:
            entry = self._pending.pop(reqid)
            if entry is None:
                if self._pending.was_abandoned(reqid):
                    log.debug("dropping the late reply %s to %s", msgtype, reqid)
                    return
                raise ProtocolViolation(f"bokeh protocol violation: {msgtype} answers unknown request {reqid!r}",
                                        self._url)
            if msgtype == 'ERROR':
                content = message.content if isinstance(message.content, dict) else {}
                text = str(content.get("text", ""))
                entry.future.set_exception(ServerError(f"the server answered ERROR: {text}", self._url, text=text,
                                                       traceback=content.get("traceback"), reqid=reqid))
                return
            try:
                result = entry.on_reply(message) if entry.on_reply is not None else message
            except BaseException as e:
                entry.future.set_exception(e)
            else:
                entry.future.set_result(result)
            return
        if msgtype == 'PATCH-DOC':
            if self._pending.pushing:
                # The server broadcasts a pushed document back to us before
                # its OK: it describes what we sent (bokeh.client, too, drops
                # every message that arrives while it waits for a reply).
                log.debug("dropping the server's echo of a pushed document")
                return
            self._on_patch(message)
        elif msgtype == 'ERROR':
            log.error("the server at %s sent an ERROR: %s", self._url, message.content)
        else:
            raise ProtocolViolation(f"bokeh protocol violation: unexpected unsolicited {msgtype}", self._url)

    def _is_push_echo(self, header: dict[str, Any] | None) -> bool:
        ''' Whether the message being assembled is a server PATCH-DOC that
        :meth:`_dispatch` will drop: its buffers need not be kept in memory.
        '''
        return self._pending.pushing and header is not None and header.get("msgtype") == "PATCH-DOC" \
            and "reqid" not in header
