''' Every snippet of README.rst (and docs/quickstart.rst) runs as written against a real
server: the README's own ``bokeh serve examples/app.py``.

Changed on the way, and only this: port 5006 becomes a free port (other suites run on this
machine at the same time), and the demo's ``--duration 30`` becomes 1 s with one worker
(tests/integration/test_demo.py runs it with the default 4 workers). Not run: the set-up
lines (virtualenv, ``pip install``, ``apt-get``: CI runs them on a fresh machine), ``pytest``
(this suite; CI runs that exact line) and ``nox`` (the version matrix, which CI runs apart).
'''
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from bokeh.document import Document

from bokehsync import pull_session
from tests.support import LONG, ROOT, wait_until

README = os.path.join(ROOT, "README.rst")
QUICKSTART = os.path.join(ROOT, "docs", "quickstart.rst")
BLOCK = re.compile(r"^\.\. code-block:: (\w+)\n\n((?:(?: {4}.*)?\n)+)", re.MULTILINE)
BIN = os.path.dirname(sys.executable)

#: The README lines that set a machine up; CI runs them (.ci/run), this test does not.
SETUP = re.compile(r"^(python3 -m venv |\. \.venv/bin/activate|sudo apt-get install |pip install )")
#: Commands run elsewhere: the suite itself, and the version matrix.
ELSEWHERE = re.compile(r"^(pytest|nox)\b")
#: What a README command line may run here.
RUNNABLE = re.compile(r"^(bokehsync|python -m bokehsync|python examples/)\b")
SERVE = "bokeh serve examples/app.py"
TEST_COMMAND = "pip install -e '.[test]' && pytest"


def code_blocks(path: str) -> list[tuple[str, str]]:
    ''' (language, code) of each ``.. code-block::`` of an rst file, in order. '''
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return [(lang, "\n".join(line[4:] for line in body.rstrip("\n").split("\n")) + "\n")
            for lang, body in BLOCK.findall(text)]


def shell_commands(path: str) -> list[str]:
    ''' Each command of the sh blocks (lines split at ``&&``), comments removed. '''
    commands = []
    for lang, code in code_blocks(path):
        if lang == "sh":
            for line in code.splitlines():
                line = re.split(r"\s+#\s", line, maxsplit=1)[0].strip()
                commands += [part.strip() for part in line.split("&&") if part.strip()]
    return commands


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _here(text: str, port: int) -> str:
    ''' A snippet for this test's server: port 5006 becomes ``port``, a 30 s demo 1 s with one worker. '''
    return text.replace(":5006", f":{port}").replace("--duration 30", "--duration 1 --workers 1")


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[int]:
    ''' The README's ``bokeh serve examples/app.py``, on a free port; stopped at the end. '''
    assert SERVE in shell_commands(README), "the README no longer serves examples/app.py"
    port = _free_port()
    bokeh = os.path.join(BIN, "bokeh")
    cmd = [bokeh] if os.path.exists(bokeh) else [sys.executable, "-m", "bokeh"]
    cmd += [*shlex.split(SERVE)[1:], "--port", str(port)]
    log = open(tmp_path_factory.mktemp("bokeh-serve") / "log.txt", "w+")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        def listening() -> bool:
            if proc.poll() is not None:
                log.seek(0)
                raise AssertionError(f"bokeh serve exited {proc.returncode}: {log.read()}")
            try:
                socket.create_connection(("localhost", port), timeout=1).close()
            except OSError:
                return False
            return True
        wait_until(listening, what="bokeh serve examples/app.py to listen")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(LONG)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(LONG)
        log.close()


def _run_python(code: str, cwd: str) -> list[str]:
    ''' Run a snippet in a fresh interpreter; its stdout lines. Fails on an error. '''
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=LONG * 2, cwd=cwd)
    assert done.returncode == 0, f"this snippet failed:\n{code}\n{done.stderr}"
    return done.stdout.splitlines()


def _expected_prints(code: str) -> list[str]:
    ''' What the snippet says it prints: the comment after each ``print(...)``. '''
    return [m.group(1).strip() for m in re.finditer(r"^\s*print\(.*\)\s+#\s*(.+)$", code, re.MULTILINE)]


def test_readme_blocks_are_all_known():
    ''' Each README code block is Python, shell or a URL, and each shell command is one this test
    runs, or a set-up or suite command it names: a new kind of snippet must be added here. '''
    assert {lang for lang, _ in code_blocks(README)} <= {"python", "sh", "text"}
    with open(README, encoding="utf-8") as f:
        assert not re.search(r"[^:]::\n\n {4}", f.read()), "a literal block (::) this test would not see"
    for command in shell_commands(README):
        assert SETUP.match(command) or ELSEWHERE.match(command) or RUNNABLE.match(command) \
            or command == SERVE, f"README command not covered by this test: {command}"


def test_readme_test_command_is_what_ci_runs():
    ''' The README's test command is exactly the line .ci/run executes. '''
    readme_lines = [line.split("  #")[0].strip()
                    for lang, code in code_blocks(README) if lang == "sh" for line in code.splitlines()]
    assert TEST_COMMAND in readme_lines
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        assert TEST_COMMAND in [line.strip() for line in f]


def test_readme_first_example_changes_the_named_session(served, tmp_path):
    ''' The first example runs as written; a fresh client of session "hello" then sees the new value
    and the app callback's reaction; the check snippet prints what its comments say. '''
    first, check = [code for lang, code in code_blocks(README) if lang == "python"]
    assert 'session_id="hello"' in first and 'session_id="hello"' in check
    _run_python(_here(first, served), str(tmp_path))

    with pull_session(session_id="hello", url=f"http://localhost:{served}/app", timeout=LONG) as session:
        assert session.document.get_model_by_name("slider").value == 42
        assert session.document.get_model_by_name("label").text == "value: 42"
    with pull_session(url=f"http://localhost:{served}/app", timeout=LONG) as other:
        # A session without an id is a fresh copy of the app: the change is not there.
        assert other.document.get_model_by_name("slider").value == 10

    assert _run_python(_here(check, served), str(tmp_path)) == _expected_prints(check) == ["42", "value: 42"]


def test_readme_command_lines_run(served, tmp_path):
    ''' Every command line of the README exits 0 and does what it says, in order, in one directory. '''
    os.symlink(os.path.join(ROOT, "examples"), tmp_path / "examples")
    env = dict(os.environ, PATH=os.pathsep.join([BIN, os.environ.get("PATH", "")]),
               BROWSER=shutil.which("true") or "/bin/true")  # a "browser" that opens anything
    env.pop("BOKEH_BROWSER", None)
    ran = []
    for command in shell_commands(README):
        if not RUNNABLE.match(command):
            continue
        line = _here(command, served)
        done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=LONG * 2,
                              cwd=tmp_path, env=env)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        assert "error" not in done.stderr.lower(), f"{line}\n{done.stderr}"
        ran.append((command, done.stdout))

    def outputs(subcommand: str) -> list[str]:
        return [out for c, out in ran if c.split()[c.split().index("bokehsync") + 1] == subcommand]
    assert all("status:     OK" in out for out in outputs("info")) and outputs("info")
    pulled = Document.from_json(json.loads((tmp_path / "doc.json").read_text()))
    assert len(outputs("push")) == 2
    with pull_session(session_id="copy", url=f"http://localhost:{served}/app", timeout=LONG) as copy:
        # The copy pushed from doc.json is the pulled session's document.
        assert copy.document.get_model_by_name("slider").value == pulled.get_model_by_name("slider").value
        assert copy.document.get_model_by_name("label").text == pulled.get_model_by_name("label").text
    assert len(outputs("demo")) == 2 and all("worker 0: sent" in out for out in outputs("demo"))


def test_quickstart_snippets_run(served, tmp_path):
    ''' docs/quickstart.rst's Python snippets run as written against the same app. '''
    snippets = [code for lang, code in code_blocks(QUICKSTART) if lang == "python"]
    assert len(snippets) >= 2
    for code in snippets:
        _run_python(_here(code, served), str(tmp_path))


def test_readme_browser_follows_the_session(served):
    ''' What the README promises a browser: opened with ``?bokeh-session-id=``, it shows the change
    the first example makes to that session (session id changed, so this test starts from 10). '''
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = os.environ.get("BOKEHSYNC_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium executable (apt-get install chromium)")
    first = next(code for lang, code in code_blocks(README) if lang == "python")
    (url,) = [code.strip() for lang, code in code_blocks(README) if lang == "text"]
    model = "(name) => (window.Bokeh && Bokeh.documents.length) ? Bokeh.documents[0].get_model_by_name(name) : null"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page()
            page.goto(_here(url, served).replace("=hello", "=hello-browser"), timeout=LONG * 1000)
            page.wait_for_function(f"({model})('slider') !== null", timeout=LONG * 1000)
            assert page.evaluate(f"({model})('slider').value") == 10
            _run_python(_here(first, served).replace('"hello"', '"hello-browser"'), ROOT)
            page.wait_for_function(f"({model})('slider').value === 42 && ({model})('label').text === 'value: 42'",
                                   timeout=LONG * 1000)
        finally:
            browser.close()
