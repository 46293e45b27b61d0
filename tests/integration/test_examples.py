''' Every example in examples/ runs against the demo's server app and does what it says. '''
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from bokehsync import pull_session
from tests.support import LONG, ROOT

EXAMPLES = os.path.join(ROOT, "examples")
SESSION_URL = re.compile(r"(http://127\.0\.0\.1:\d+/demo)\?bokeh-session-id=(\S+)")


@pytest.fixture(scope="module")
def demo_url(demo_server) -> str:
    ''' The demo command's server app (conftest's ``demo_server``). '''
    return demo_server.url("/demo")


def _run(name: str, *args: str) -> str:
    done = subprocess.run([sys.executable, os.path.join(EXAMPLES, name), *args], capture_output=True,
                          text=True, timeout=LONG * 2, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _rows(url: str, session_id: str) -> int:
    with pull_session(session_id=session_id, url=url, timeout=LONG) as check:
        return len(check.document.get_model_by_name("source").data["x"])


def test_script_example(demo_url):
    ''' script.py streams its rows; a fresh session pulls them all from the printed session. '''
    out = _run("script.py", demo_url + "?bokeh-session-id=ignored", "--rows", "50")
    assert "server has 50 rows" in out
    url, session_id = SESSION_URL.search(out).groups()
    assert _rows(url, session_id) == 50


def test_pool_example(demo_url):
    ''' pool.py: each task's document, pushed from a worker process, is on the server. '''
    out = _run("pool.py", demo_url, "--workers", "2", "--tasks", "3", "--method", "executor", "--start", "spawn")
    found = SESSION_URL.findall(out)
    assert len(found) == 3
    for url, session_id in found:
        assert _rows(url, session_id) == 100


@pytest.mark.slow
def test_dask_example(demo_url):
    ''' dask_cluster.py as a command, on its own LocalCluster: every task's document is on the server.
    (Slow: a cluster of its own. test_pools runs the example's run() on its shared cluster by default.) '''
    pytest.importorskip("distributed")
    out = _run("dask_cluster.py", demo_url, "--tasks", "2")
    found = SESSION_URL.findall(out)
    assert len(found) == 2
    for url, session_id in found:
        assert _rows(url, session_id) == 100


def test_flask_example(demo_url):
    ''' flask_app.py: each request prepares its own session and embeds it (server_session). '''
    pytest.importorskip("flask")
    spec = importlib.util.spec_from_file_location("flask_app_example", os.path.join(EXAMPLES, "flask_app.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    client = module.create_app(demo_url).test_client()
    ids = []
    for user in ("ann", "bob"):
        response = client.get(f"/?user={user}")
        assert response.status_code == 200
        page = response.get_data(as_text=True)
        assert f"<h1>Hello, {user}</h1>" in page and f"{demo_url}/autoload.js" in page
        session_id = re.search(r'"Bokeh-Session-Id", "([^"]+)"', page).group(1)
        ids.append(session_id)
        with pull_session(session_id=session_id, url=demo_url, timeout=LONG) as check:
            assert check.document.title == f"Hello, {user}"
            assert f"prepared for {user}" in check.document.roots[0].text
    assert ids[0] != ids[1]
