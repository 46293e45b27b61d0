''' Profile bokehsync's per-change paths with py-spy and cProfile, and say whose time it is.

Usage::

    python benchmarks/profile_paths.py [SCENARIO ...] [--tool pyspy|cprofile|both] [--out DIR] [--rate HZ]

Scenarios (default: all), each one client run of ``benchmarks._client``
against a real server started here, as ``run.py`` runs it:

* ``patch_burst``: 10,000 ``Range1d.start`` sets, then flush;
* ``stream``: 1,000 ``source.stream()`` of 1,000 numpy rows, then flush;
* ``connect_pull``: 200 x (``pull_session`` of the empty app, close);
* ``writers``: 8 forked writers on one shared session (200 x 50 numpy rows
  each), every process profiled.

py-spy (``py-spy record --format raw --threads --subprocesses``) samples
every thread of every process while it runs on the CPU (threads blocked in
``select``/``recv`` are idle and not sampled). Each sample is charged to the
innermost frame that belongs to bokehsync, bokeh, websocket-client or the
benchmark itself; the standard library, numpy and C code below it count for
that frame (so the ``select`` and ``send`` under ``Transport`` are
bokehsync's, the ``np.append`` under ``ColumnDataSource.stream`` bokeh's).
py-spy also samples some threads while they block (``select``, a
``Condition`` wait): samples whose innermost frame is such a wait are counted
apart. Percentages are of the other samples: the CPU time of the profiled
processes, excluding setup (imports, the setup pull, the verification).

cProfile (``_profiling.py``) profiles every thread of every process; it is
reported for call counts (calls per change), and its own times are inflated
by its overhead on small functions.
'''
from __future__ import annotations

import argparse
import collections
import json
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bokehsync._localserver import LocalServer  # noqa: E402

SCENARIOS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "patch_burst": ("patch_burst", "each", {"n": 10_000}),
    "stream": ("stream", "each", {"n": 1000, "rows": 1000, "kind": "numpy"}),
    "connect_pull": ("connect_pull", "", {"n": 200}),
    "writers": ("writers", "shared", {"procs": 8, "streams": 200, "rows": 50}),
}

#: Samples whose stack holds one of these functions are not the measured part:
#: imports, the verification pull with the other client, and (except for
#: connect_pull) the setup pull of the session.
SETUP = {"_find_and_load", "_verify", "_shutdown", "_close_all_at_exit"}
SETUP_PULL = {"pull_session", "pull_doc", "_open", "_close_handshake", "close"}

OWNERS = (("bokehsync", re.compile(r"(^|/)bokehsync/")), ("benchmarks", re.compile(r"(^|/)benchmarks/")),
          ("websocket-client", re.compile(r"(^|/)websocket/")), ("bokeh", re.compile(r"(^|/)bokeh/")))

#: Leaf functions that block (py-spy samples some threads while they wait):
#: such samples are counted as waiting, apart from the CPU time.
WAITING = {"Condition.wait", "Thread._wait_for_tstate_lock", "Event.wait", "Transport._wait", "sleep",
           "Lock.acquire", "Barrier.wait", "_wait_for_tstate_lock"}

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def owner(path: str) -> str | None:
    ''' Whose code a source file is, or None for the standard library, numpy and the like. '''
    for name, pattern in OWNERS:
        if pattern.search(path):
            return name
    return None


def _short(path: str) -> str:
    for name in ("bokehsync/", "benchmarks/", "websocket/", "bokeh/"):
        i = path.rfind(name)
        if i >= 0:
            return path[i:]
    return path


def analyse_pyspy(raws: list[Path], skip: set[str], top: int = 12) -> list[str]:
    ''' The report of py-spy raw (collapsed stacks) files, without the samples
    whose stack holds a function named in ``skip``.
    '''
    by_owner: collections.Counter[str] = collections.Counter()
    own_sites: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    inclusive: collections.Counter[str] = collections.Counter()
    by_thread: collections.Counter[str] = collections.Counter()
    processes: set[str] = set()
    waiting: collections.Counter[str] = collections.Counter()
    lines_of_ours: collections.Counter[str] = collections.Counter()
    total = skipped = 0
    lines = [line for raw in raws for line in raw.read_text(errors="replace").splitlines()]
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        parts = stack.split(";")
        frames = []
        thread = ""
        for part in parts:
            if part.startswith("process "):
                processes.add(part.split(":", 1)[0])
                continue
            if part.startswith("thread ("):
                thread = part.partition(": ")[2]
                continue
            m = _FRAME.match(part)
            if m:
                frames.append((m["func"], m["file"], m["line"] or "?"))
        if not frames or any(func.rsplit(".", 1)[-1] in skip for func, _, _ in frames):
            skipped += count  # interpreter start and exit (no Python frame), or setup
            continue
        role = _thread_role(thread, frames)
        if frames[-1][0] in WAITING:
            caller = next((f"{_short(p)}:{f}" for f, p, _ in reversed(frames) if owner(p)), frames[-1][0])
            waiting[f"{caller} -> {frames[-1][0]}  [{role}]"] += count
            continue
        total += count
        by_thread[role] += count
        site_owner, site = "other", "(no Python frame of ours)"
        for func, path, line_no in reversed(frames):
            who = owner(path)
            if who is not None:
                site_owner, site = who, f"{_short(path)}:{func}"
                if who == "bokehsync":
                    lines_of_ours[f"{_short(path)}:{line_no} {func.rsplit('.', 1)[-1]} -> {frames[-1][0]}"] += count
                break
        by_owner[site_owner] += count
        own_sites[site_owner][f"{site}  [{role}]"] += count
        seen = set()
        for func, path, _ in frames:
            if owner(path) == "bokehsync":
                key = f"{_short(path)}:{func}"
                if key not in seen:
                    seen.add(key)
                    inclusive[key] += count
    if not total:
        return ["no samples"]

    def pct(n: int) -> str:
        return f"{100 * n / total:5.1f} %"
    out = [f"{total} CPU samples in {len(processes)} process(es) ({skipped} of setup, imports and "
           f"verification left out; {sum(waiting.values())} blocked in a wait, listed last)",
           "by owner (innermost frame of ours): "
           + ", ".join(f"{k} {pct(v).strip()}" for k, v in by_owner.most_common()),
           "by thread: " + ", ".join(f"{k} {pct(v).strip()}" for k, v in by_thread.most_common()),
           "top bokehsync sites (self, with the stdlib/C calls they make):"]
    out += [f"  {pct(n)}  {site}" for site, n in own_sites["bokehsync"].most_common(top)]
    out.append("top bokehsync lines (self; -> the innermost function running there):")
    out += [f"  {pct(n)}  {site}" for site, n in lines_of_ours.most_common(top)]
    out.append("top bokehsync functions (inclusive: on the stack, bokeh's work they call included):")
    out += [f"  {pct(n)}  {site}" for site, n in inclusive.most_common(top)]
    out.append("top bokeh sites (self):")
    out += [f"  {pct(n)}  {site}" for site, n in own_sites["bokeh"].most_common(8)]
    if waiting:
        out.append("blocked (not CPU; in samples, relative to the CPU samples):")
        out += [f"  {pct(n)}  {site}" for site, n in waiting.most_common(5)]
    if own_sites["websocket-client"]:
        out.append("websocket-client sites (self):")
        out += [f"  {pct(n)}  {site}" for site, n in own_sites["websocket-client"].most_common(5)]
    return out


def _thread_role(thread: str, frames: list[tuple[str, str, str]]) -> str:
    ''' What a thread is, from its name or its stack. '''
    if thread.startswith("bokehsync-"):
        return thread.split("-")[1]
    names = {func.rsplit(".", 1)[-1] for func, _, _ in frames}
    if "_run_reader" in names:
        return "reader"
    if "_run_reconnect" in names:
        return "reconnect"
    if any(f == "_writer" or f == "_floor_writer" for f in names):
        return "writer"
    if "_feed" in names or "_handle_results" in names or "_handle_tasks" in names:
        return "multiprocessing"
    return "main"


def analyse_cprofile(directory: Path, top: int = 15) -> list[str]:
    ''' bokehsync's functions over all threads and processes: calls, self and cumulative time. '''
    files = sorted(str(p) for p in directory.glob("*.prof"))
    if not files:
        return ["no cProfile output"]
    stats = pstats.Stats(files[0])
    for f in files[1:]:
        stats.add(f)
    table = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in table.values())
    rows = []
    for (path, line, func), (_, ncalls, tt, ct, _) in table.items():
        if owner(path) == "bokehsync":
            rows.append((tt, ct, ncalls, f"{_short(path)}:{line}:{func}"))
    out = [f"cProfile: {len(files)} thread profile(s), {total:.2f} s of profiled time in all",
           f"  {'self':>7} {'cumul.':>7} {'calls':>9}  bokehsync function (by self time)"]
    for tt, ct, ncalls, name in sorted(rows, reverse=True)[:top]:
        out.append(f"  {100 * tt / total:6.1f}% {100 * ct / total:6.1f}% {ncalls:>9}  {name}")
    return out


def run(scenario: str, base: str, tool: str, out: Path, rate: int, repeat: int) -> list[str]:
    ''' Profile one scenario; return its report. '''
    case, variant, params = SCENARIOS[scenario]
    cmd = [sys.executable, "-m", "benchmarks._client", case, "bokehsync", variant, base, json.dumps(params)]
    report = [f"== {scenario}: {' '.join(cmd[2:])}"]
    env = dict(os.environ)
    if tool in ("pyspy", "both"):
        spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
        if spy is None:
            report.append("py-spy not installed (pip install py-spy)")
        else:
            raws = []
            for i in range(repeat):
                raw = out / f"{scenario}.{i}.pyspy.txt"
                raw.unlink(missing_ok=True)
                t0 = time.perf_counter()
                # Nine processes at 1000 Hz each leave py-spy seconds behind: sample them less often.
                hz = rate if scenario != "writers" else max(1, rate // 5)
                done = subprocess.run([spy, "record", "--format", "raw", "--threads", "--subprocesses", "--rate",
                                       str(hz), "--nonblocking", "-o", str(raw), "--", *cmd], cwd=ROOT, env=env,
                                      capture_output=True, text=True, timeout=600)
                report.append(f"py-spy run {i + 1}: {time.perf_counter() - t0:.1f} s, result "
                              f"{_last_json(done.stdout)}, load {os.getloadavg()[0]:.2f}")
                if raw.exists():
                    raws.append(raw)
                else:
                    report.append(f"py-spy failed: {done.stderr.strip()[-500:]}")
                if "{" not in done.stdout:
                    report.append(f"the run failed under py-spy: {done.stderr.strip()[-300:]}")
            if raws:
                report += analyse_pyspy(raws, SETUP if scenario == "connect_pull" else SETUP | SETUP_PULL)
    if tool in ("cprofile", "both"):
        directory = out / f"{scenario}.cprofile"
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        env["BENCH_CPROFILE_DIR"] = str(directory)
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        report.append(f"cProfile run: result {_last_json(done.stdout)}")
        report += analyse_cprofile(directory)
    return report


def _last_json(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        return "(no result)"
    result = json.loads(lines[-1])
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()
                     if k in ("time", "verified", "rows_per_s", "converged", "note"))


def main(argv: list[str] | None = None) -> int:
    ''' Start a server, profile the scenarios, print the reports. '''
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", nargs="*", help=f"any of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--tool", choices=("pyspy", "cprofile", "both"), default="both")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "bokehsync-profiles")
    parser.add_argument("--rate", type=int, default=1000, help="py-spy samples per second")
    parser.add_argument("--repeat", type=int, default=3, help="py-spy runs per scenario, pooled")
    args = parser.parse_args(argv)
    unknown = set(args.scenario) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}: choose from {', '.join(SCENARIOS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; output in {args.out}")
    server = LocalServer({"/empty": "benchmarks.apps:empty", "/range1d": "benchmarks.apps:range1d",
                          "/source": "benchmarks.apps:source"},
                         server_kwargs={"websocket_max_message_size": 1 << 30}, pythonpath=[str(ROOT)])
    from benchmarks.run import _start_quietly
    log = args.out / "server.log"
    _start_quietly(server, log)  # bokeh's warnings to a file, not between the reports
    with server:
        base = server.url("").rstrip("/")
        for scenario in args.scenario or list(SCENARIOS):
            for line in run(scenario, base, args.tool, args.out, args.rate, args.repeat):
                print(line, flush=True)
            print()
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
