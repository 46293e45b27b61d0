''' The ``bokehsync`` command line against a real server: info, pull, push, exit codes. '''
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading

import pytest
from bokeh.document import Document
from bokeh.models import ColumnDataSource

from bokehsync import pull_session, push_session
from bokehsync.cli import (
    EXIT_FILE,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    Progress,
    main,
    split_url,
)
from tests.support import LONG, ROOT, refusing_port, wait_until

SCRIPT = '''
import sys
from bokeh.io import curdoc
from bokeh.models import ColumnDataSource, Slider
curdoc().add_root(Slider(start=0, end=10, value=int(sys.argv[1]) if len(sys.argv) > 1 else 3, name="slider"))
curdoc().add_root(ColumnDataSource(data={"x": [1, 2, 3]}, name="source"))
curdoc().title = "from a script"
'''


def _command() -> list[str]:
    ''' The installed console script if there is one, else ``python -m bokehsync``. '''
    script = os.path.join(os.path.dirname(sys.executable), "bokehsync")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "bokehsync"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_command(), *args], capture_output=True, text=True, timeout=LONG, cwd=ROOT)


def test_info_console_script_prints_version_and_exits_0(server):
    ''' ``bokehsync info URL`` (the installed command) names the server version and latency; exit 0. '''
    import bokeh
    done = _run("info", server.url("/empty"))
    assert done.returncode == 0, done.stderr
    assert f"bokeh {bokeh.__version__}" in done.stdout
    assert "round trip:" in done.stdout and "status:     OK" in done.stdout


def test_info_unreachable_exits_1_with_one_line(capsys):
    ''' Nothing listening: exit 1, one line on stderr that says so. '''
    with refusing_port() as port:
        assert main(["info", f"http://127.0.0.1:{port}/app", "--timeout", "5"]) == EXIT_UNREACHABLE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("bokehsync info: error:") and "refused" in err


def test_info_json_output(server, capsys):
    ''' ``info --json`` prints one JSON object a script can parse. '''
    assert main(["info", server.url("/empty"), "--json"]) == EXIT_OK
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is True and result["roundtrip_ms"] >= 0


def test_pull_wrong_app_path_exits_1(server, capsys):
    ''' A URL with no app behind it (HTTP 404) is "unreachable": exit 1, one line, no HTML. '''
    assert main(["pull", server.url("/no-such-app")]) == EXIT_UNREACHABLE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "HTTP 404" in err and "<" not in err


def test_pull_writes_the_session_document(server, tmp_path):
    ''' ``pull URL --session-id ID -o FILE`` writes the session document as JSON that bokeh loads back. '''
    doc = Document()
    doc.add_root(ColumnDataSource(data={"x": [1.5, 2.5]}, name="source"))
    out = tmp_path / "doc.json"
    with push_session(doc, url=server.url("/empty")) as session:
        assert main(["pull", server.url("/empty"), "--session-id", session.id, "-o", str(out), "-q"]) == EXIT_OK
    loaded = Document.from_json(json.loads(out.read_text()))
    assert list(loaded.get_model_by_name("source").data["x"]) == [1.5, 2.5]


def test_pull_then_push_json_copies_a_session(server, tmp_path, capsys):
    ''' A document pulled to a file and pushed to a new session arrives whole (session id from the URL). '''
    with pull_session(url=server.url("/slider")) as original:
        original.document.get_model_by_name("slider").value = 7
        original.flush()
        url = f"{server.url('/slider')}?bokeh-session-id={original.id}"
        assert main(["pull", url, "-o", str(tmp_path / "d.json")]) == EXIT_OK
    assert main(["push", str(tmp_path / "d.json"), server.url("/empty"), "--session-id", "copied"]) == EXIT_OK
    assert capsys.readouterr().out.strip() == server.url("/empty") + "?bokeh-session-id=copied"
    with pull_session(session_id="copied", url=server.url("/empty")) as check:
        assert check.document.get_model_by_name("slider").value == 7


def test_push_app_script_with_arguments(server, tmp_path):
    ''' ``push app.py URL --args 9`` runs the script as bokeh serve would (curdoc, sys.argv) and pushes it. '''
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    done = _run("push", str(script), server.url("/empty"), "--args", "9")
    assert done.returncode == 0, done.stderr
    printed = done.stdout.strip()
    url, session_id = split_url(printed)
    assert url == server.url("/empty") and session_id
    with pull_session(session_id=session_id, url=url) as check:
        assert check.document.title == "from a script"
        assert check.document.get_model_by_name("slider").value == 9
        assert list(check.document.get_model_by_name("source").data["x"]) == [1, 2, 3]


def test_push_failing_script_exits_3(server, tmp_path, capsys):
    ''' A script that raises: exit 3, one line naming the error, nothing pushed. '''
    script = tmp_path / "bad.py"
    script.write_text("raise ValueError('no data today')\n")
    assert main(["push", str(script), server.url("/empty")]) == EXIT_FILE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no data today" in err


@pytest.mark.parametrize("content", ["{not json", '{"roots": 3}'])
def test_push_bad_json_exits_3(server, tmp_path, capsys, content):
    ''' A .json file that is not a document: exit 3, one line. '''
    path = tmp_path / "doc.json"
    path.write_text(content)
    assert main(["push", str(path), server.url("/empty")]) == EXIT_FILE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a Bokeh document" in err


def test_usage_errors_exit_2(tmp_path, capsys):
    ''' Missing file -> 3; a URL that is not http(s), or a bad option value -> 2, returned, not raised. '''
    assert main(["push", str(tmp_path / "missing.json"), "http://127.0.0.1:1/"]) == EXIT_FILE
    assert main(["pull", "ftp://example.org/app"]) == EXIT_USAGE
    assert main(["demo", "--workers", "0"]) == EXIT_USAGE
    assert main([]) == EXIT_USAGE
    capsys.readouterr()


@pytest.mark.parametrize("command", ["info", "pull", "push", "demo"])
def test_help_for_each_command(command, capsys):
    ''' ``bokehsync COMMAND --help`` describes the command and exits 0. '''
    assert main([command, "--help"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith(f"usage: bokehsync {command}")


def test_split_url_takes_the_session_id_from_the_query():
    ''' A URL copied from the browser names its session; --session-id wins over it. '''
    assert split_url("http://h:1/app?bokeh-session-id=abc&n=1") == ("http://h:1/app?n=1", "abc")
    assert split_url("http://h:1/app?bokeh-session-id=abc", "xyz") == ("http://h:1/app", "xyz")
    assert split_url("ws://h:1/app/ws") == ("http://h:1/app/", None)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_spinner_draws_on_a_terminal_and_clears():
    ''' Without a progress callback, a slow step shows a spinner with elapsed time, erased at the end. '''
    stream = _Tty()
    with Progress("pulling", stream=stream, delay=0.0) as progress:
        wait_until(lambda: "pulling" in stream.getvalue(), what="the spinner")
        assert progress.enabled
    assert stream.getvalue().endswith("\r\033[K")
    assert not [t for t in threading.enumerate() if t.name == "bokehsync-cli-progress"]


def test_progress_is_silent_when_not_a_terminal():
    ''' Piped output gets no progress noise. '''
    stream = io.StringIO()
    with Progress("pulling", stream=stream, delay=0.0) as progress:
        progress.callback(5, 10)
    assert stream.getvalue() == ""


def test_progress_bar_with_callback():
    ''' With (done, total) reports, the indicator shows a percentage (tqdm or plain). '''
    stream = _Tty()
    with Progress("pushing", stream=stream, delay=0.0) as progress:
        progress.callback(1, 2)
        wait_until(lambda: "50%" in stream.getvalue(), what="50%")


def test_version(capsys):
    ''' ``bokehsync --version`` prints the package version. '''
    from bokehsync import __version__
    assert main(["--version"]) == EXIT_OK
    assert capsys.readouterr().out.strip() == f"bokehsync {__version__}"
