''' Every difference between the bokeh releases bokehsync supports, in one place.

bokehsync supports bokeh 3.4 up to (not including) 4 (setup.cfg). Importing
this module checks the installed bokeh and raises ``ImportError`` for any
other, so a bokeh forced past pip's resolver (``pip install --no-deps``)
fails at ``import bokehsync`` with a message that says what to do, instead of
with an ``AttributeError`` in the middle of a session.

Differences, each with the bokeh releases it covers:

* ``Message.add_buffers(*buffers)`` exists from bokeh 3.9 on; 3.4 to 3.8 have
  only ``Message.add_buffer(buffer)``. Use :func:`add_buffers`.
* ``PUSH-DOC`` and ``PULL-DOC-REPLY``: from bokeh 3.9 on, ``Document.to_json()``
  returns a ``Serialized`` and the message carries the document's arrays as
  binary buffers; 3.4 to 3.8 inline them in the JSON content as base64 and
  the message has no buffers. bokeh's own message classes build and read
  both forms, so only code that looks at ``message.buffers`` of a document
  message cares: see :data:`DOC_MESSAGES_HAVE_BUFFERS`.
* bokeh 3.8 (only) gzips those inlined arrays before the base64, so a
  document of compressible arrays is far smaller on the wire than with 3.4 to
  3.7 (plain base64) or 3.9 on (raw binary buffers). Only tests that count
  bytes on the wire care: see :data:`DOC_ARRAYS_GZIPPED`.

Read in the sources of bokeh 3.4.0, 3.4.3, 3.5.2, 3.6.3, 3.7.3, 3.8.2, 3.9.2
and 3.10.2 and found the same in all of them, so used directly, with no shim
here (bokeh 3.10 moved session callbacks from Tornado to asyncio, but its
``DocumentCallbackGroup`` still takes a Tornado ``IOLoop``, through its
``asyncio_loop``):
``PROTOCOL.create('PATCH-DOC', events)`` and ``create('PUSH-DOC', doc)``
signatures, ``Message.create_header`` / ``assemble_buffer`` / ``apply_to_document``
/ ``push_to_document``, ``Document.callbacks.on_change_dispatch_to``,
``Document.session_callbacks`` / ``remove_on_change``,
``bokeh.server.callbacks.DocumentCallbackGroup(io_loop)`` and the
``PeriodicCallback(callback, period, *, callback_id)`` /
``TimeoutCallback(callback, timeout, *, callback_id)`` /
``NextTickCallback(callback, *, callback_id)`` constructors,
``bokeh.client.states.ErrorReason`` (``NO_ERROR``, ``HTTP_ERROR``,
``NETWORK_ERROR``), ``generate_jwt_token(session_id, secret_key, signed,
extra_payload, expiration)``, and the keyword arguments of
``bokeh.server.server.Server`` (including ``ssl_certfile`` / ``ssl_keyfile`` /
``ssl_password``). A difference found later goes here, with its releases.

One Python difference lives here too:

* ``concurrent.futures.Future.result(timeout=...)`` raises the built-in
  ``TimeoutError`` from Python 3.11 on, but on 3.10 a
  ``concurrent.futures.TimeoutError`` that ``except TimeoutError`` misses.
  Catch :data:`FutureTimeout`.
'''
from __future__ import annotations

import concurrent.futures
import re
from typing import TYPE_CHECKING, Any

import bokeh

if TYPE_CHECKING:
    from bokeh.core.serialization import Buffer
    from bokeh.protocol.message import Message

__all__ = (
    'BOKEH_VERSION',
    'DOC_ARRAYS_GZIPPED',
    'DOC_MESSAGES_HAVE_BUFFERS',
    'MAX_BOKEH',
    'MIN_BOKEH',
    'FutureTimeout',
    'add_buffers',
    'check_bokeh_version',
)

#: What ``Future.result(timeout=...)`` raises on timeout: the built-in
#: ``TimeoutError`` on Python >= 3.11, a class of its own on Python 3.10.
FutureTimeout = concurrent.futures.TimeoutError

#: The oldest supported bokeh (``bokeh >= 3.4`` in setup.cfg).
MIN_BOKEH = (3, 4)

#: The first unsupported bokeh (``bokeh < 4`` in setup.cfg).
MAX_BOKEH = (4,)


def _parse(version: str) -> tuple[int, ...]:
    ''' ``"3.4.3"`` -> ``(3, 4, 3)``; ``"3.10.0.dev2"`` -> ``(3, 10, 0)``. '''
    numbers = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(n) for n in numbers.group(0).split(".")) if numbers else ()


def check_bokeh_version(version: str) -> tuple[int, ...]:
    ''' Check that ``version`` is a supported bokeh release.

    Args:
        version (str) : a bokeh version string, e.g. ``bokeh.__version__``

    Returns:
        tuple[int, ...] : the version's numbers, e.g. ``(3, 4, 3)``

    Raises:
        ImportError: outside ``MIN_BOKEH <= version < MAX_BOKEH``
    '''
    parsed = _parse(version)
    if not (MIN_BOKEH <= parsed < MAX_BOKEH):
        wanted = f"bokeh >= {'.'.join(map(str, MIN_BOKEH))}, < {'.'.join(map(str, MAX_BOKEH))}"
        raise ImportError(
            f"bokehsync requires {wanted}, but bokeh {version} is installed "
            f"(at {bokeh.__file__}). Install a supported one: pip install '{wanted.replace(' ', '')}'")
    return parsed


#: The installed bokeh's version numbers, e.g. ``(3, 4, 3)``.
BOKEH_VERSION = check_bokeh_version(bokeh.__version__)

#: Whether PUSH-DOC and PULL-DOC-REPLY carry the document's arrays as binary
#: buffers (bokeh >= 3.9) rather than inline base64 in their JSON (3.4 to 3.8).
DOC_MESSAGES_HAVE_BUFFERS = BOKEH_VERSION >= (3, 9)

#: Whether PUSH-DOC and PULL-DOC-REPLY carry the document's arrays gzipped,
#: then base64, in their JSON (bokeh 3.8 only).
DOC_ARRAYS_GZIPPED = (3, 8) <= BOKEH_VERSION < (3, 9)


def add_buffers(message: Message[Any], buffers: list[Buffer]) -> None:
    ''' Append ``buffers`` to ``message``, updating its ``num_buffers`` header.

    ``Message.add_buffers`` is bokeh >= 3.9; bokeh 3.4 to 3.8 have only
    ``Message.add_buffer``, one buffer per call, with the same effect.

    Args:
        message (Message) : a bokeh protocol message being built
        buffers (list[Buffer]) : buffers to append, in order
    '''
    if hasattr(message, "add_buffers"):
        message.add_buffers(*buffers)
        return
    for buffer in buffers:
        message.add_buffer(buffer)
