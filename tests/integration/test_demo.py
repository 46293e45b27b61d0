''' ``python -m bokehsync demo``: a server, a pushed document, worker processes updating it;
a quiet stop, and no process left behind however the demo ends. '''
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

#: Everything a demo may print on stdout; anything else (a warning, a traceback) is noise.
EXPECTED_STDOUT = (
    re.compile(r"^bokehsync demo: \d+ worker processes update one document\.$"),
    URL_LINE,
    re.compile(r"^Stop with Ctrl-C( \(or wait [\d.]+ s\))?\.$"),
    re.compile(r"^Interrupted: stopping\.$"),
    re.compile(r"^Stopping \(SIGTERM\)\.$"),
    SUMMARY_LINE,
)

needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads the process table in /proc")


def _default_sigint() -> None:
    ''' In the child: Ctrl-C raises KeyboardInterrupt even when the test runner
    was started with SIGINT ignored (as background jobs are), which Python
    would otherwise keep ignoring.
    '''
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Demo:
    ''' A demo process (the leader of its own process group) whose stdout lines are collected by a thread. '''

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
        ''' Stop whatever is left of the demo's process group. '''
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
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


def _assert_quiet(demo: Demo, err: str) -> None:
    ''' Nothing on stderr, and nothing on stdout but the demo's own lines. '''
    assert err == "", err
    noise = [line for line in demo.lines if not any(p.match(line) for p in EXPECTED_STDOUT)]
    assert not noise, noise


def test_normal_end_prints_nothing_alarming(demo_factory):
    ''' The default 4 workers, ``--duration``: the demo ends with exit 0, every row accounted for,
    and prints nothing but its own lines (no "Failed sending message as connection was closed"
    from its server: no session closes while another still sends). A short ``--interval`` makes
    the last rows of the workers cross their closes if the stop is not in order. '''
    demo = Demo("--duration", "5", "--interval", "0.01")
    demo_factory.append(demo)
    demo.url()
    rc, err = demo.finish()
    assert rc == 0, err
    _assert_quiet(demo, err)
    summary = demo.summary()
    assert set(summary) == {0, 1, 2, 3}
    assert all(on_server == sent for sent, on_server in summary.values())


def test_ctrl_c_stops_quietly_and_leaves_nothing(demo_factory):
    ''' Every worker's rows reach the pushed document, seen live by a pulled session (and the
    main process's title counts them); Ctrl-C (SIGINT to the whole process group, as a terminal
    sends it) then stops it with exit 0, nothing alarming printed, every row sent on the server,
    and no process of the group left. '''
    demo = Demo("--interval", "0.01")
    demo_factory.append(demo)
    url, port, session_id = demo.url()
    # Watch from a session that stays open until the demo is gone: a client leaving while the
    # workers stream is a browser tab closing, which is not what this test is about.
    session = pull_session(session_id=session_id, url=url)
    try:
        source = session.document.get_model_by_name("source")

        def workers_seen() -> int:
            with session.lock:
                return len(set(source.data["worker"]))
        wait_until(lambda: workers_seen() == 4, what="rows from every worker")
        title = session.document.get_model_by_name("plot").title
        wait_until(lambda: not title.text.endswith(" 0 rows"), what="the title to count rows")
        os.killpg(demo.proc.pid, signal.SIGINT)
        rc, err = demo.finish()
    finally:
        session.close(flush=False)
    assert rc == 0, err
    _assert_quiet(demo, err)
    assert "Interrupted: stopping." in demo.lines
    summary = demo.summary()
    assert set(summary) == {0, 1, 2, 3}
    assert all(on_server == sent > 0 for sent, on_server in summary.values())
    assert _port_closed(port)
    wait_until(lambda: _group_gone(demo.proc.pid), what="the demo's processes to exit")


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


def _processes_of_group(pgid: int) -> dict[int, str]:
    ''' pid -> start time (to tell a pid reused later apart) of the live processes of a group. '''
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None and int(stat[2]) == pgid and stat[0] != "Z":
                found[int(entry)] = stat[19]
    return found


def _stat(pid: int) -> list[str] | None:
    ''' The fields of /proc/PID/stat after the command name (state, ppid, pgrp, ...), or None. '''
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def _alive(pid: int, started: str) -> bool:
    ''' The process (the same one: same start time) exists and is not a zombie. '''
    stat = _stat(pid)
    return stat is not None and stat[19] == started and stat[0] != "Z"


@needs_proc
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killing_the_main_process_leaves_no_process_behind(demo_factory, sig):
    ''' SIGTERM or SIGKILL to the demo's main process only (as ``kill PID`` or ``timeout`` send
    it) while its workers stream: every worker, the server and multiprocessing's helper end
    with it. (SIGTERM stops the demo in order, exit 0; after a SIGKILL the workers see their
    parent die, and the server its standard input close.) '''
    demo = Demo("--workers", "2", "--interval", "0.05")
    demo_factory.append(demo)
    url, _, session_id = demo.url()
    with pull_session(session_id=session_id, url=url) as session:
        source = session.document.get_model_by_name("source")

        def workers_seen() -> int:
            with session.lock:
                return len(set(source.data["worker"]))
        wait_until(lambda: workers_seen() == 2, what="rows from both workers")
        session.close(flush=False)
    children = {pid: started for pid, started in _processes_of_group(demo.proc.pid).items()
                if pid != demo.proc.pid}
    workers = [pid for pid in children if b"multiprocessing" in _cmdline(pid) and b"spawn_main" in _cmdline(pid)]
    assert len(workers) == 2, children
    assert any(b"bokehsync._localserver" in _cmdline(pid) for pid in children)

    os.kill(demo.proc.pid, sig)  # the main process only, not its group
    rc = demo.proc.wait(LONG)
    try:
        wait_until(lambda: not any(_alive(pid, started) for pid, started in children.items()),
                   what=f"the demo's children to end after {sig.name} of the main process")
    finally:
        for pid, started in children.items():
            if _alive(pid, started):
                os.kill(pid, signal.SIGKILL)
    assert rc == (0 if sig == signal.SIGTERM else -signal.SIGKILL)
    if sig == signal.SIGTERM:
        demo.finish()
        assert "Stopping (SIGTERM)." in demo.lines
        summary = demo.summary()
        assert set(summary) == {0, 1}, demo.lines
        assert all(on_server == sent > 0 for sent, on_server in summary.values()), demo.lines


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError):
        return b""
