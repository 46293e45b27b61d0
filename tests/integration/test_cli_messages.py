''' What the command line says when the user got something wrong, against real servers:
a wrong app path, a misspelt or missing scheme, a usage error (exit 2 from every command),
``push --show`` with no browser. '''
from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bokehsync import pull_session
from bokehsync._localserver import LocalServer
from bokehsync.cli import EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, main
from tests.support import APPS, LONG, ROOT, wait_until

SUGGESTION = re.compile(r"[Dd]id you mean '([^']+)'\?")


@pytest.fixture(scope="module")
def one_app() -> Iterator[LocalServer]:
    ''' A server with a single application (its root page redirects to it). '''
    with LocalServer({"/demo": "bokehsync._demo:app"}, pythonpath=[ROOT]) as srv:
        yield srv


@pytest.fixture(scope="module")
def prefixed() -> Iterator[LocalServer]:
    ''' A server under ``--prefix /pre`` (as behind a reverse proxy). '''
    with LocalServer(APPS, pythonpath=[ROOT], server_kwargs={"prefix": "/pre"}) as srv:
        yield srv


@pytest.fixture(scope="module")
def unlisted() -> Iterator[LocalServer]:
    ''' A server that does not list its applications (``--disable-index``). '''
    with LocalServer(APPS, pythonpath=[ROOT], server_kwargs={"use_index": False}) as srv:
        yield srv


def _error(capsys: pytest.CaptureFixture[str], command: str) -> str:
    ''' The one error line of a command; fails on more lines or on HTML. '''
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"bokehsync {command}: error: "), err
    assert not re.search(r"<\s*/?\s*(html|body|title)", err, re.IGNORECASE), err
    return err


def _args(command: str, url: str) -> list[str]:
    if command == "push":
        return ["push", os.path.join(ROOT, "examples", "app.py"), url, "-q"]
    return [command, url] + (["-q"] if command == "pull" else [])


@pytest.mark.parametrize("command", ["info", "pull", "push"])
def test_wrong_app_path_lists_the_apps_and_suggests_the_closest(server, capsys, command):
    ''' A misspelt app path: exit 1, the server's app paths, and the closest one as a URL that works. '''
    assert main(_args(command, server.url("/sliderr"))) == EXIT_UNREACHABLE
    err = _error(capsys, command)
    assert f"no Bokeh application at {server.url('/sliderr')} (HTTP 404)" in err
    assert f"The server's applications: {', '.join(sorted(APPS))}." in err
    suggested = SUGGESTION.search(err).group(1)
    assert suggested == server.url("/slider")
    assert main(["info", suggested]) == EXIT_OK


def test_wrong_app_path_keeps_the_session_id_in_the_suggestion(server, capsys):
    ''' The suggested URL names the same session, so it can be pasted as is. '''
    assert main(["pull", server.url("/Slider") + "?bokeh-session-id=mine", "-q"]) == EXIT_UNREACHABLE
    err = _error(capsys, "pull")
    assert SUGGESTION.search(err).group(1) == server.url("/slider") + "?bokeh-session-id=mine"


def test_wrong_app_path_far_from_every_app_lists_them_without_a_guess(server, capsys):
    ''' A path like none of the apps: the list, and no far-fetched "did you mean". '''
    assert main(["info", server.url("/quarterly-report")]) == EXIT_UNREACHABLE
    err = _error(capsys, "info")
    assert f"The server's applications: {', '.join(sorted(APPS))}." in err
    assert not SUGGESTION.search(err)


def test_wrong_app_path_on_a_one_app_server_names_it(one_app, capsys):
    ''' A server with one app redirects its root page there: that app is named and suggested. '''
    assert main(["pull", one_app.url("/app"), "-q"]) == EXIT_UNREACHABLE
    err = _error(capsys, "pull")
    assert "The server has one application, /demo." in err
    assert SUGGESTION.search(err).group(1) == one_app.url("/demo")


def test_wrong_app_path_under_a_prefix(prefixed, capsys):
    ''' A server under a prefix lists its apps on the prefix's root page; they are named with it. '''
    assert main(["info", prefixed.url("/pre/emtpy")]) == EXIT_UNREACHABLE
    err = _error(capsys, "info")
    assert ", ".join(f"/pre{app}" for app in sorted(APPS)) in err
    suggested = SUGGESTION.search(err).group(1)
    assert suggested == prefixed.url("/pre/empty")
    assert main(["info", suggested]) == EXIT_OK


def test_wrong_app_path_when_the_server_lists_none(unlisted, capsys):
    ''' A server with no index: says plainly that the app paths could not be found, and why. '''
    assert main(["pull", unlisted.url("/sliderr"), "-q"]) == EXIT_UNREACHABLE
    err = _error(capsys, "pull")
    assert "the server's application paths could not be found" in err
    assert f"its root page {unlisted.url('/')} answered HTTP 404" in err
    assert not SUGGESTION.search(err)


@pytest.mark.parametrize("command", ["info", "pull", "push"])
@pytest.mark.parametrize("typo", ["htp://{}/empty", "http:/{}/empty", "hhtp://{}/empty", "HTTP:{}/empty"])
def test_scheme_typo_suggests_the_fixed_url(server, capsys, command, typo):
    ''' A misspelt scheme: exit 2 (nothing attempted), "did you mean" the URL that works. '''
    netloc = f"127.0.0.1:{server.port}"
    assert main(_args(command, typo.format(netloc))) == EXIT_USAGE
    err = _error(capsys, command)
    assert SUGGESTION.search(err).group(1) == server.url("/empty")
    assert main(_args(command, server.url("/empty"))) == EXIT_OK
    capsys.readouterr()


def test_url_without_a_scheme_is_http(server, capsys, tmp_path):
    ''' ``localhost:PORT/app`` and ``127.0.0.1:PORT/app`` are read as http, as a browser reads them. '''
    assert main(["info", f"localhost:{server.port}/empty"]) == EXIT_OK
    assert f"url:        http://localhost:{server.port}/empty" in capsys.readouterr().out
    out = tmp_path / "doc.json"
    assert main(["pull", f"127.0.0.1:{server.port}/slider", "-o", str(out), "-q"]) == EXIT_OK
    assert '"slider"' in out.read_text()
    assert main(["push", str(out), f"127.0.0.1:{server.port}/empty", "--session-id", "no-scheme", "-q"]) == EXIT_OK
    assert capsys.readouterr().out.strip() == server.url("/empty") + "?bokeh-session-id=no-scheme"
    with pull_session(session_id="no-scheme", url=server.url("/empty")) as check:
        assert check.document.get_model_by_name("slider") is not None


@pytest.mark.parametrize("command", ["info", "pull", "push", "demo"])
@pytest.mark.parametrize("mistake", ["bad url", "bad option value", "missing argument", "unknown option"])
def test_usage_errors_exit_2_from_every_command(capsys, command, mistake):
    ''' One rule: any usage error exits 2, whichever command, before anything connects. '''
    # Port 9 (discard) on 127.0.0.1: nothing listens, so reaching the network would exit 1, not 2.
    url = "ftp://127.0.0.1:9/app" if mistake == "bad url" else "http://127.0.0.1:9/app"
    argv = {
        "info": ["info", url],
        "pull": ["pull", url],
        "push": ["push", os.path.join(ROOT, "examples", "app.py"), url],
        "demo": ["demo"],
    }[command]
    if mistake == "bad url" and command == "demo":
        argv = ["demo", "--port", "http://127.0.0.1:9/"]
    elif mistake == "bad option value":
        argv += ["--workers", "0"] if command == "demo" else ["--timeout", "-1"]
    elif mistake == "missing argument":
        argv = argv[:1] if command != "demo" else ["demo", "--duration"]
    elif mistake == "unknown option":
        argv += ["--no-such-option"]
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "error:" in err and "refused" not in err


def _browser_env(tmp_path, browser: str | None) -> dict[str, str]:
    ''' A headless machine: no display, only the virtualenv's bin on PATH, BROWSER as given. '''
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER", "BOKEH_BROWSER")}
    env["PATH"] = os.path.dirname(sys.executable)
    env["PYTHONPATH"] = ROOT
    if browser is not None:
        env["BROWSER"] = browser
    return env


def _push_show(server, tmp_path, browser: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bokehsync", "push", os.path.join(ROOT, "examples", "app.py"),
                           server.url("/empty"), "--show", "-q"],
                          capture_output=True, text=True, timeout=LONG, cwd=tmp_path,
                          env=_browser_env(tmp_path, browser))


@pytest.mark.parametrize("browser", ["none installed", "fails"])
def test_push_show_without_a_usable_browser_says_so(server, tmp_path, browser):
    ''' ``push --show`` where no browser can open: the push succeeds (exit 0, URL printed),
    and stderr says that no browser opened. '''
    done = _push_show(server, tmp_path, None if browser == "none installed" else "/bin/false")
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert url.startswith(server.url("/empty") + "?bokeh-session-id=")
    assert "bokehsync push: no web browser opened" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_push_show_opens_the_session_url_in_the_browser(server, tmp_path):
    ''' With a browser (here a script that records what it is asked to open): it gets the
    printed session URL, and nothing is said about a missing browser. '''
    record = tmp_path / "opened.txt"
    browser = tmp_path / "browser"
    browser.write_text(f"#!{sys.executable}\nimport sys\nopen({str(record)!r}, 'w').write(sys.argv[1])\n")
    browser.chmod(0o755)
    done = _push_show(server, tmp_path, str(browser))
    assert done.returncode == 0, done.stderr
    assert "no web browser" not in done.stderr
    wait_until(record.exists, what="the browser to be started")
    assert record.read_text() == done.stdout.strip()
