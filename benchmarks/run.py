''' Benchmarks of bokehsync against bokeh.client and against the floor, in the same run.

Usage::

    python benchmarks/run.py [--case NAME ...] [--client NAME ...] [--match TEXT ...]
                             [--json OUT] [--quick] [--reps N] [--baseline REV]

Real Bokeh servers run in their own processes (``LocalServer``) with the apps
of ``benchmarks/apps.py``: the main one with a 1 GiB websocket message limit,
and, only for ``push_limit``, one with bokeh's default settings (20 MiB).
Every measured run is a fresh process (``python -m benchmarks._client``)
with a hard timeout, so peak RSS is the run's own and a client that hangs or
crashes is reported as such instead of stopping the suite. Within each
repetition the runs of one case alternate (the order is reversed every other
repetition); figures are medians over the repetitions.

Clients: ``bokeh`` (bokeh.client), ``bokehsync``, ``raw`` (a raw websocket
speaking the protocol by hand, ``_raw.py``: the floor of the wire-bound
cases) and ``floor`` (the same document work on a bare bokeh Document with
no client at all, ``_floor.py``: the floor of the client-side cases).

Cases: rtt, connect_pull, push_big, patch_burst, stream, patch_callback,
receive, workers, writers, push_limit, import. ``--case`` picks cases,
``--client`` clients, ``--match`` jobs whose key (as printed) contains the
text, e.g. ``--match 'stream[numpy]'``; ``--quick`` runs each once.

``--baseline REV`` (a git revision: a commit, tag or branch) also runs every
bokehsync job with the ``bokehsync/`` of REV (taken with ``git archive`` into
a temporary directory; the cases, floors and servers are this tree's), as the
client ``bokehsync@REV``, right beside this tree's in every repetition, and
prints the ratios: "is this change slower?" answered in one run, on one
machine, at one load.
'''
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from bokehsync._localserver import LocalServer  # noqa: E402

APPS = ("empty", "range1d", "source", "echo", "ticker")

#: The main server's websocket message limit: above the largest push (issue 13's 200 MB).
SERVER_MAX_MESSAGE = 1 << 30

CASE_NAMES = ("rtt", "connect_pull", "push_big", "patch_burst", "stream", "patch_callback", "receive",
              "workers", "writers", "push_limit", "import")

CLIENT_NAMES = ("bokeh", "bokehsync", "raw", "floor")

#: Writers of the many-writers case, and each one's work: streams x rows.
WRITERS = (1, 2, 4, 8)
WRITER_STREAMS, WRITER_ROWS = 200, 50

#: Issue 13's push: two float64 columns of this many rows (200 MB).
LIMIT_ROWS = 12_500_000


@dataclass
class Job:
    ''' One (case, variant, client) measured ``reps`` times, each in a fresh process. '''
    case: str
    variant: str
    client: str
    params: dict[str, Any]
    reps: int
    timeout: float
    label: str = ""
    server: str = "main"
    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        ''' ``case[label]/variant/client``, unique in a run. '''
        return f"{self.case}{self.label}/{self.variant or '-'}/{self.client}"

    def ok(self) -> list[dict[str, Any]]:
        ''' The runs that finished and did what they were asked (not ``fails``). '''
        return [r for r in self.results if "error" not in r and "fails" not in r]

    def median(self, name: str = "time") -> float | None:
        ''' Median of ``name`` over the finished runs. '''
        values = [r[name] for r in self.ok() if r.get(name) is not None]
        return statistics.median(values) if values else None


def plan(quick: bool, reps: int | None) -> list[Job]:
    ''' Every job of a run, in the order they run within a repetition. '''
    r = reps or (1 if quick else 3)
    few = reps or (1 if quick else 2)
    jobs: list[Job] = []

    def add(case: str, variant: str, client: str, params: dict[str, Any], *, n: int = r,
            timeout: float = 60, label: str = "", server: str = "main") -> None:
        jobs.append(Job(case, variant, client, params, n, timeout, label, server))

    # The ~40 ms delayed-ACK stalls of bokeh.client and of the raw client
    # without QUICKACK are steady: a median of 50 is enough and keeps it short.
    for client, variant, n in (("bokeh", "", 20 if quick else 50), ("bokehsync", "", 200), ("raw", "quickack", 200),
                               ("raw", "noquickack", 20 if quick else 50)):
        add("rtt", variant, client, {"n": n})
    for client in ("bokeh", "bokehsync", "raw"):
        add("connect_pull", "", client, {"n": 10 if quick else 20})
    for rows in ((100_000, 5_000_000) if quick else (100_000, 1_000_000, 5_000_000)):
        for client in ("floor", "bokeh", "bokehsync", "raw"):
            add("push_big", "", client, {"rows": rows}, label=f"[{rows:.0e}]".replace("+0", ""), timeout=120,
                n=r if rows < 5_000_000 or quick else 2 if client == "raw" else r)
    burst = {"n": 10_000}
    add("patch_burst", "", "floor", burst)
    add("patch_burst", "each", "bokeh", burst, n=1, timeout=30)
    if not quick:
        add("patch_burst", "rt100", "bokeh", burst, n=1, timeout=60)
    add("patch_burst", "each", "bokehsync", burst)
    add("patch_burst", "batch", "bokehsync", burst)
    add("patch_burst", "pipelined", "raw", burst)
    add("patch_burst", "each", "raw", burst, n=1)
    add("patch_burst", "merged", "raw", burst, n=few)
    for kind in ("list", "numpy"):
        params = {"n": 1000, "rows": 1000, "kind": kind}
        label = f"[{kind}]"
        # Issue 16's target is numpy; lists (and their slow verification) get fewer runs.
        reps_kind = r if kind == "numpy" else few
        add("stream", "", "floor", params, n=reps_kind, timeout=60, label=label)
        add("stream", "each", "bokeh", params, n=1, timeout=30, label=label)
        if not quick:
            add("stream", "rt100", "bokeh", params, n=1, timeout=90, label=label)
        add("stream", "each", "bokehsync", params, n=reps_kind, timeout=90, label=label)
        if not quick:
            add("stream", "batch", "bokehsync", params, n=1, timeout=90, label=label)
            add("stream", "each", "raw", params, n=1, timeout=90, label=label)
    echo = {"n": 10_000}
    add("patch_callback", "", "floor", echo, n=few)
    add("patch_callback", "roundtrip", "bokeh", echo, n=1, timeout=10)
    if not quick:
        add("patch_callback", "loop100", "bokeh", echo, n=1, timeout=90)
    add("patch_callback", "each", "bokehsync", echo, n=few, timeout=90)
    # bokeh.client applies nothing while it sleeps (0 of ~60 updates): once is enough.
    for client, variant, n in (("bokeh", "sleep", 1), ("bokeh", "loop", 1 if quick else 2),
                               ("bokehsync", "sleep", 1 if quick else 2)):
        add("receive", variant, client, {"seconds": 3}, n=n, timeout=30)
    for method in ("spawn", "fork"):
        for client in ("bokeh", "bokehsync"):
            add("workers", method, client, {"procs": 8, "rows": 100_000}, n=few, timeout=150)
    for procs in WRITERS:
        params = {"procs": procs, "streams": WRITER_STREAMS, "rows": WRITER_ROWS}
        for variant in ("shared", "own"):
            for client in ("floor", "bokehsync"):
                # The target's two points (1 and 8 writers, shared) get the most runs.
                n = r if variant == "shared" and procs in (1, 8) else few
                add("writers", variant, client, params, n=n, label=f"[{procs}]", timeout=180)
    limit = {"rows": LIMIT_ROWS}
    add("push_limit", "", "floor", limit, n=few, timeout=60)
    for client, server in (("bokehsync", "1gib"), ("bokeh", "1gib"), ("bokehsync", "default"),
                           ("bokeh", "default")):
        add("push_limit", server, client, limit, n=r if client == "bokehsync" else few, timeout=180,
            server="main" if server == "1gib" else "default")
    return jobs


def wait_idle(server: psutil.Process, limit: float = 3.0) -> None:
    ''' Wait (up to ``limit`` seconds) until the server used under 5 ms of CPU
    in the last 100 ms, so that a run does not pay for the previous one's
    leftovers (closing sessions, broadcasts still being sent).
    '''
    end = time.monotonic() + limit
    while time.monotonic() < end:
        cpu0 = sum(server.cpu_times()[:2])
        time.sleep(0.1)
        if sum(server.cpu_times()[:2]) - cpu0 < 0.005:
            return


def with_baseline(jobs: list[Job], rev: str) -> list[Job]:
    ''' ``jobs`` with a ``bokehsync@REV`` twin right after every bokehsync job. '''
    out: list[Job] = []
    for job in jobs:
        out.append(job)
        if job.client == "bokehsync":
            out.append(dataclasses.replace(job, client=f"bokehsync@{rev}", results=[]))
    return out


def extract_baseline(rev: str, into: Path) -> Path:
    ''' Revision ``rev``'s ``bokehsync/`` under ``into`` (``git archive``).

    Raises:
        SystemExit: ``rev`` is not a revision of this repository, or has no ``bokehsync/``
    '''
    done = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev, "bokehsync"],
                          capture_output=True, timeout=60)
    if done.returncode != 0:
        raise SystemExit(f"--baseline {rev}: git archive failed: {done.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def run_job(job: Job, base: str, server: psutil.Process, baseline: Path | None = None) -> dict[str, Any]:
    ''' One run of ``job`` in a fresh process, killed after ``job.timeout``; a
    ``bokehsync@REV`` job runs as bokehsync, importing it from ``baseline``.
    '''
    wait_idle(server)  # floors too: a busy server would take a core from them
    client, env = job.client, None
    if client.startswith("bokehsync@"):
        assert baseline is not None
        client, env = "bokehsync", dict(os.environ, BOKEHSYNC_BENCH_BASELINE=str(baseline))
    cmd = [sys.executable, "-m", "benchmarks._client", job.case, client, job.variant, base,
           json.dumps(job.params)]
    load = os.getloadavg()[0]
    cpu0 = sum(server.cpu_times()[:2])
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=env)
    try:
        out, err = proc.communicate(timeout=job.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
        last = _last_error(err)
        return {"error": f"HANG: killed after {job.timeout:.0f} s" + (f" ({last})" if last else ""),
                "wall": time.perf_counter() - t0, "load": load}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    wall = time.perf_counter() - t0
    server_cpu = sum(server.cpu_times()[:2]) - cpu0
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"FAILED (exit {proc.returncode}): {_last_error(err)}", "wall": wall, "load": load}
    result = json.loads(lines[-1])
    result["wall"] = wall
    result["server_cpu"] = server_cpu
    result["load"] = load
    return result


def _last_error(stderr: str) -> str:
    ''' The most telling line of a traceback. '''
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[\w.]+(Error|Exception|Exit)\b", line):
            return line[:200]
    return lines[-1][:200] if lines else ""


def measure_import(reps: int) -> dict[str, Any]:
    ''' ``import bokehsync`` on top of ``import bokeh.document`` (and ``bokeh.client`` likewise),
    with bytecode caches as an installed package has them: without, the figure is the time to
    compile the source (some machines set ``PYTHONDONTWRITEBYTECODE``), which grows with docstrings. '''
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-c", "import bokeh.document, bokeh.client, bokehsync"], check=True, timeout=60,
                   env=env)  # writes the caches
    cumulative: dict[str, list[float]] = {"bokehsync": [], "bokeh.client": []}
    wall: dict[str, list[float]] = {"base": [], "bokehsync": [], "bokeh.client": []}
    for _ in range(reps):
        for name in ("bokehsync", "bokeh.client"):
            done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import bokeh.document; import {name}"],
                                  capture_output=True, text=True, timeout=60, env=env)
            for line in done.stderr.splitlines():
                parts = [p.strip() for p in line.split("|")]
                if len(parts) == 3 and parts[2] == name:
                    cumulative[name].append(int(parts[1]) / 1e6)
        for key, code in (("base", "import bokeh.document"), ("bokehsync", "import bokeh.document, bokehsync"),
                          ("bokeh.client", "import bokeh.document, bokeh.client")):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env=env)
            wall[key].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in wall.items()}
    cum = {k: statistics.median(v) if v else None for k, v in cumulative.items()}
    return {
        "bokehsync_importtime": cum["bokehsync"],
        "bokeh.client_importtime": cum["bokeh.client"],
        "wall_base": med["base"],
        "wall_extra_bokehsync": med["bokehsync"] - med["base"],
        "wall_extra_bokeh.client": med["bokeh.client"] - med["base"],
        "reps": reps,
    }


# Reporting -------------------------------------------------------------------

def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v * 1e3:.3f} ms" if v < 0.01 else f"{v * 1e3:.1f} ms" if v < 1 else f"{v:.2f} s"


def _mb(v: float | None) -> str:
    return "-" if v is None else f"{v / 2**20:.0f} MB"


def _x(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}x" if v < 0.1 else f"{v:.2f}x"


def _med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _extra_rss(results: list[dict[str, Any]]) -> float | None:
    return _med([r["rss_peak"] - r["rss_base"] for r in results if r.get("rss_base") and r.get("rss_peak")])


def _status(job: Job) -> str:
    ''' "yes" / "NO" / "n/a" for verification, or why the runs did not finish. '''
    ok = job.ok()
    fails = sorted({r["fails"] for r in job.results if "fails" in r})
    errors = sorted({r["error"] for r in job.results if "error" in r})
    if not ok:
        if fails:
            return "fails: " + fails[0]
        return errors[0] if errors else "-"
    verified = {r.get("verified") for r in ok}
    ver = "n/a" if verified == {None} else "yes" if verified == {True} else "NO"
    notes = sorted({r.get("note", "") for r in ok} - {""})
    tail = "; ".join([*notes[:1], *(f"fails: {f}" for f in fails), *errors])
    return ver + ("  " + tail if tail else "")


def print_case_table(jobs: list[Job]) -> list[str]:
    ''' Print (and return) the per-job lines. '''
    head = (f"{'case/variant/client':40} {'ok':>5} {'median':>10} {'min':>10} {'max':>10} {'CPU':>9} "
            f"{'peak RSS':>9} {'+RSS':>8} {'srv CPU':>8} {'load':>5}  verified / note")
    lines = [head, "-" * len(head)]
    for job in jobs:
        if not job.results:
            continue
        ok = job.ok()
        times = [r["time"] for r in ok]
        peaks = [r["rss_peak"] for r in ok or job.results if r.get("rss_peak")]
        cpu = [r["server_cpu"] for r in ok if r.get("server_cpu") is not None]
        client_cpu = _med([r["cpu"] for r in ok if r.get("cpu") is not None])
        load = _med([r["load"] for r in job.results if r.get("load") is not None])
        if not ok:  # time and memory until the failure
            times = [r["time"] for r in job.results if r.get("time") is not None]
        lines.append(
            f"{job.key:40} {len(ok):>2}/{len(job.results):<2} {_ms(_med(times)):>10} "
            f"{_ms(min(times) if times else None):>10} {_ms(max(times) if times else None):>10} "
            f"{_ms(client_cpu):>9} {_mb(_med(peaks)):>9} {_mb(_extra_rss(ok or job.results)):>8} "
            f"{(f'{statistics.median(cpu):.2f} s' if cpu else '-'):>8} "
            f"{('-' if load is None else f'{load:.1f}'):>5}  {_status(job)}")
    for line in lines:
        print(line)
    return lines


def _find(jobs: list[Job], key: str) -> Job | None:
    return next((j for j in jobs if j.key == key), None)


def _ratio(jobs: list[Job], a: str, b: str, name: str = "time", base: bool = False) -> float | None:
    ja, jb = _find(jobs, a), _find(jobs, b)
    if ja is None or jb is None:
        return None
    if base:
        ma, mb = _extra_rss(ja.ok()), _extra_rss(jb.ok())
    else:
        ma, mb = ja.median(name), jb.median(name)
    return None if ma is None or mb is None or mb == 0 else ma / mb


def _verified(job: Job | None) -> bool:
    return job is not None and bool(job.ok()) and all(r.get("verified") for r in job.ok())


def _floor_of(jobs: list[Job], job: Job, client: str = "floor") -> Job | None:
    ''' The floor of ``job``'s case: the ``floor`` client's job of the same case
    and label (the same variant where the floor has variants), or with
    ``client="raw"`` the raw websocket client's (its best variant).
    '''
    found = [j for j in jobs if j.case == job.case and j.label == job.label and j.client == client and j.ok()]
    if client == "raw":
        # patch_burst: pipelined (acknowledged, overlapped), else merged.
        best = sorted((j for j in found if j.variant in ("", "quickack", "pipelined", "merged")),
                      key=lambda j: j.variant == "merged")
    else:
        best = [j for j in found if j.variant == job.variant]
    return (best or found or [None])[0]


def _bokeh_of(jobs: list[Job], job: Job) -> Job | None:
    ''' bokeh.client's job of the same case, label and variant, or its
    reference variant where it cannot run that one.
    '''
    same = _find(jobs, job.key.replace("/bokehsync", "/bokeh"))
    if same is not None and same.ok():
        return same
    return next((j for j in jobs if j.client == "bokeh" and j.case == job.case and j.label == job.label
                 and j.ok()), None)


def server_floor(jobs: list[Job], job: Job) -> float | None:
    ''' The least server CPU time seen for ``job``'s work: the smallest median
    ``srv CPU`` of the case's bokehsync and raw jobs (same case and label).
    A client that waits for the server's acknowledgement cannot finish sooner:
    one Bokeh server applies a session's changes on one thread. None where the
    server's work is not the client's to wait for (the floor has none).
    '''
    medians = [j.median("server_cpu") for j in jobs if j.case == job.case and j.label == job.label
               and j.client in ("bokehsync", "raw") and j.ok()]
    found = [m for m in medians if m is not None]
    return min(found) if found else None


def print_floor_table(jobs: list[Job]) -> list[str]:
    ''' Each bokehsync job beside its floors and bokeh.client, with the ratios (medians of time). '''
    head = (f"{'case/variant':24} {'floor':>9} {'raw':>18} {'bokehsync':>10} {'x floor':>8} {'x raw':>7} "
            f"{'CPU x floor':>11} {'srv floor':>9} {'x max':>6}   {'bokeh.client':>20} {'x floor':>8} "
            f"{'bokehsync/bokeh':>15}")
    lines = [head, "-" * len(head)]
    for job in jobs:
        if job.client != "bokehsync" or not job.ok():
            continue
        floor, raw, ref = _floor_of(jobs, job), _floor_of(jobs, job, "raw"), _bokeh_of(jobs, job)
        mine = job.median()
        f = floor.median() if floor else None
        srv = server_floor(jobs, job) if floor else None
        top = max(f, srv) if f and srv else None
        r = raw.median() if raw else None
        b = ref.median() if ref else None
        rname = f"{raw.variant + ' ' if raw and raw.variant else ''}{_ms(r)}" if raw else "-"
        c, fc = job.median("cpu"), floor.median("cpu") if floor else None
        bname = f"{ref.variant + ' ' if ref and ref.variant else ''}{_ms(b)}" if ref else "-"
        lines.append(f"{job.key.rsplit('/', 1)[0]:24} {_ms(f):>9} {rname:>18} {_ms(mine):>10} "
                     f"{_x(mine / f if mine and f else None):>8} {_x(mine / r if mine and r else None):>7} "
                     f"{_x(c / fc if c and fc else None):>11} {_ms(srv):>9} "
                     f"{_x(mine / top if mine and top else None):>6}   "
                     f"{bname:>20} {_x(b / f if b and f else None):>8} "
                     f"{_x(mine / b if mine and b else None):>15}")
    for line in lines:
        print(line)
    return lines


def print_baseline_table(jobs: list[Job]) -> list[str]:
    ''' Each bokehsync job beside its ``bokehsync@REV`` twin (``--baseline``): medians of wall and CPU
    time, and this tree's over the baseline's (above 1: this tree is slower). '''
    head = (f"{'case/variant':24} {'baseline':>10} {'this tree':>10} {'time ratio':>10} {'min ratio':>10} "
            f"{'CPU ratio':>10}  runs")
    lines = [head, "-" * len(head)]
    for twin in jobs:
        if not twin.client.startswith("bokehsync@"):
            continue
        mine = _find(jobs, twin.key.rsplit("/", 1)[0] + "/bokehsync")
        if mine is None:
            continue
        a, b = mine.median(), twin.median()
        ca, cb = mine.median("cpu"), twin.median("cpu")
        ma = min((r["time"] for r in mine.ok()), default=None)
        mb = min((r["time"] for r in twin.ok()), default=None)
        lines.append(f"{twin.key.rsplit('/', 1)[0]:24} {_ms(b):>10} {_ms(a):>10} "
                     f"{_x(a / b if a and b else None):>10} {_x(ma / mb if ma and mb else None):>10} "
                     f"{_x(ca / cb if ca and cb else None):>10}  {len(mine.ok())}/{len(twin.ok())}")
    for line in lines:
        print(line)
    return lines


def _cpu_pair(job: Job | None) -> str:
    if job is None:
        return "-"
    c, srv = job.median("cpu"), job.median("server_cpu")
    return f"{'-' if c is None else f'{c:.2f}'}/{'-' if srv is None or job.client == 'floor' else f'{srv:.2f}'}"


def print_writers_table(jobs: list[Job]) -> list[str]:
    ''' The many-writers case: wall time and total rows/s by number of writers. '''
    lines: list[str] = []
    rows: dict[tuple[str, str], dict[int, Job]] = {}
    for job in jobs:
        if job.case == "writers" and job.results:
            rows.setdefault((job.variant, job.client), {})[job.params["procs"]] = job
    if not rows:
        return lines
    head = f"{'writers':8}" + "".join(f"{f'{v} {c}':>26}" for v, c in sorted(rows))
    lines += ["many writers: wall time until every row is on the server, total rows/s", head, "-" * len(head)]
    for procs in WRITERS:
        if not any(procs in by_procs for by_procs in rows.values()):
            continue
        cells = []
        for key in sorted(rows):
            cell = rows[key].get(procs)
            t = cell.median() if cell else None
            rate = cell.median("rows_per_s") if cell else None
            cells.append(f"{(_ms(t) + ', ' + f'{rate:,.0f}') if t and rate else (_status(cell) if cell else '-'):>26}")
        lines.append(f"{procs:<8}" + "".join(cells))
    ran = [procs for procs in WRITERS if any(procs in by_procs for by_procs in rows.values())]
    lines.append("CPU seconds (all writers together / the server), medians: "
                 + "; ".join(f"{procs}: " + ", ".join(
                     f"{v} {c} {_cpu_pair(rows[(v, c)].get(procs))}" for v, c in sorted(rows)
                     if rows[(v, c)].get(procs) is not None) for procs in ran))
    conv = []
    for procs in WRITERS:
        shared = rows.get(("shared", "bokehsync"), {}).get(procs)
        c = shared.median("converged") if shared else None
        if c is not None:
            conv.append(f"{procs}: {_ms(c)}")
    if conv:
        lines.append("shared bokehsync, until every writer's document holds every row: " + ", ".join(conv))
    for key in sorted(rows):
        one, eight = rows[key].get(1), rows[key].get(8)
        r1 = one.median("rows_per_s") if one else None
        r8 = eight.median("rows_per_s") if eight else None
        if r1 and r8:
            lines.append(f"rows/s 8 writers / 1 writer, {key[0]} {key[1]}: {r8 / r1:.2f}x")
    for line in lines:
        print(line)
    return lines


#: The result of a line of the targets table that is a measurement, not a target.
INFO = "info"


def targets(jobs: list[Job], imp: dict[str, Any] | None) -> list[tuple[str, str, bool | str | None]]:
    ''' (target, measured, MET?) for the targets of issues 16, 13 and 4; MET? is
    :data:`INFO` for a line that only informs, None for a target not run.
    '''
    out: list[tuple[str, str, bool | str | None]] = []

    def get(key: str) -> Job | None:
        job = _find(jobs, key)
        return job if job is not None and job.results else None

    def vs_floor(key: str, limit: float, name: str) -> None:
        job = get(key)
        floor = _floor_of(jobs, job) if job else None
        if job and floor and job.median() and floor.median():
            r = job.median() / floor.median()  # type: ignore[operator]
            out.append((name, f"{r:.2f}x ({_ms(job.median())} / {_ms(floor.median())})",
                        r <= limit and _verified(job)))
    vs_floor("patch_burst/each/bokehsync", 1.25, "#16 patch_burst <= 1.25x floor")
    # What a client that waits for the OK takes with no overhead of its own:
    # the raw client sending a PATCH-DOC every _client.PIPELINE_CHUNK changes
    # without waiting (informative, not a target).
    job, floor, pipe = get("patch_burst/each/bokehsync"), get("patch_burst/-/floor"), get("patch_burst/pipelined/raw")
    if floor and pipe and floor.median() and pipe.median() and _verified(pipe):
        r = pipe.median() / floor.median()  # type: ignore[operator]
        out.append(("#16 patch_burst: raw pipelined / floor", f"{r:.2f}x ({_ms(pipe.median())} / "
                    f"{_ms(floor.median())})", INFO))
        if job and job.median():
            r = job.median() / pipe.median()  # type: ignore[operator]
            out.append(("#16 patch_burst: bokehsync / raw pipelined", f"{r:.2f}x", INFO))
    vs_floor("stream[numpy]/each/bokehsync", 1.15, "#16 stream[numpy] <= 1.15x floor")
    r = _ratio(jobs, "connect_pull/-/bokehsync", "connect_pull/-/bokeh")
    if r is not None:
        out.append(("#16 connect_pull <= 0.1x bokeh.client", f"{r:.3f}x", r <= 0.1))
    one, eight = get("writers[1]/shared/bokehsync"), get("writers[8]/shared/bokehsync")
    if one and eight and one.median("rows_per_s") and eight.median("rows_per_s"):
        r = eight.median("rows_per_s") / one.median("rows_per_s")  # type: ignore[operator]
        out.append(("#16 writers shared: 8 writers >= 0.6x rows/s of 1", f"{r:.2f}x",
                    r >= 0.6 and _verified(eight) and _verified(one)))
    split, single = get("push_limit/default/bokehsync"), get("push_limit/1gib/bokehsync")
    if split and single:
        if not split.ok():
            out.append(("#13 push 200 MB to a default server", _status(split)[:44], False))
        elif single.median():
            r = split.median() / single.median()  # type: ignore[operator]
            out.append(("#13 split push <= 1.5x time of one message", f"{r:.2f}x", r <= 1.5 and _verified(split)))
            a, b = _extra_rss(split.ok()), _extra_rss(single.ok())
            if a is not None and b is not None:
                out.append(("#13 split push +RSS within 64 MiB of one message", f"{_mb(a)} vs {_mb(b)}",
                            a - b <= 64 * 2**20))
    bs = get("rtt/-/bokehsync")
    raw = get("rtt/quickack/raw")
    if bs and bs.median() is not None:
        out.append(("#4 rtt <= 1 ms", _ms(bs.median()), bs.median() <= 1e-3))  # type: ignore[operator]
        if raw and raw.median():
            r = bs.median() / raw.median()  # type: ignore[operator]
            out.append(("#4 rtt <= 1.5x raw websocket (QUICKACK)", f"{r:.2f}x ({_ms(raw.median())} raw)", r <= 1.5))
    big = "push_big[5e6]"
    r = _ratio(jobs, f"{big}/-/bokehsync", f"{big}/-/bokeh")
    if r is not None:
        out.append(("#4 push_big 5e6 time <= 0.5x bokeh.client", f"{r:.2f}x", r <= 0.5))
    r = _ratio(jobs, f"{big}/-/bokehsync", f"{big}/-/bokeh", "rss_peak")
    if r is not None:
        rb = _ratio(jobs, f"{big}/-/bokehsync", f"{big}/-/bokeh", base=True)
        out.append(("#4 push_big 5e6 peak RSS <= 0.5x bokeh.client", f"{r:.2f}x (above baseline: {rb:.2f}x)"
                    if rb is not None else f"{r:.2f}x", r <= 0.5))
    job = get("patch_callback/each/bokehsync")
    if job:
        applied = [r.get("applied") for r in job.ok()]
        out.append(("#4 patch_callback: all server updates applied", f"{applied} of {job.params['n']}",
                    _verified(job)))
    job = get("receive/sleep/bokehsync")
    if job:
        applied = [r.get("applied") for r in job.ok()]
        out.append(("#4 receive: every update applied (~60 in 3 s)", f"{applied}", _verified(job)))
    for method, limit in (("spawn", 1.10), ("fork", 1.0)):
        r = _ratio(jobs, f"workers/{method}/bokehsync", f"workers/{method}/bokeh")
        if r is not None:
            ok = r <= limit and _verified(get(f"workers/{method}/bokehsync"))
            out.append((f"#4 workers {method} <= {limit:.2f}x bokeh.client", f"{r:.2f}x", ok))
    if imp is not None and imp.get("bokehsync_importtime") is not None:
        v = imp["bokehsync_importtime"]
        wall = imp["wall_extra_bokehsync"] * 1e3
        out.append(("#4 import bokehsync < 50 ms extra", f"{v * 1e3:.1f} ms (wall diff {wall:.0f} ms)", v < 0.05))
    return out


def machine() -> dict[str, Any]:
    ''' What the numbers were measured on. '''
    import bokeh
    import numpy
    import tornado
    import websocket
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "platform": platform.platform(), "bokeh": bokeh.__version__, "tornado": tornado.version,
            "websocket-client": websocket.__version__, "numpy": numpy.__version__,
            "loadavg": os.getloadavg()}


def select(jobs: list[Job], cases: list[str] | None, clients: list[str] | None,
        matches: list[str] | None) -> list[Job]:
    ''' The jobs picked by ``--case``, ``--client`` and ``--match`` (all must hold). '''
    return [j for j in jobs if (not cases or j.case in cases) and (not clients or j.client in clients)
            and (not matches or any(m in j.key for m in matches))]


def main(argv: list[str] | None = None) -> int:
    ''' Run the suite; print the tables; optionally write JSON. '''
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", action="append", choices=CASE_NAMES, help="run only this case (repeatable)")
    parser.add_argument("--client", action="append", choices=CLIENT_NAMES, help="run only this client (repeatable)")
    parser.add_argument("--match", action="append", metavar="TEXT",
                        help="run only jobs whose key contains TEXT, e.g. 'writers[8]' (repeatable)")
    parser.add_argument("--json", type=Path, help="write all results here")
    parser.add_argument("--quick", action="store_true", help="one repetition, fewer sizes (about 3 min)")
    parser.add_argument("--reps", type=int, help="repetitions per job (default 3, or 2 for the slow "
                        "reference runs; quick 1)")
    parser.add_argument("--baseline", metavar="REV", help="also run every bokehsync job with bokehsync as of git "
                        "revision REV (client bokehsync@REV), and print the ratios")
    args = parser.parse_args(argv)
    jobs = select(plan(args.quick, args.reps), args.case, args.client, args.match)
    baseline_dir = tempfile.TemporaryDirectory(prefix="bokehsync-baseline-") if args.baseline else None
    baseline = extract_baseline(args.baseline, Path(baseline_dir.name)) if baseline_dir else None
    if args.baseline:
        jobs = with_baseline(jobs, args.baseline)
    run_import = "import" in (args.case or CASE_NAMES) and not args.client and not args.match
    info = machine()
    print(f"machine: {info['nproc']} x {info['cpu']}, Python {info['python']}, bokeh {info['bokeh']}, "
          f"tornado {info['tornado']}, websocket-client {info['websocket-client']}, numpy {info['numpy']}")
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in info['loadavg'])}")
    started = time.perf_counter()
    imp = None
    log_dir = Path(tempfile.gettempdir())
    servers = {
        "main": LocalServer({f"/{name}": f"benchmarks.apps:{name}" for name in APPS},
                            server_kwargs={"websocket_max_message_size": SERVER_MAX_MESSAGE}, pythonpath=[str(ROOT)]),
        # bokeh's defaults: a 20 MiB websocket message limit (issue 13).
        "default": LocalServer({"/empty": "benchmarks.apps:empty"}, pythonpath=[str(ROOT)]),
    }
    logs: list[Path] = []
    try:
        procs: dict[str, psutil.Process] = {}
        bases: dict[str, str] = {}
        for name in sorted({j.server for j in jobs if j.client != "floor"} or ({"main"} if jobs else set())):
            log_path = log_dir / f"bokehsync-bench-server-{name}-{os.getpid()}.log"
            _start_quietly(servers[name], log_path)
            logs.append(log_path)
            assert servers[name].proc is not None
            procs[name] = psutil.Process(servers[name].proc.pid)  # type: ignore[union-attr]
            bases[name] = servers[name].url("").rstrip("/")
        for rep in range(max((j.reps for j in jobs), default=0)):
            order = jobs if rep % 2 == 0 else _reversed_within_case(jobs)
            for job in order:
                if rep >= job.reps:
                    continue
                server = job.server if job.server in procs else "main"
                result = run_job(job, bases[server], procs[server], baseline)
                job.results.append(result)
                status = result.get("error") or (f"fails: {result['fails'][:80]}" if "fails" in result else "") \
                    or f"{_ms(result['time'])}"
                print(f"  [{time.perf_counter() - started:6.1f} s] rep {rep + 1} {job.key}: {status} "
                      f"(load {result.get('load', 0):.1f})", flush=True)
        if run_import:
            imp = measure_import(3 if args.quick else 7)
    finally:
        for local in servers.values():
            local.stop()
        if baseline_dir is not None:
            baseline_dir.cleanup()
    for log_path in logs:
        if log_path.exists():
            print(f"(server log: {log_path})")
    total = time.perf_counter() - started
    print()
    lines = print_case_table(jobs)
    if imp is not None:
        line = (f"import: bokehsync {imp['bokehsync_importtime'] * 1e3:.1f} ms (importtime, cumulative, after "
                f"bokeh.document), bokeh.client {imp['bokeh.client_importtime'] * 1e3:.1f} ms; wall extra over "
                f"`import bokeh.document` ({imp['wall_base']:.2f} s): bokehsync "
                f"{imp['wall_extra_bokehsync'] * 1e3:.0f} ms, "
                f"bokeh.client {imp['wall_extra_bokeh.client'] * 1e3:.0f} ms")
        print(line)
        lines.append(line)
    print()
    print("bokehsync beside its floors and bokeh.client (medians of wall time): floor = the same document work "
          "with no client (_floor.py), raw = a raw websocket client (_raw.py); CPU x floor = the client process's "
          "CPU time over the floor's, where both were measured; srv floor = the least server CPU seen for the "
          "case's changes (bokehsync or raw), x max = bokehsync over the larger of floor and srv floor (no client "
          "that waits for the server's OK can finish before the server has applied its changes)")
    print_floor_table(jobs)
    if args.baseline:
        print()
        print(f"this tree against bokehsync@{args.baseline} (medians; a ratio above 1: this tree is slower)")
        print_baseline_table(jobs)
    print()
    print_writers_table(jobs)
    table = targets(jobs, imp)
    print()
    print(f"{'target':56} {'measured':44} result")
    for name, value, met in table:
        verdict = met if met == INFO else "MET" if met else "MISSED" if met is False else "not run"
        print(f"{name:56} {value:44} {verdict}")
    print(f"\nload average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"total {total:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({
            "machine": info, "quick": args.quick, "total_s": total, "loadavg_end": os.getloadavg(),
            "jobs": [{"key": j.key, "case": j.case, "variant": j.variant, "client": j.client, "server": j.server,
                      "params": j.params, "results": j.results} for j in jobs],
            "import": imp, "targets": [{"target": t, "measured": v, "met": m} for t, v, m in table],
        }, indent=1, default=str))
    return 0


def _start_quietly(server: LocalServer, log_path: Path) -> None:
    ''' Start the server with its standard error (bokeh's warnings, e.g.
    "Failed sending message as connection was closed" after a client
    crashed) going to ``log_path`` instead of our terminal.
    '''
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(log_path, "wb") as log:
            os.dup2(log.fileno(), 2)
            server.start()
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _reversed_within_case(jobs: list[Job]) -> list[Job]:
    ''' The same cases in the same order, each case's clients reversed. '''
    out: list[Job] = []
    i = 0
    while i < len(jobs):
        j = i
        while j < len(jobs) and jobs[j].case == jobs[i].case and jobs[j].label == jobs[i].label:
            j += 1
        out.extend(reversed(jobs[i:j]))
        i = j
    return out


if __name__ == "__main__":
    sys.exit(main())
