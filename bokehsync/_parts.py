''' The parts of one change (or push) sent as several messages, and what
of it the server has acknowledged; the server's message size limit. No
sockets, no document: ``_split`` makes the parts, ``_outbox`` settles them.
'''
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from bokeh.protocol.message import Message

from ._wire import fragments

__all__ = (
    'DEFAULT_SERVER_MAX_MESSAGE_SIZE',
    'Describe',
    'Split',
    'attach_progress',
    'budget_of',
    'check_limit',
    'default_describe',
    'describe_in',
    'part_of',
)

#: The Bokeh server's default ``websocket_max_message_size``: 20 MiB.
DEFAULT_SERVER_MAX_MESSAGE_SIZE = 20 * 1024 * 1024

#: The smallest limit accepted (the JSON of one small change must fit).
MIN_SERVER_MAX_MESSAGE_SIZE = 64 * 1024

#: Bytes left free under the limit in every websocket message.
_MARGIN = 4096

#: Describes a model for messages: ``describe(model_id, type_name)``.
Describe = Callable[[str, "str | None"], str]


def budget_of(limit: int) -> int:
    ''' The bytes one websocket message may carry under the server's ``limit``. '''
    return limit - _MARGIN


def check_limit(value: int) -> int:
    ''' ``value`` if it is a usable ``server_max_message_size``.

    Raises:
        ValueError: not an int of at least 64 KiB
    '''
    if isinstance(value, bool) or not isinstance(value, int) or value < MIN_SERVER_MAX_MESSAGE_SIZE:
        raise ValueError(f"server_max_message_size must be an int of at least {MIN_SERVER_MAX_MESSAGE_SIZE} "
                         f"bytes (the server's --websocket-max-message-size), got {value!r}")
    return value


def default_describe(model_id: str, type_name: str | None) -> str:
    ''' ``ColumnDataSource(id='p1001')``, or ``model 'p1001'`` without a type. '''
    if type_name:
        return f"{type_name.rsplit('.', 1)[-1]}(id={model_id!r})"
    return f"model {model_id!r}"


def describe_in(document: Any, model_id: str, type_name: str | None) -> str:
    ''' ``ColumnDataSource(id='p1001', name='prices')``: a model of ``document`` (a
    bokeh ``Document`` or None), for messages.
    '''
    model = document.get_model_by_id(model_id) if document is not None else None
    if model is None:
        return default_describe(model_id, type_name)
    name = getattr(model, "name", None)
    return f"{type(model).__name__}(id={model_id!r}" + (f", name={name!r})" if name else ")")


# What reached the server ------------------------------------------------------

@dataclass
class _Part:
    source: str | None  # the source whose rows it carries, if any
    rows: int           # how many


@dataclass
class Split:
    ''' One change (or push) sent as several messages, and what of it the
    server has acknowledged. Its state changes under the outbox's mutex.

    Args:
        what (str) : the change, e.g. ``"ColumnDataSource(id='p1').data replaced by 3,000 rows"``
        limit (int) : the server's limit it was cut for
        by_call (bool) : the call that made it (a push) waits for it and
            reports its failure; else ``flush()`` does
    '''
    what: str
    limit: int
    by_call: bool = False
    messages: list[Message[Any]] = field(default_factory=list)
    acknowledged: int = 0
    written: int = 0
    failure: BaseException | None = None
    #: Resolved when every part is acknowledged, failed with the first failure.
    future: Future[None] = field(default_factory=Future)
    _parts: list[_Part] = field(default_factory=list)
    _totals: dict[str, int] = field(default_factory=dict)
    _acked_rows: dict[str, int] = field(default_factory=dict)

    def add(self, message: Message[Any], source: str | None = None, rows: int = 0) -> None:
        ''' Append a part carrying ``rows`` rows of ``source``. '''
        message._bokehsync_part = (self, len(self.messages))  # type: ignore[attr-defined]
        self.messages.append(message)
        self._parts.append(_Part(source, rows))
        if source is not None:
            self._totals[source] = self._totals.get(source, 0) + rows
            self._acked_rows.setdefault(source, 0)

    def settled(self, index: int, error: BaseException | None) -> bool:
        ''' Part ``index`` was answered (``error`` None: acknowledged).

        Returns:
            bool : whether this is the split's first failure
        '''
        if error is None:
            self.acknowledged += 1
            part = self._parts[index]
            if part.source is not None:
                self._acked_rows[part.source] += part.rows
            return False
        if self.failure is not None:
            return False
        self.failure = error
        return True

    @property
    def complete(self) -> bool:
        return self.acknowledged == len(self.messages)

    def report(self) -> str:
        ''' What of the change the server has, in words. '''
        n = len(self.messages)
        text = (f"too big for one message (the server's limit is {self.limit:,} bytes per websocket message), "
                f"{self.what} went as {n} messages; the server acknowledged {self.acknowledged} of them")
        rows = [f"{self._acked_rows[s]:,} of the {total:,} rows of {s}" for s, total in self._totals.items()]
        if rows:
            text += f" ({'; '.join(rows)})"
        if not self.complete:
            in_flight = self.written - self.acknowledged - (1 if self.failure is not None else 0)
            if in_flight > 0:
                text += f"; {in_flight} more were sent and may have been applied"
            text += "; the rest did not reach it"
        return text


def part_of(message: Message[Any]) -> tuple[Split, int] | None:
    ''' The split and index of a part, or None for a message sent as it is. '''
    return getattr(message, "_bokehsync_part", None)


# Progress ---------------------------------------------------------------------

def attach_progress(messages: list[Message[Any]], progress: Callable[[int, int | None], Any]) -> None:
    ''' Report ``progress(bytes_sent, total)`` over all of ``messages``, sent in order. '''
    sizes = []
    for message in messages:
        cached = message._content_json
        sizes.append(sum(len(f) if isinstance(f, str) else memoryview(f).nbytes for f in fragments(message)))
        if cached is None and len(message.content_json) > 65536:
            message._content_json = None  # built again when written: not all held at once
    total = sum(sizes)
    offset = 0
    for message, size in zip(messages, sizes, strict=True):
        message._bokehsync_progress = _Shifted(progress, offset, total)  # type: ignore[attr-defined]
        offset += size


@dataclass
class _Shifted:
    ''' A message's progress as part of several messages' progress. '''
    progress: Callable[[int, int | None], Any]
    offset: int
    total: int

    def __call__(self, done: int, total: int | None) -> Any:
        return self.progress(self.offset + done, self.total)
