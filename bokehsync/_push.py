''' Pushing a document: one PUSH-DOC, or, for a document over the server's
message limit, a PUSH-DOC with its large sources emptied followed by the
streams that fill them (``_split``). The push returns once the server
acknowledged every part, and a failure says what of the document reached it.
'''
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._compat import FutureTimeout
from ._parts import Split, attach_progress, describe_in
from ._split import split_push
from ._wire import PROTOCOL, Progress
from .exceptions import BokehSyncError, ConnectionLost, ProtocolViolation, ReplyTimeout, ServerError

if TYPE_CHECKING:
    from bokeh.document import Document
    from bokeh.protocol.message import Message

    from ._deadline import Deadline
    from ._docsync import DocumentSync
    from ._requests import Requests

__all__ = (
    'push_document',
)


def push_document(requests: Requests, sync: DocumentSync, document: Document, *, limit: int,
        deadline: Deadline, what: str, url: str, progress: Progress | None = None) -> Message[Any]:
    ''' Push ``document``, in parts if it is over the server's message limit.

    The document is serialized, cut and queued holding ``session.lock``, and
    becomes the session's document there if it has none. The user's document
    is never changed: the parts are cut from its serialized form.

    Args:
        requests (Requests) : the connection's request/reply side
        sync (DocumentSync) : the session's document side
        document (Document) : what to push
        limit (int) : the server's ``websocket_max_message_size``, in bytes
        deadline (Deadline) : when the push (every part of it) must be done
        what (str) : the call, for messages (``"push the document"``)
        url (str) : named in the exceptions
        progress (callable, optional) : ``progress(bytes_sent, total)`` over
            every part, on the sending thread

    Returns:
        Message : the server's OK to the PUSH-DOC

    Raises:
        MessageTooBig: a single value over the limit; nothing was sent
        ServerError, ConnectionLost, ReplyTimeout: the push (or a part of it)
            failed; the message says what reached the server
    '''
    with sync.lock:
        message = PROTOCOL.create('PUSH-DOC', document)
        split = split_push(message, limit, lambda model_id, type_name: describe_in(document, model_id, type_name),
                           url)
        first = split.messages[0] if split is not None else message
        if progress is not None:
            attach_progress(split.messages if split is not None else [message], progress)
        if sync.document is None:
            sync.attach(document)
        future = requests.submit(first, drops_patches=True)
        if split is not None:
            sync.outbox.add_parts(split.messages[1:])
    if split is None:
        return requests.wait_reply(first, future, deadline, what)  # type: ignore[no-any-return]
    try:
        reply = requests.wait_reply(first, future, deadline, what)
        sync.outbox.acknowledged(split, 0)
        _wait_parts(split, deadline, what, url)
    except BokehSyncError as e:
        sync.outbox.discard(split)
        text = e.message if e.message.startswith((f"cannot {what}", f"failed to {what}")) \
            else f"cannot {what}: {e.message}"
        raise e.rephrased(f"{text}; {split.report()}") from e
    except BaseException:
        sync.outbox.discard(split)
        raise
    return reply  # type: ignore[no-any-return]


def _wait_parts(split: Split, deadline: Deadline, what: str, url: str) -> None:
    ''' Wait until the server acknowledged every part after the PUSH-DOC. '''
    try:
        split.future.result(timeout=max(0.0, deadline.remaining()))
    except FutureTimeout:
        raise ReplyTimeout(f"cannot {what}: not every part was acknowledged within {deadline.timeout} s", url,
                           msgid=None, timeout=deadline.timeout) from None
    except (ConnectionLost, ProtocolViolation) as e:
        raise e.rephrased(f"cannot {what}: {e.message}") from e
    except ServerError as e:
        raise ServerError(f"failed to {what}: {e.message}", url, text=e.text, traceback=e.traceback,
                          reqid=e.reqid) from e
