''' Reading the URL a user typed, and keeping HTML out of error lines (no sockets). '''
from __future__ import annotations

import pytest

from bokehsync.cli import EXIT_USAGE, CommandError, normalize_url, split_url
from bokehsync.cli._apps import _closest, _roots
from bokehsync.cli._common import plain


@pytest.mark.parametrize(("typed", "read"), [
    ("http://h:1/app", "http://h:1/app"),
    ("HTTPS://h/app", "https://h/app"),
    ("ws://h:1/app/ws", "ws://h:1/app/ws"),
    ("localhost:5006/app", "http://localhost:5006/app"),
    ("localhost:5006", "http://localhost:5006"),
    ("127.0.0.1:5006/app?x=1", "http://127.0.0.1:5006/app?x=1"),
    ("example.org/app", "http://example.org/app"),
    ("//example.org/app", "http://example.org/app"),
    ("[::1]:5006/app", "http://[::1]:5006/app"),
    ("  http://h/app  ", "http://h/app"),
])
def test_normalize_accepts_what_a_browser_accepts(typed, read):
    ''' A URL with a known scheme is kept; one without a scheme is http. '''
    assert normalize_url(typed) == read


@pytest.mark.parametrize(("typed", "meant"), [
    ("htp://127.0.0.1:5006/app", "http://127.0.0.1:5006/app"),
    ("htps://h/app", "https://h/app"),
    ("hhtp://h/app", "http://h/app"),
    ("http:/h/app", "http://h/app"),
    ("http:///h/app", "http://h/app"),
    ("http:h/app", "http://h/app"),
    ("wss:/h/app/ws", "wss://h/app/ws"),
])
def test_normalize_suggests_the_fix_for_a_typo(typed, meant):
    ''' A misspelt scheme or wrong slashes: a usage error naming the URL meant. '''
    with pytest.raises(CommandError) as e:
        normalize_url(typed)
    assert e.value.code == EXIT_USAGE
    assert f"did you mean '{meant}'?" in str(e.value)


@pytest.mark.parametrize("typed", ["ftp://h/app", "file:///tmp/app", "mailto:x@y"])
def test_normalize_refuses_other_schemes_without_a_guess(typed):
    ''' Another scheme entirely is refused, naming the ones a Bokeh server speaks. '''
    with pytest.raises(CommandError) as e:
        normalize_url(typed)
    assert e.value.code == EXIT_USAGE and "did you mean" not in str(e.value)
    assert "http, https, ws, wss" in str(e.value)


@pytest.mark.parametrize("typed", ["http://", "", "http:///"])
def test_normalize_refuses_a_url_without_a_host(typed):
    ''' No host: a usage error. '''
    with pytest.raises(CommandError) as e:
        normalize_url(typed)
    assert e.value.code == EXIT_USAGE


def test_split_url_reads_a_scheme_less_url_with_a_session():
    ''' The session id comes out of a URL without a scheme too. '''
    assert split_url("localhost:5006/app?bokeh-session-id=abc") == ("http://localhost:5006/app", "abc")


def test_plain_replaces_an_html_page_by_its_title():
    ''' An HTML error body in a message becomes its title, on one line. '''
    message = ("HTTP 502 at the websocket handshake: <html>\r\n<head><title>502 Bad Gateway</title></head>\r\n"
               "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>")
    assert plain(message) == "HTTP 502 at the websocket handshake: 502 Bad Gateway"
    assert plain("x: <html><body><p>Forbidden &amp; gone</p></body></html>") == "x: Forbidden & gone"
    assert plain("a\n  b") == "a b"


def test_roots_are_the_ancestors_of_the_path():
    ''' Where a root page may be: ``/``, then each ancestor directory (for --prefix). '''
    assert _roots("http://h:1/app") == ["http://h:1/"]
    assert _roots("http://h:1/pre/app") == ["http://h:1/", "http://h:1/pre/"]
    assert _roots("http://h:1/") == ["http://h:1/"]


def test_closest_app_is_a_likely_typo_or_none():
    ''' The suggestion is a close name (case-insensitive), the only app, or nothing. '''
    apps = ["/big", "/empty", "/slider", "/stream"]
    assert _closest("/sliderr", apps) == "/slider"
    assert _closest("/Slider", apps) == "/slider"
    assert _closest("/quarterly-report", apps) is None
    assert _closest("/anything", ["/demo"]) == "/demo"
