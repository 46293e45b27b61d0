''' ``python -m bokehsync demo``: a server, a pushed document, worker processes updating it. '''
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from bokehsync import pull_session
from tests.support import LONG, ROOT, wait_until

URL_LINE = re.compile(r"^Open (http://127\.0\.0\.1:(\d+)/demo)\?bokeh-session-id=(\S+)$")
SUMMARY_LINE = re.compile(r"^worker (\d+): sent (\d+) rows, (\d+) on the server$")


def _default_sigint() -> None:
    ''' In the child: Ctrl-C raises KeyboardInterrupt even when the test runner
    was started with SIGINT ignored (as background jobs are), which Python
    would otherwise keep ignoring.
    '''
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Demo:
    ''' A demo process whose stdout lines are collected by a thread. '''

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bokehsync", "demo", *args], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True, preexec_fn=_default_sigint)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, name="test-demo-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def url(self) -> tuple[str, int, str]:
        ''' (app URL, port, session id) once the demo printed them. '''
        wait_until(lambda: any(URL_LINE.match(x) for x in self.lines) or self.proc.poll() is not None,
                   timeout=LONG, what="the demo's URL")
        for line in self.lines:
            m = URL_LINE.match(line)
            if m:
                return m.group(1), int(m.group(2)), m.group(3)
        raise AssertionError(f"no URL printed; exit {self.proc.poll()}: {self.proc.stderr.read()}")

    def finish(self) -> tuple[int, str]:
        ''' Wait for the exit; the exit code and stderr. '''
        rc = self.proc.wait(LONG)
        self._reader.join(LONG)
        return rc, self.proc.stderr.read()

    def summary(self) -> dict[int, tuple[int, int]]:
        found = {}
        for line in self.lines:
            m = SUMMARY_LINE.match(line)
            if m:
                found[int(m.group(1))] = (int(m.group(2)), int(m.group(3)))
        return found

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(LONG)
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()


@pytest.fixture
def demo_factory() -> Iterator[list[Demo]]:
    demos: list[Demo] = []
    try:
        yield demos
    finally:
        for demo in demos:
            demo.kill()


def _port_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_demo_workers_reach_the_document_and_ctrl_c_stops_it(demo_factory):
    ''' Every worker's rows reach the pushed document (seen live by a pulled session); Ctrl-C (SIGINT to
    the whole process group, as a terminal sends it) then exits 0 after a clean stop, and the summary
    says each worker's rows are all on the server. (No --duration: a wall-clock window could end
    before spawned workers start on a loaded machine.) '''
    demo = Demo("--workers", "2", "--interval", "0.05")
    demo_factory.append(demo)
    url, port, session_id = demo.url()

    with pull_session(session_id=session_id, url=url) as session:
        source = session.document.get_model_by_name("source")

        def workers_seen() -> set[str]:
            with session.lock:
                return set(source.data["worker"])
        wait_until(lambda: workers_seen() == {"worker 0", "worker 1"}, timeout=LONG, what="rows of both workers")
        plot = session.document.get_model_by_name("plot")
        wait_until(lambda: not plot.title.text.endswith(" 0 rows"), what="the title to count rows")
        session.close(flush=False)

    os.killpg(demo.proc.pid, signal.SIGINT)
    rc, err = demo.finish()
    assert rc == 0, err
    assert "Traceback" not in err, err
    assert "Interrupted: stopping." in demo.lines
    summary = demo.summary()
    assert set(summary) == {0, 1}
    for sent, on_server in summary.values():
        assert sent > 0 and on_server == sent
    assert _port_closed(port)
    # Nothing of the demo's process group is left.
    with pytest.raises(ProcessLookupError):
        wait_until(lambda: _group_gone(demo.proc.pid), timeout=LONG, what="the demo's processes to exit")
        os.killpg(demo.proc.pid, 0)


def test_demo_duration_ends_by_itself(demo_factory):
    ''' With --duration the demo stops on its own, exits 0, and every row a worker sent is on the server
    (how many depends on how soon the worker started: not asserted). '''
    demo = Demo("--workers", "1", "--duration", "1", "--interval", "0.05")
    demo_factory.append(demo)
    _, port, _ = demo.url()
    rc, err = demo.finish()
    assert rc == 0, err
    assert "Interrupted: stopping." not in demo.lines
    summary = demo.summary()
    assert set(summary) == {0} and summary[0][1] == summary[0][0]
    assert _port_closed(port)


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False
