''' Bokeh protocol messages to websocket messages and back, without sockets.

A Bokeh message travels as several websocket messages, never interleaved
with another Bokeh message's: header, metadata and content (text JSON), then
for each buffer a text buffer header ``{"id": ...}`` and a binary payload.
bokeh's own ``Protocol`` builds and assembles the message objects; this
module splits them into fragments and masked frames on the way out (merging
neighbouring PATCH-DOCs, reporting progress), and checks the order on the way
in, with errors that say exactly what was wrong.
'''
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any, cast

from bokeh.protocol import Protocol
from bokeh.protocol.exceptions import MessageError, ProtocolError, ValidationError
from bokeh.protocol.message import Message

from . import _frames
from ._compat import add_buffers
from ._events import PATCH_BYTES, Grouping, risk_of_rep
from .exceptions import ProtocolViolation

__all__ = (
    'Assembler',
    'Progress',
    'encode_messages',
    'fragments',
    'merge_patches',
    'merge_runs',
    'patch_bytes',
    'report_progress',
)

log = logging.getLogger(__name__)

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


#: Frames up to this size are joined with their neighbours into one write.
_JOIN_LIMIT = 1 << 18

_EVENTS_HEAD = '{"events":['
_EVENTS_TAIL = ']}'


def patch_bytes(message: Message[Any]) -> int:
    ''' The size of a PATCH-DOC on the wire, near enough. '''
    return len(message.content_json) + sum(memoryview(b.data).nbytes for b in message.buffers)


def merge_patches(patches: list[Message[Any]]) -> Message[Any]:
    ''' One PATCH-DOC carrying the events of several, in order.

    Each patch was serialized in the order its changes happened, so merging
    is concatenation: the events keep their order, every buffer comes along,
    and the server ends up with the same document as if each had been sent
    alone.

    Args:
        patches (list[Message]) : PATCH-DOC messages, oldest first

    Returns:
        Message : ``patches[0]`` itself when there is one, else a new PATCH-DOC
    '''
    if len(patches) == 1:
        return patches[0]
    cls = type(patches[0])
    events: list[Any] = []
    buffers: list[Any] = []
    texts: list[str] | None = []
    for patch in patches:
        events.extend(patch.content["events"])
        buffers.extend(patch.buffers)
        text = patch.content_json
        if texts is not None and set(patch.content) == {"events"} \
                and text.startswith(_EVENTS_HEAD) and text.endswith(_EVENTS_TAIL):
            inner = text[len(_EVENTS_HEAD):-len(_EVENTS_TAIL)]
            if inner:
                texts.append(inner)
        else:
            texts = None  # not the shape we know: let bokeh encode the merged content
    merged = cls(cls.create_header(), {}, {"events": events})
    if buffers:
        add_buffers(merged, buffers)
    if texts is not None:
        # The events are JSON already: join the texts instead of encoding
        # them again (bokeh encodes ``content`` itself if this cache is unset).
        merged._content_json = _EVENTS_HEAD + ",".join(texts) + _EVENTS_TAIL
    return merged


def merge_runs(messages: list[Message[Any]], limit: int = PATCH_BYTES) -> list[Message[Any]]:
    ''' ``messages`` with each run of neighbouring PATCH-DOCs merged into as
    few as fit ``limit`` bytes each and ``_events.Grouping`` allows; other
    messages, and the parts of a change cut for the server's limit
    (``_split``), stay as they are, where they are.
    '''
    out: list[Message[Any]] = []
    run: list[Message[Any]] = []
    size = 0
    grouping = Grouping()
    for message in messages:
        if message.msgtype == "PATCH-DOC" and getattr(message, "_bokehsync_part", None) is None:
            n = patch_bytes(message)
            risks = [risk_of_rep(rep) for rep in message.content["events"]]
            if run and (size + n > limit or not grouping.admits_all(risks)):
                out.append(merge_patches(run))
                run, size, grouping = [], 0, Grouping()
            for risk in risks:
                grouping.add(risk)
            run.append(message)
            size += n
            continue
        if run:
            out.append(merge_patches(run))
            run, size, grouping = [], 0, Grouping()
        out.append(message)
    if run:
        out.append(merge_patches(run))
    return out


#: Called with (bytes done, bytes in total or None) as a push or pull proceeds.
Progress = Callable[[int, "int | None"], Any]


def encode_messages(messages: list[Message[Any]]) -> Iterator[bytes | bytearray]:
    ''' The bytes of ``messages`` as frames, small ones joined into one write.

    A message carrying a ``progress`` callback (set by ``ClientConnection._push``)
    has it called, in the sending thread, after each piece is written.
    '''
    small: list[bytes] = []
    size = 0
    for message in messages:
        parts = [(_frames.OP_TEXT, f.encode("utf-8")) if isinstance(f, str) else (_frames.OP_BINARY, f)
                 for f in fragments(message)]
        if getattr(message, "_bokehsync_part", None) is not None:
            # A part of a change cut for the server's limit: its JSON (a list
            # column's rows) is not kept while it waits for its OK.
            message._content_json = None
        progress: Progress | None = getattr(message, "_bokehsync_progress", None)
        if progress is not None:
            if small:
                yield b"".join(small)
                small, size = [], 0
            yield from _with_progress(parts, progress)
            continue
        for opcode, data in parts:
            if len(data) <= _JOIN_LIMIT:
                for piece in _frames.iter_masked_frame(opcode, data):
                    small.append(piece)  # type: ignore[arg-type]
                    size += len(piece)
                if size >= _JOIN_LIMIT:
                    yield b"".join(small)
                    small, size = [], 0
                continue
            if small:
                yield b"".join(small)
                small, size = [], 0
            yield from _frames.iter_masked_frame(opcode, data)
    if small:
        yield b"".join(small)


def _with_progress(parts: list[tuple[int, Any]], progress: Progress) -> Iterator[bytes | bytearray]:
    ''' The frames of one message, reporting payload bytes written so far. '''
    total = sum(len(data) for _, data in parts)
    done = 0
    for opcode, data in parts:
        pieces = _frames.iter_masked_frame(opcode, data)
        if len(data) > _frames.SMALL_FRAME:
            yield next(pieces)  # a large frame's header comes first, alone
        for piece in pieces:
            yield piece  # resumed once the piece is written
            done += min(len(piece), len(data))
            report_progress(progress, min(done, total), total)


def report_progress(progress: Progress, done: int, total: int | None) -> None:
    try:
        progress(done, total)
    except Exception:
        log.exception("progress callback %r failed", progress)


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
            return dict(self._partial.header)
        if self._texts:
            return self._header
        return None

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
            self._partial.assemble_buffer({"id": self._buffer_id}, cast(bytes, fragment))  # no copy
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
