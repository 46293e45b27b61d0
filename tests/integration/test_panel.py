''' A real ``panel serve`` app driven through bokehsync: the client changes a widget, the app's
server-side reaction (``pn.bind``) arrives in ``session.document`` by itself, and both are on the
server. Panel apps are the largest group of Bokeh server apps. '''
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from bokeh.models import Slider

from bokehsync import pull_session
from tests.support import LONG, ROOT, wait_until

# Skip without Panel (the `integrations` extra), without importing it into the whole test run.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("panel") is None, reason="panel is not installed")

APP = os.path.join(ROOT, "tests", "panel_app.py")


def _drain(stream, found: list[str], ready: threading.Event) -> None:
    ''' Body of the server's output thread: find the URL it reports, then keep the pipe empty. '''
    for line in iter(stream.readline, ""):
        match = re.search(r"Bokeh app running at: (http://\S+)", line)
        if match and not found:
            found.append(match.group(1))
            ready.set()
    ready.set()  # the server exited


@pytest.fixture(scope="module")
def panel_url() -> Iterator[str]:
    ''' ``panel serve tests/panel_app.py`` on 127.0.0.1, on a port the server picks itself
    (``--port 0``; it logs the URL with the actual port). Stopped in ``finally``. '''
    proc = subprocess.Popen([sys.executable, "-m", "panel", "serve", APP, "--address", "127.0.0.1",
                             "--port", "0"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    found: list[str] = []
    ready = threading.Event()
    reader = threading.Thread(target=_drain, args=(proc.stdout, found, ready), name="panel-serve-output",
                              daemon=True)
    reader.start()
    try:
        if not ready.wait(LONG * 2) or not found:
            raise RuntimeError(f"panel serve did not report its URL (exit code {proc.poll()})")
        yield found[0]
    finally:
        proc.terminate()
        try:
            proc.wait(LONG)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(LONG)
        reader.join(LONG)
        proc.stdout.close()


def test_widget_change_and_the_apps_reaction(panel_url):
    ''' With ``import panel`` in the client: a slider moved from Python makes the app recompute a pane on
    the server; the new text arrives in session.document without any call; a fresh session sees both. '''
    import panel  # noqa: F401  (the client needs Panel's model classes, as the server has them)
    from panel.models import HTML
    with pull_session(url=panel_url, timeout=LONG) as session:
        doc = session.document
        with session.lock:
            slider = doc.select_one({"type": Slider})
            pane = doc.select_one({"type": HTML})
            assert slider.value == 3 and "square: 9" in pane.text
            slider.value = 7
        # No flush, no round trip: the reader thread applies the app's reaction when it comes.
        wait_until(lambda: "square: 49" in pane.text, what="the app's reaction in session.document")
        with pull_session(session_id=session.id, url=panel_url, timeout=LONG) as check:
            assert check.document.select_one({"type": Slider}).value == 7
            assert "square: 49" in check.document.select_one({"type": HTML}).text


CLIENT_WITHOUT_PANEL = r'''
import json, sys, threading, time
from bokeh.core.serialization import DeserializationError
import bokehsync
out = {}
try:
    bokehsync.pull_session(url=sys.argv[1], timeout=30)
except Exception as e:
    out = {"type": type(e).__name__, "message": str(e), "type_name": getattr(e, "type_name", None),
           "module": getattr(e, "module", None), "deserialization": isinstance(e, DeserializationError),
           "bokehsync": isinstance(e, bokehsync.BokehSyncError)}
deadline = time.monotonic() + 30
while any(t.name.startswith("bokehsync-") for t in threading.enumerate()) and time.monotonic() < deadline:
    threading.Event().wait(0.01)
out["threads"] = [t.name for t in threading.enumerate() if t.name.startswith("bokehsync-")]
out["panel_imported"] = sorted(m for m in sys.modules if m == "panel" or m.startswith("panel."))
print(json.dumps(out))
'''


def test_pull_without_import_panel_says_import_panel(panel_url):
    ''' A client that did not ``import panel`` gets UnknownModelType naming the Panel model type, its
    module and "import panel"; Panel is not imported behind its back; no thread is left. (The client
    runs in its own interpreter: this one imported Panel already.) bokeh.client raises
    ``DeserializationError: can't resolve type 'panel.models.layout.Column'`` here. '''
    done = subprocess.run([sys.executable, "-c", CLIENT_WITHOUT_PANEL, panel_url], capture_output=True,
                          text=True, timeout=LONG * 2, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out.get("type") == "UnknownModelType", out
    assert out["deserialization"] and out["bokehsync"]
    type_name, module = out["type_name"], out["module"]
    assert type_name.startswith("panel.models.") and module == type_name.rpartition(".")[0]
    assert type_name in out["message"] and module in out["message"] and "import panel" in out["message"]
    assert "same model classes as the server" in out["message"]
    assert out["panel_imported"] == [] and out["threads"] == []
