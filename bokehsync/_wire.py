''' Bokeh protocol messages to websocket messages and back, without sockets.

A Bokeh message travels as several websocket messages, never interleaved
with another Bokeh message's: header, metadata and content (text JSON), then
for each buffer a text buffer header ``{"id": ...}`` and a binary payload.
bokeh's own ``Protocol`` builds and assembles the message objects; this
module only splits them into fragments and checks the order on the way in,
with errors that say exactly what was wrong.
'''
from __future__ import annotations

import json
from typing import Any

from bokeh.protocol import Protocol
from bokeh.protocol.exceptions import MessageError, ProtocolError, ValidationError
from bokeh.protocol.message import Message

from .exceptions import ProtocolViolation

__all__ = (
    'Assembler',
    'fragments',
)

#: bokeh's registry of message types; stateless, shared by all connections.
PROTOCOL = Protocol()


def fragments(message: Message[Any]) -> list[str | bytes | memoryview]:
    ''' The websocket messages that carry ``message``, in order.

    Args:
        message (Message) : a bokeh protocol message

    Returns:
        list : ``str`` fragments go as text, the others as binary
    '''
    out: list[str | bytes | memoryview] = [message.header_json, message.metadata_json, message.content_json]
    for buffer in message.buffers:
        out.append(json.dumps(buffer.ref))
        # A byte view: bokeh hands numpy buffers over as typed memoryviews,
        # whose len() counts items, not bytes.
        out.append(memoryview(buffer.data).cast("B"))
    return out


class Assembler:
    ''' Collect websocket messages into bokeh protocol messages.

    Feed each websocket message (``str`` for text, bytes-like for binary);
    :meth:`feed` returns a complete bokeh message, or None while one is being
    assembled. Every deviation from the protocol raises
    :class:`ProtocolViolation` naming what was wrong.

    Args:
        url (str, optional) : named in the exceptions
    '''

    def __init__(self, url: str | None = None) -> None:
        self._url = url
        self._texts: list[str] = []
        self._partial: Message[Any] | None = None
        self._expected = 0
        self._buffer_id: Any = None
        self._header: dict[str, Any] | None = None

    def _violation(self, what: str) -> ProtocolViolation:
        return ProtocolViolation(f"bokeh protocol violation: {what}", self._url)

    @property
    def partial_header(self) -> dict[str, Any] | None:
        ''' The header of the message being assembled, if one is. '''
        if self._partial is not None:
            return self._partial.header
        if self._texts:
            return self._header
        return None

    @property
    def idle(self) -> bool:
        ''' Whether no message is partly assembled. '''
        return not self._texts and self._partial is None

    def feed(self, fragment: str | bytes | bytearray) -> Message[Any] | None:
        ''' Consume one websocket message.

        Args:
            fragment (str or bytes-like) : a text or binary websocket message

        Returns:
            Message or None : the bokeh message ``fragment`` completed, if any

        Raises:
            ProtocolViolation
        '''
        if self._partial is None:
            return self._feed_text_part(fragment)
        if self._buffer_id is None:
            if not isinstance(fragment, str):
                raise self._violation("expected a text buffer header, got a binary message")
            self._buffer_id = self._buffer_header(fragment)
            return None
        if isinstance(fragment, str):
            raise self._violation("expected a binary buffer payload, got a text message")
        try:
            self._partial.assemble_buffer({"id": self._buffer_id}, fragment)
        except ProtocolError as e:
            raise self._violation(str(e)) from e
        self._buffer_id = None
        return self._maybe_complete()

    def _feed_text_part(self, fragment: str | bytes | bytearray) -> Message[Any] | None:
        names = ("header", "metadata", "content")
        if not isinstance(fragment, str):
            raise self._violation(f"expected a text {names[len(self._texts)]}, got a binary message")
        self._texts.append(fragment)
        if len(self._texts) == 1:
            header = self._json(fragment, "header")
            if not isinstance(header, dict) or "msgtype" not in header or "msgid" not in header:
                raise self._violation(f"header without msgtype/msgid: {fragment[:200]!r}")
            num = header.get("num_buffers", 0)
            if not isinstance(num, int) or num < 0:
                raise self._violation(f"bad num_buffers {num!r}")
            self._expected = num
            self._header = header
            return None
        if len(self._texts) < 3:
            return None
        header_json, metadata_json, content_json = self._texts
        self._texts = []
        try:
            self._partial = PROTOCOL.assemble(header_json, metadata_json, content_json)
        except (MessageError, ProtocolError, ValidationError) as e:
            raise self._violation(str(e)) from e
        except (KeyError, ValueError, TypeError) as e:
            raise self._violation(f"unknown or malformed message: {e!r}") from e
        return self._maybe_complete()

    def _maybe_complete(self) -> Message[Any] | None:
        partial = self._partial
        assert partial is not None
        if len(partial.buffers) < self._expected:
            return None
        self._partial = None
        return partial

    def _buffer_header(self, text: str) -> Any:
        header = self._json(text, "buffer header")
        if not isinstance(header, dict) or set(header) != {"id"}:
            raise self._violation(f"malformed buffer header {text[:200]!r}")
        return header["id"]

    def _json(self, text: str, what: str) -> Any:
        try:
            return json.loads(text)
        except ValueError as e:
            raise self._violation(f"{what} is not valid JSON: {text[:200]!r}") from e
