''' Benchmarks of bokehsync against bokeh.client, in the same run (issue 4).

Usage::

    python benchmarks/run.py [--case NAME ...] [--json OUT] [--quick] [--reps N]

One real Bokeh server is started in its own process (``LocalServer``) with
the apps of ``benchmarks/apps.py``. Every measured client run is a fresh
process (``python -m benchmarks._client``) with a hard timeout, so peak RSS
is the client's own and a client that hangs or crashes is reported as such
instead of stopping the suite. Clients alternate within each repetition
(the order is reversed every other repetition). ``raw`` rows are the
physical floor: a raw websocket speaking the protocol by hand (``_raw``).

Cases: rtt, connect_pull, push_big, patch_burst, stream, patch_callback,
receive, workers, limit (only the raw floors of the other cases), import.
'''
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
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

#: The server's websocket message limit: above the largest push (5e6 rows).
SERVER_MAX_MESSAGE = 1 << 30

CASE_NAMES = ("rtt", "connect_pull", "push_big", "patch_burst", "stream", "patch_callback", "receive",
              "workers", "limit", "import")


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
    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        ''' ``case[label]/variant/client``, unique in a run. '''
        return f"{self.case}{self.label}/{self.variant or '-'}/{self.client}"

    def ok(self) -> list[dict[str, Any]]:
        ''' The runs that finished. '''
        return [r for r in self.results if "error" not in r]

    def median(self, name: str = "time") -> float | None:
        ''' Median of ``name`` over the finished runs. '''
        values = [r[name] for r in self.ok() if r.get(name) is not None]
        return statistics.median(values) if values else None


def plan(quick: bool, reps: int | None) -> list[Job]:
    ''' Every job of a run. '''
    r = reps or (1 if quick else 3)
    few = 1 if quick else 2
    jobs: list[Job] = []

    def add(case: str, variant: str, client: str, params: dict[str, Any], *, n: int = r,
            timeout: float = 60, label: str = "") -> None:
        jobs.append(Job(case, variant, client, params, n, timeout, label))

    # The ~40 ms delayed-ACK stalls of bokeh.client and of the raw client
    # without QUICKACK are steady: a median of 50 is enough and keeps it short.
    for client, variant, n in (("bokeh", "", 20 if quick else 50), ("bokehsync", "", 200), ("raw", "quickack", 200),
                               ("raw", "noquickack", 20 if quick else 50)):
        add("rtt", variant, client, {"n": n})
    for client in ("bokeh", "bokehsync", "raw"):
        add("connect_pull", "", client, {"n": 10 if quick else 20})
    for rows in ((100_000, 5_000_000) if quick else (100_000, 1_000_000, 5_000_000)):
        for client in ("bokeh", "bokehsync", "raw"):
            add("push_big", "", client, {"rows": rows}, label=f"[{rows:.0e}]".replace("+0", ""), timeout=120,
                n=r if rows < 5_000_000 or quick else 2 if client == "raw" else r)
    burst = {"n": 10_000}
    add("patch_burst", "each", "bokeh", burst, n=1, timeout=30)
    if not quick:
        add("patch_burst", "rt100", "bokeh", burst, n=1, timeout=60)
    add("patch_burst", "each", "bokehsync", burst)
    add("patch_burst", "batch", "bokehsync", burst)
    add("patch_burst", "each", "raw", burst, n=1)
    add("patch_burst", "merged", "raw", burst, n=few)
    for kind in ("list",) if quick else ("list", "numpy"):
        params = {"n": 1000, "rows": 1000, "kind": kind}
        label = f"[{kind}]"
        add("stream", "each", "bokeh", params, n=1, timeout=30, label=label)
        if not quick:
            add("stream", "rt100", "bokeh", params, n=1, timeout=90, label=label)
        add("stream", "each", "bokehsync", params, n=few, timeout=90, label=label)
        if kind == "list":
            # numpy + batch() takes > 30 s (see docs/performance.rst): run by hand.
            add("stream", "batch", "bokehsync", params, n=few, timeout=90, label=label)
        add("stream", "each", "raw", params, n=1, timeout=90, label=label)
    echo = {"n": 10_000}
    add("patch_callback", "roundtrip", "bokeh", echo, n=1, timeout=10)
    if not quick:
        add("patch_callback", "loop100", "bokeh", echo, n=1, timeout=90)
    add("patch_callback", "each", "bokehsync", echo, n=few, timeout=90)
    for client, variant in (("bokeh", "sleep"), ("bokeh", "loop"), ("bokehsync", "sleep")):
        add("receive", variant, client, {"seconds": 3}, n=few, timeout=30)
    for method in ("spawn", "fork"):
        for client in ("bokeh", "bokehsync"):
            add("workers", method, client, {"procs": 8, "rows": 100_000}, n=few if quick else r, timeout=150)
    return jobs


def run_job(job: Job, base: str, server: psutil.Process) -> dict[str, Any]:
    ''' One run of ``job`` in a fresh process, killed after ``job.timeout``. '''
    cmd = [sys.executable, "-m", "benchmarks._client", job.case, job.client, job.variant, base,
           json.dumps(job.params)]
    cpu0 = sum(server.cpu_times()[:2])
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=job.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
        last = _last_error(err)
        return {"error": f"HANG: killed after {job.timeout:.0f} s" + (f" ({last})" if last else ""),
                "wall": time.perf_counter() - t0}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    wall = time.perf_counter() - t0
    server_cpu = sum(server.cpu_times()[:2]) - cpu0
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"FAILED (exit {proc.returncode}): {_last_error(err)}", "wall": wall}
    result = json.loads(lines[-1])
    result["wall"] = wall
    result["server_cpu"] = server_cpu
    return result


def _last_error(stderr: str) -> str:
    ''' The most telling line of a traceback. '''
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[\w.]+(Error|Exception|Exit)\b", line):
            return line[:200]
    return lines[-1][:200] if lines else ""


def measure_import(reps: int) -> dict[str, Any]:
    ''' ``import bokehsync`` on top of ``import bokeh.document`` (and ``bokeh.client`` likewise). '''
    env = dict(os.environ, PYTHONPATH=str(ROOT))
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


def print_case_table(jobs: list[Job]) -> list[str]:
    ''' Print (and return) the per-job lines. '''
    head = (f"{'case/variant/client':44} {'ok':>5} {'median':>10} {'min':>10} {'max':>10} "
            f"{'peak RSS':>9} {'+RSS':>8} {'srv CPU':>9}  verified / note")
    lines = [head, "-" * len(head)]
    for job in jobs:
        if not job.results:
            continue
        ok = job.ok()
        times = [r["time"] for r in ok]
        peaks = [r["rss_peak"] for r in ok if r.get("rss_peak")]
        extra = [r["rss_peak"] - r["rss_base"] for r in ok if r.get("rss_base")]
        cpu = [r["server_cpu"] for r in ok if r.get("server_cpu") is not None]
        verified = {r.get("verified") for r in ok}
        if not ok:
            ver = job.results[0]["error"]
        elif verified == {None}:
            ver = "n/a"
        else:
            ver = "yes" if verified == {True} else "NO"
        notes = sorted({r.get("note", "") for r in ok} - {""})
        errors = sorted({r["error"] for r in job.results if "error" in r})
        tail = "; ".join([*notes[:1], *(errors if ok else [])])
        lines.append(
            f"{job.key:44} {len(ok):>2}/{len(job.results):<2} {_ms(statistics.median(times) if times else None):>10} "
            f"{_ms(min(times) if times else None):>10} {_ms(max(times) if times else None):>10} "
            f"{_mb(statistics.median(peaks) if peaks else None):>9} "
            f"{_mb(statistics.median(extra) if extra else None):>8} "
            f"{(f'{statistics.median(cpu):.2f} s' if cpu else '-'):>9}  {ver}{'  ' + tail if tail else ''}")
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
        va = [r["rss_peak"] - r["rss_base"] for r in ja.ok() if r.get("rss_base")]
        vb = [r["rss_peak"] - r["rss_base"] for r in jb.ok() if r.get("rss_base")]
        ma, mb = (statistics.median(va) if va else None), (statistics.median(vb) if vb else None)
    else:
        ma, mb = ja.median(name), jb.median(name)
    return None if ma is None or mb is None or mb == 0 else ma / mb


def _verified(job: Job | None) -> bool:
    return job is not None and bool(job.ok()) and all(r.get("verified") for r in job.ok())


def targets(jobs: list[Job], imp: dict[str, Any] | None) -> list[tuple[str, str, bool | None]]:
    ''' (target, measured, MET?) for every target of issue 4; None when not run. '''
    out: list[tuple[str, str, bool | None]] = []

    def get(key: str) -> Job | None:
        job = _find(jobs, key)
        return job if job is not None and job.results else None

    bs = get("rtt/-/bokehsync")
    raw = get("rtt/quickack/raw")
    if bs and bs.median() is not None:
        out.append(("rtt <= 1 ms", _ms(bs.median()), bs.median() <= 1e-3))  # type: ignore[operator]
        if raw and raw.median():
            r = bs.median() / raw.median()  # type: ignore[operator]
            out.append(("rtt <= 1.5x raw websocket (QUICKACK)", f"{r:.2f}x ({_ms(raw.median())} raw)", r <= 1.5))
    r = _ratio(jobs, "connect_pull/-/bokeh", "connect_pull/-/bokehsync")
    if r is not None:
        out.append(("connect_pull >= 10x faster", f"{r:.1f}x faster", r >= 10))
    for key, name in (("patch_burst/each/bokehsync", "patch_burst <= 0.5 s, verified"),
                      ("stream[list]/each/bokehsync", "stream (lists) <= 0.5 s, verified"),
                      ("stream[numpy]/each/bokehsync", "stream (numpy) <= 0.5 s, verified")):
        job = get(key)
        if job and job.median() is not None:
            out.append((name, f"{_ms(job.median())}, verified={_verified(job)}",
                        job.median() <= 0.5 and _verified(job)))  # type: ignore[operator]
    big = "push_big[5e6]"
    r = _ratio(jobs, f"{big}/-/bokehsync", f"{big}/-/bokeh")
    if r is not None:
        out.append(("push_big 5e6 time <= 0.5x", f"{r:.2f}x", r <= 0.5))
    r = _ratio(jobs, f"{big}/-/bokehsync", f"{big}/-/bokeh", "rss_peak")
    if r is not None:
        rb = _ratio(jobs, f"{big}/-/bokehsync", f"{big}/-/bokeh", base=True)
        out.append(("push_big 5e6 peak RSS <= 0.5x", f"{r:.2f}x (above baseline: {rb:.2f}x)"
                    if rb is not None else f"{r:.2f}x", r <= 0.5))
    job = get("patch_callback/each/bokehsync")
    if job:
        applied = [r.get("applied") for r in job.ok()]
        out.append(("patch_callback: all server updates applied", f"{applied} of {job.params['n']}", _verified(job)))
    job = get("receive/sleep/bokehsync")
    if job:
        applied = [r.get("applied") for r in job.ok()]
        out.append(("receive: every update applied (~60 in 3 s)", f"{applied}", _verified(job)))
    for method, limit in (("spawn", 1.10), ("fork", 1.0)):
        r = _ratio(jobs, f"workers/{method}/bokehsync", f"workers/{method}/bokeh")
        if r is not None:
            ok = r <= limit and _verified(get(f"workers/{method}/bokehsync"))
            out.append((f"workers {method} <= {limit:.2f}x" + (" (no slower, 10% noise)" if method == "spawn" else ""),
                        f"{r:.2f}x", ok))
    if imp is not None and imp.get("bokehsync_importtime") is not None:
        v = imp["bokehsync_importtime"]
        wall = imp["wall_extra_bokehsync"] * 1e3
        out.append(("import bokehsync < 50 ms extra", f"{v * 1e3:.1f} ms (wall diff {wall:.0f} ms)", v < 0.05))
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


def main(argv: list[str] | None = None) -> int:
    ''' Run the suite; print the tables; optionally write JSON. '''
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", action="append", choices=CASE_NAMES, help="run only this case (repeatable)")
    parser.add_argument("--json", type=Path, help="write all results here")
    parser.add_argument("--quick", action="store_true", help="one repetition, fewer sizes (< 2 min)")
    parser.add_argument("--reps", type=int, help="repetitions per job (default 3, quick 1)")
    args = parser.parse_args(argv)
    selected = set(args.case or CASE_NAMES)
    jobs = [j for j in plan(args.quick, args.reps)
            if j.case in selected or ("limit" in selected and j.client == "raw")]
    info = machine()
    print(f"machine: {info['nproc']} x {info['cpu']}, Python {info['python']}, bokeh {info['bokeh']}, "
          f"tornado {info['tornado']}, websocket-client {info['websocket-client']}, load {info['loadavg']}")
    started = time.perf_counter()
    imp = None
    log_path = Path(tempfile.gettempdir()) / f"bokehsync-bench-server-{os.getpid()}.log"
    server = LocalServer({f"/{name}": f"benchmarks.apps:{name}" for name in APPS},
                         server_kwargs={"websocket_max_message_size": SERVER_MAX_MESSAGE}, pythonpath=[str(ROOT)])
    try:
        if jobs:
            _start_quietly(server, log_path)
            assert server.proc is not None
            proc = psutil.Process(server.proc.pid)
            base = server.url("").rstrip("/")
            for rep in range(max(j.reps for j in jobs)):
                order = jobs if rep % 2 == 0 else _reversed_within_case(jobs)
                for job in order:
                    if rep >= job.reps:
                        continue
                    result = run_job(job, base, proc)
                    job.results.append(result)
                    status = result.get("error") or f"{_ms(result['time'])}"
                    print(f"  [{time.perf_counter() - started:6.1f} s] rep {rep + 1} {job.key}: {status}", flush=True)
        if "import" in selected:
            imp = measure_import(3 if args.quick else 7)
    finally:
        server.stop()
    if log_path.exists():
        print(f"(server log: {log_path})")
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
    print("ratios bokehsync / bokeh.client (time; peak RSS):")
    ratios = []
    for a, b in _ratio_pairs(jobs):
        rt = _ratio(jobs, a, b)
        rm = _ratio(jobs, a, b, "rss_peak")
        if rt is not None:
            ratios.append(f"  {a:44} / {b.split('/', 1)[1]:14} time {rt:6.3f}x   peak RSS "
                          f"{'-' if rm is None else f'{rm:.2f}x'}")
    for line in ratios:
        print(line)
    table = targets(jobs, imp)
    print()
    print(f"{'target':56} {'measured':44} result")
    for name, value, met in table:
        print(f"{name:56} {value:44} {'MET' if met else 'MISSED' if met is False else 'not run'}")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({
            "machine": info, "quick": args.quick,
            "jobs": [{"key": j.key, "case": j.case, "variant": j.variant, "client": j.client,
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


def _ratio_pairs(jobs: list[Job]) -> list[tuple[str, str]]:
    ''' (bokehsync job, bokeh.client job) of the same case and variant, or its reference variant. '''
    pairs = []
    for job in jobs:
        if job.client != "bokehsync":
            continue
        same = _find(jobs, job.key.replace("/bokehsync", "/bokeh"))
        if same is not None and same.ok():
            pairs.append((job.key, same.key))
            continue
        ref = next((j for j in jobs if j.client == "bokeh" and j.case == job.case and j.label == job.label
                    and j.ok()), None)
        if ref is not None:
            pairs.append((job.key, ref.key))
    return pairs


if __name__ == "__main__":
    sys.exit(main())
