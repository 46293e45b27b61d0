''' The URL a user typed: read it as a browser would, or say what is wrong.

* ``http(s)://host:port/app`` is an application URL; a ``?bokeh-session-id=``
  in it names the session (a URL copied from a browser works as is);
* ``ws(s)://host:port/app/ws`` is accepted too (the websocket of an app);
* without a scheme (``localhost:5006/app``) it is http, as in a browser;
* a misspelt scheme (``htp://``, ``http:/host``) is a usage error that says
  ``did you mean http://...?``.
'''
from __future__ import annotations

import difflib
import re
from urllib.parse import parse_qs, quote_plus, urlencode, urlsplit, urlunsplit

from ._common import EXIT_USAGE, CommandError

__all__ = (
    'SCHEMES',
    'app_arguments',
    'normalize_url',
    'session_url',
    'split_url',
)

#: The schemes a Bokeh server speaks.
SCHEMES = ("http", "https", "ws", "wss")

#: ``scheme:`` then the slashes (two if well formed) then the rest.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(/*)(.*)$", re.DOTALL)

#: The rest of ``host:port...`` after ``host:``: a port, then a path, query or the end.
_PORT = re.compile(r"^\d+(?:[/?#]|$)")


def normalize_url(url: str) -> str:
    ''' The URL with an explicit, valid scheme.

    Args:
        url (str) : as typed: ``http://h:1/app``, ``h:1/app``, ``ws://h:1/app/ws`` ...

    Returns:
        str : ``url`` with ``http://`` added if it had no scheme, the scheme in lower case

    Raises:
        CommandError: a scheme other than http(s) and ws(s), a misspelt one
            (with the corrected URL), or no host (exit code 2)
    '''
    text = url.strip()
    found = _SCHEME.match(text)
    if found and not (found.group(2) == "" and _PORT.match(found.group(3))):
        scheme, slashes, rest = found.groups()
        lower = scheme.lower()
        if not rest.strip("/"):
            raise CommandError(f"no host in the URL {url!r}", EXIT_USAGE)
        if lower not in SCHEMES or slashes != "//":
            fixed = lower if lower in SCHEMES else _closest_scheme(lower)
            if fixed is None:
                raise CommandError(f"not an http(s) or ws(s) URL: {url!r} (a Bokeh server speaks "
                                   f"{', '.join(SCHEMES)})", EXIT_USAGE)
            raise CommandError(f"not a valid URL: {url!r}; did you mean '{fixed}://{rest.lstrip('/')}'?",
                               EXIT_USAGE)
        text = f"{lower}://{rest}"
    else:
        # host:port/app, host/app, //host/app: http, as a browser reads it.
        text = "http://" + text.lstrip("/")
    if not urlsplit(text).hostname:
        raise CommandError(f"no host in the URL {url!r}", EXIT_USAGE)
    return text


def _closest_scheme(scheme: str) -> str | None:
    ''' The supported scheme ``scheme`` is a typo of, if any (``htp`` -> ``http``). '''
    close = difflib.get_close_matches(scheme, SCHEMES, n=1, cutoff=0.6)
    return close[0] if close else None


def split_url(url: str, session_id: str | None = None) -> tuple[str, str | None]:
    ''' The app URL without its ``bokeh-session-id`` argument, and the session id.

    Args:
        url (str) : an http(s) (or ws(s) ``.../ws``) URL, maybe with
            ``?bokeh-session-id=``, maybe without a scheme (http)
        session_id (str, optional) : takes precedence over the URL's

    Returns:
        tuple[str, str | None] : the http(s) app URL, the session id or None

    Raises:
        CommandError: not a URL of a Bokeh application (exit code 2)
    '''
    parts = urlsplit(normalize_url(url))
    if parts.scheme in ("ws", "wss"):
        from bokeh.client.util import server_url_for_websocket_url
        base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        if not base.endswith("/ws"):
            raise CommandError(f"a websocket URL must end with /ws: {url}", EXIT_USAGE)
        parts = urlsplit(server_url_for_websocket_url(base) + ("?" + parts.query if parts.query else ""))
    query = parse_qs(parts.query, keep_blank_values=True)
    found = query.pop("bokeh-session-id", [None])[0]
    clean = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", urlencode(query, doseq=True), ""))
    return clean, session_id or found


def session_url(url: str, session_id: str) -> str:
    ''' The URL a browser opens to show a session.

    Args:
        url (str) : the app URL (maybe with a query)
        session_id (str) : the session

    Returns:
        str : ``url`` with ``bokeh-session-id=session_id`` added to its query
    '''
    return f"{url}{'&' if '?' in url else '?'}bokeh-session-id={quote_plus(session_id)}"


def app_arguments(url: str) -> tuple[str, dict[str, str] | None]:
    ''' Split the query of an app URL into ``pull_session(arguments=...)``.

    Args:
        url (str) : an http(s) app URL

    Returns:
        tuple[str, dict | None] : the URL without its query, the query's
        arguments (the last value of each) or None if it had none
    '''
    parts = urlsplit(url)
    if not parts.query:
        return url, None
    arguments = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), arguments
