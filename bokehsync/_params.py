''' The keyword arguments that ``ClientSession``, ``pull_session`` and
``push_session`` share (all bokehsync only), documented once.

Each entry is one ``Args:`` line group of bokeh's docstring style: name,
type, unit, default, meaning. :func:`shared_args` puts them into a
docstring where it says ``{session_options}``.
'''
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = (
    'SESSION_OPTIONS',
    'shared_args',
)

F = TypeVar("F", bound=Callable[..., object])

#: name -> its ``Args:`` entry (first line, then continuation lines).
SESSION_OPTIONS: dict[str, str] = {
    "timeout": """timeout (float, optional) : seconds every blocking call of the session
    may take, this first connect and pull or push included (default: 30)""",
    "secret_key": """secret_key (str or bytes, optional) : the server's secret key, used to sign
    session ids and tokens (default: the ``BOKEH_SECRET_KEY`` environment
    variable, read when the session is made; see :doc:`deployment`)""",
    "sign_sessions": """sign_sessions (bool, optional) : sign session ids and tokens (default:
    ``BOKEH_SIGN_SESSIONS``, else True when a secret key is known)""",
    "token_expiration": """token_expiration (int, optional) : seconds each token stays valid; a fresh
    one is made at every connect (default: 300, as the Bokeh server's)""",
    "token": """token (str, optional) : a session token issued elsewhere (e.g. embedded in
    the server's page), used as is; the session id is taken from it
    (default: None, a token is made here)""",
    "extra_payload": """extra_payload (dict, optional) : carried in every token made here; the app
    sees its ``headers``, ``cookies`` and ``arguments`` keys in place of the
    request's (default: None)""",
    "headers": """headers (dict[str, str], optional) : extra HTTP headers of the websocket
    upgrade request, e.g. ``Authorization`` for an auth hook (default: None)""",
    "cookies": """cookies (dict[str, str], optional) : the cookies of the upgrade request,
    and only these (default: None)""",
    "origin": """origin (str, optional) : an ``Origin`` header, for servers started with
    ``--allow-websocket-origin`` (default: None, no Origin is sent)""",
    "verify": """verify (bool or str, optional) : verify the server's TLS certificate
    (True), verify it with the CA bundle in this file (a path), or skip
    verification (False: insecure, logs a warning) (default: True)""",
    "ssl_context": """ssl_context (ssl.SSLContext, optional) : the TLS context to use, in place
    of ``verify`` (default: None)""",
    "proxy": """proxy (str or bool, optional) : ``http://[user:password@]host:port`` of an
    HTTP CONNECT proxy, or False for none (default: None, from the
    ``HTTPS_PROXY`` / ``HTTP_PROXY`` environment unless ``NO_PROXY`` matches)""",
    "ping_interval": """ping_interval (float or None, optional) : seconds of silence from the
    server before a keepalive ping; None turns keepalive off (default: 20)""",
    "ping_timeout": """ping_timeout (float, optional) : seconds to wait for the answer to that
    ping before the connection counts as lost (default: 20)""",
    "reconnect": """reconnect (Reconnect, bool or int, optional) : reconnect after an
    unexpected loss: True for the default policy, an int for that many
    attempts, a :class:`Reconnect` for its own; a pulled session pulls
    again (the server's state wins), a pushed one pushes again (its state
    wins); see :doc:`reliability` (default: None, no reconnecting, as
    bokeh.client)""",
    "server_max_message_size": """server_max_message_size (int, optional) : the largest websocket message
    the server accepts, in bytes: its ``--websocket-max-message-size`` (the
    server does not announce it). Documents and changes larger than one
    message allows go as several messages each under it; a single value over
    it (one image, one string) raises ``MessageTooBig`` before anything of it
    is sent. Not ``max_message_size``, which is the largest message this
    client accepts (default: 20 MiB, the Bokeh server's default)""",
}


def shared_args(*names: str) -> Callable[[F], F]:
    ''' Fill ``{session_options}`` in the decorated object's docstring with
    the entries of ``names`` (all of :data:`SESSION_OPTIONS` if none given),
    indented to match the placeholder.
    '''
    def fill(obj: F) -> F:
        doc = obj.__doc__ or ""
        line = next(line for line in doc.splitlines() if "{session_options}" in line)
        indent = line[:len(line) - len(line.lstrip())]
        entries = [SESSION_OPTIONS[name] for name in (names or SESSION_OPTIONS)]
        text = "\n".join(indent + entry.replace("\n", "\n" + indent) for entry in entries)
        obj.__doc__ = doc.replace(line, text)
        return obj
    return fill
