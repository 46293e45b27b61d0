''' Changes and pushes too big for the server, as several messages each
under its limit. No sockets, no document.

A Bokeh server refuses any websocket message over its
``websocket_max_message_size`` (20 MiB by default) and closes the connection
(code 1009). A Bokeh message travels as several websocket messages (its
content JSON, then one per buffer), so what must stay under the limit is the
content JSON and every single buffer; the message as a whole may be larger.
The server does not announce its limit: the session is told
(``server_max_message_size=``, default 20 MiB).

What is cut, and how (the server ends with what one message would give it):

=========================  ===================================================================
change                     sent as
=========================  ===================================================================
data replaced              the data cut to a first chunk of rows, then streams of the rest
(``ColumnDataChanged``)    (no rollover); every column of the source advances together
stream                     streams of chunks of rows, each with the stream's rollover
patch                      patches of some of the values each; a slice too big alone is cut
                           into slices
root added, property set   the value with every large source's data emptied, then streams
to models, push            of those sources' rows
anything else              as it is if it fits; else :class:`~bokehsync.exceptions.MessageTooBig`
=========================  ===================================================================

A single value that cannot be cut (one 2-D image, one string, a
multi-dimensional array column) over the limit raises ``MessageTooBig``
before anything of that change is sent. The parts are built from the
serialized message (bokeh's representations): buffers are sliced as views of
bokeh's own buffers and lists as list slices, so no column is copied. The
parts of one change are recorded in a :class:`Split`, which says what of it
the server has acknowledged.
'''
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bokeh.protocol.message import Message

from ._columns import buffers_in, event_json_bound, json_bound
from ._compat import DOC_MESSAGES_HAVE_BUFFERS, add_buffers
from ._cutter import Cutter, nbytes, patch_of
from ._parts import Describe, Split, default_describe, part_of
from .exceptions import MessageTooBig

log = logging.getLogger(__name__)

__all__ = (
    'Fitted',
    'fit_patches',
    'split_patch',
    'split_push',
)


@dataclass
class Fitted:
    ''' A PATCH-DOC made to fit: the messages to send in its place, the
    splits among them, and the changes that could not be sent at all.
    '''
    messages: list[Message[Any]]
    splits: list[Split]
    too_big: list[MessageTooBig]


def split_patch(message: Message[Any], limit: int, describe: Describe = default_describe,
        url: str | None = None) -> Fitted | None:
    ''' Make a PATCH-DOC fit the server's limit.

    Args:
        message (Message) : a PATCH-DOC (consumed: its content may be changed)
        limit (int) : the server's ``websocket_max_message_size``
        describe (callable, optional) : names models in messages
        url (str, optional) : named in the exceptions

    Returns:
        Fitted or None : None when ``message`` fits as it is
    '''
    cutter = Cutter(limit, describe, url)
    events = message.content["events"]
    cached = message._content_json
    json_size = len(cached) if cached is not None else None
    if json_size is None:
        sizes = [event_json_bound(rep) for rep in events]
        json_size = 12 + len(sizes) + sum(sizes)
    else:
        sizes = []
    if json_size <= cutter.budget and all(nbytes(b) <= cutter.budget for b in message.buffers):
        return None
    if not sizes:
        sizes = [event_json_bound(rep) for rep in events]
    fitted = Fitted([], [], [])
    run: list[Any] = []
    run_size = 12
    for rep, size in zip(events, sizes, strict=True):
        if size + 13 <= cutter.budget and all(nbytes(b) <= cutter.budget for b in buffers_in(rep)):
            if run and run_size + size + 1 > cutter.budget:
                fitted.messages.append(patch_of(run))
                run, run_size = [], 12
            run.append(rep)
            run_size += size + 1
            continue
        if run:
            fitted.messages.append(patch_of(run))
            run, run_size = [], 12
        try:
            split = cutter.split_event(rep)
        except MessageTooBig as e:
            fitted.too_big.append(e)
            continue
        if split is None:
            fitted.messages.append(patch_of([rep]))
        else:
            fitted.messages.extend(split.messages)
            fitted.splits.append(split)
    if run:
        fitted.messages.append(patch_of(run))
    return fitted


def split_push(message: Message[Any], limit: int, describe: Describe = default_describe,
        url: str | None = None) -> Split | None:
    ''' Make a PUSH-DOC fit the server's limit.

    The document goes without its roots (title, config, data models); then
    each root, as a root added, with its large sources emptied; then the
    streams that fill those sources. Roots added by a PATCH-DOC are broadcast
    to the other clients of the session but not back to us (the Bokeh server
    defines new models in the update it writes to the first other connection
    only: see docs/reliability.rst). A document with document-level JS
    callbacks (which may refer to
    models of the roots) keeps its roots in the PUSH-DOC, sources emptied.

    Args:
        message (Message) : a PUSH-DOC (consumed: its content may be changed)
        limit (int) : the server's ``websocket_max_message_size``
        describe (callable, optional) : names models in messages
        url (str, optional) : named in the exceptions

    Returns:
        Split or None : None when ``message`` fits as it is; else its first
        message is the PUSH-DOC to send, the others PATCH-DOCs to send after it

    Raises:
        MessageTooBig: a value that cannot be cut is over the limit
    '''
    cutter = Cutter(limit, describe, url)
    content = message.content
    # bokeh < 3.9 writes a PUSH-DOC's arrays into its JSON as base64 (and
    # its server reads no buffers from a PUSH-DOC): they count as JSON there.
    inline = not DOC_MESSAGES_HAVE_BUFFERS
    if json_bound(content, inline) <= cutter.budget and all(nbytes(b) <= cutter.budget for b in message.buffers):
        return None
    split = Split("the document", limit, by_call=True)
    doc = content.get("doc")
    events: list[dict[str, Any]] = []
    if isinstance(doc, dict) and isinstance(doc.get("roots"), list) and not doc.get("callbacks"):
        events = [{"kind": "RootAdded", "model": root} for root in doc["roots"]]
        doc["roots"] = []
    streams = cutter.empty_sources(content, "the document", inline)
    for event in events:
        streams.extend(cutter.empty_sources(event, "the document"))
    first = type(message)(message.create_header(), {}, content)
    if not inline:
        add_buffers(first, list(buffers_in(content)))
    split.add(first)
    run: list[Any] = []
    size = 12
    for event in events:
        n = json_bound(event) + 1
        if run and size + n > cutter.budget:
            split.add(patch_of(run))
            run, size = [], 12
        run.append(event)
        size += n
    if run:
        split.add(patch_of(run))
    cutter.add_streams(split, streams)
    return split


def fit_patches(messages: list[Message[Any]], limit: int, describe: Describe = default_describe,
        url: str | None = None) -> tuple[list[Message[Any]], list[MessageTooBig]]:
    ''' ``messages`` with every PATCH-DOC over the server's ``limit`` cut into
    parts (other messages, and parts already cut, as they are), and the
    changes that could not be cut at all (left out).
    '''
    out: list[Message[Any]] = []
    too_big: list[MessageTooBig] = []
    for message in messages:
        if message.msgtype != "PATCH-DOC" or part_of(message) is not None:
            out.append(message)
            continue
        fitted = split_patch(message, limit, describe, url)
        if fitted is None:
            out.append(message)
            continue
        out.extend(fitted.messages)
        too_big.extend(fitted.too_big)
        for split in fitted.splits:
            log.debug("sending %s in %d parts", split.what, len(split.messages))
    return out, too_big
