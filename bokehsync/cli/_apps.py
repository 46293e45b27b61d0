''' Which applications a Bokeh server has: for the message about a wrong app path.

A Bokeh server answers a websocket to a path with no application with HTTP
404. To say which paths would work, this module reads the server's root page
(``/``, or ``/prefix/`` for a server run with ``--prefix``):

* with several applications, it is an index listing them (``Running Bokeh
  Applications``), unless the server runs with ``--disable-index``;
* with one, it redirects to it (unless ``--disable-index-redirect``); the
  target is confirmed by its websocket endpoint, which answers a plain GET
  with HTTP 400 ("Can Upgrade only to WebSocket") where there is an app and
  404 where there is none.

Nothing here opens a session or runs application code: one or two GET
requests, within the command's ``--timeout``.
'''
from __future__ import annotations

import difflib
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit, urlunsplit

from ._common import EXIT_UNREACHABLE, CommandError, plain
from ._urls import session_url

__all__ = (
    'explain_missing_app',
    'find_apps',
    'missing_app_message',
)

#: The title of the index page of Bokeh's server.
INDEX_TITLE = "Bokeh Applications"

#: Bytes of a root page read at most.
MAX_PAGE = 1 << 20


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    ''' Report a redirect (as an HTTPError with its Location) instead of following it. '''

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class _IndexParser(HTMLParser):
    ''' The title and the site-local links (``/...``, not ``//host/...``) of a page. '''

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.links: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag == "a":
            href = dict(attrs).get("href") or ""
            if href.startswith("/") and not href.startswith("//"):
                self.links.append(href)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def _get(url: str, deadline: float) -> tuple[int, str, str]:
    ''' GET without following redirects: (status, Location or "", body text). '''
    opener = urllib.request.build_opener(_NoRedirect)
    timeout = max(0.1, deadline - time.monotonic())
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, "", response.read(MAX_PAGE).decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers.get("Location") or "", ""


def _roots(url: str) -> list[str]:
    ''' Where the server's root page may be, the plain root first:
    ``http://h/a/b`` -> ``http://h/``, ``http://h/a/``.
    '''
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s][:-1]
    return [urlunsplit((parts.scheme, parts.netloc, "/" + "".join(s + "/" for s in segments[:n]), "", ""))
            for n in range(len(segments) + 1)]


def find_apps(url: str, timeout: float = 10.0) -> tuple[list[str], str]:
    ''' The application paths of the server of ``url``, from its root page.

    Args:
        url (str) : an http(s) URL on the server (the wrong app URL)
        timeout (float, optional) : seconds for all requests together

    Returns:
        tuple[list[str], str] : the paths (``["/a", "/b"]``, with the
        server's prefix) and the root page they came from; or ``[]`` and
        why none could be found, as a phrase
    '''
    deadline = time.monotonic() + timeout
    why = "no root page"
    for root in _roots(url):
        try:
            status, location, body = _get(root, deadline)
            if status == 200:
                page = _IndexParser()
                page.feed(body)
                if INDEX_TITLE in page.title:
                    return sorted(set(page.links)), root
                why = f"its root page {root} is not the index of a Bokeh server"
            elif 300 <= status < 400 and location:
                target = urljoin(root, location)
                if urlsplit(target).netloc == urlsplit(root).netloc:
                    path = urlsplit(target).path.rstrip("/") or "/"
                    probe, _, _ = _get(urljoin(target, path.rstrip("/") + "/ws"), deadline)
                    if probe in (400, 426):  # a websocket endpoint refusing a plain GET: an app
                        return [path], root
                why = f"its root page {root} redirects to {target}, which is not a Bokeh application"
            elif status == 404:
                why = (f"its root page {root} answered HTTP 404 (the server runs with --disable-index, "
                       "or under a --prefix that is not in the URL)")
            else:
                why = f"its root page {root} answered HTTP {status}"
        except (OSError, ValueError) as e:  # URLError, timeouts, TLS: say so, stop asking
            return [], f"its root page {root} could not be read ({plain(str(getattr(e, 'reason', e)))})"
    return [], why


def _closest(path: str, paths: list[str]) -> str | None:
    ''' The path of ``paths`` that ``path`` is most likely a typo of, if any is close. '''
    if len(paths) == 1:
        return paths[0]
    names = {p.rstrip("/").rsplit("/", 1)[-1].lower(): p for p in paths}
    wanted = path.rstrip("/").rsplit("/", 1)[-1].lower()
    close = difflib.get_close_matches(wanted, list(names), n=1, cutoff=0.6)
    return names[close[0]] if close else None


def missing_app_message(url: str, session_id: str | None = None, timeout: float = 10.0) -> str:
    ''' The one-line explanation of an HTTP 404 at ``url``.

    Args:
        url (str) : the http(s) app URL that had no application
        session_id (str, optional) : the session the user named (kept in the suggestion)
        timeout (float, optional) : seconds to look for the server's applications

    Returns:
        str : which application paths the server has and the closest one, or
        plainly that they could not be found, and why
    '''
    parts = urlsplit(url)
    here = f"no Bokeh application at {urlunsplit((parts.scheme, parts.netloc, parts.path, '', ''))} (HTTP 404)"
    paths, where = find_apps(url, timeout)
    if not paths:
        return (f"{here}, and the server's application paths could not be found: {where}. "
                "Check the path: 'bokeh serve' prints the URL of each application when it starts.")
    best = _closest(parts.path, paths)
    suggestion = ""
    if best is not None:
        fixed = urlunsplit((parts.scheme, parts.netloc, best, parts.query, ""))
        suggestion = f" Did you mean '{session_url(fixed, session_id) if session_id else fixed}'?"
    if len(paths) == 1:
        return f"{here}. The server has one application, {paths[0]}.{suggestion}"
    return f"{here}. The server's applications: {', '.join(paths)}.{suggestion}"


@contextmanager
def explain_missing_app(url: str, session_id: str | None = None, timeout: float = 10.0) -> Iterator[None]:
    ''' Turn an HTTP 404 at connect into a :class:`CommandError` saying which apps exist.

    Args:
        url (str) : the http(s) app URL being connected to
        session_id (str, optional) : the session named
        timeout (float, optional) : seconds to look for the server's applications

    Raises:
        CommandError: the server has no application at ``url`` (exit code 1);
            any other exception passes unchanged
    '''
    from ..exceptions import ConnectionFailed
    try:
        yield
    except ConnectionFailed as e:
        if getattr(e, "status", None) != 404:
            raise
        # At most 10 s more to say which apps exist, whatever the command's --timeout.
        raise CommandError(missing_app_message(url, session_id, min(timeout, 10.0)), EXIT_UNREACHABLE) from e
