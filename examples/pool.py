''' Worker processes push documents to one Bokeh server, each through its own session.

Each task creates its session inside the worker process: a session (a socket
and a reader thread) cannot cross a process boundary. Works with any start
method (spawn, fork, forkserver) and with ``multiprocessing.Pool`` or
``concurrent.futures.ProcessPoolExecutor``::

    bokehsync demo --port 5006 &
    python examples/pool.py http://localhost:5006/demo --workers 4 --tasks 8

The server keeps a session nobody is connected to for 15 s by default
(``--unused-session-lifetime``): open the printed URLs soon.
'''
from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from urllib.parse import urlsplit, urlunsplit

DEFAULT_URL = "http://localhost:5006/demo"


def make_report(url: str, session_id: str, index: int, rows: int = 100) -> tuple[str, int]:
    ''' In a worker: compute a curve, push it as a document, return (session id, pid). '''
    from bokeh.document import Document
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure

    from bokehsync import push_session

    xs = [i / 10 for i in range(rows)]
    source = ColumnDataSource(data={"x": xs, "y": [math.sin(x + index) for x in xs]}, name="source")
    plot = figure(title=f"task {index} (pid {os.getpid()})", name="plot", height=300)
    plot.line("x", "y", source=source)
    doc = Document()
    doc.add_root(plot)
    with push_session(doc, session_id=session_id, url=url, timeout=30):
        pass  # pushed; close() flushes
    return session_id, os.getpid()


def run(url: str, workers: int = 2, tasks: int = 4, method: str = "pool", start: str = "spawn",
        prefix: str = "pool") -> dict[str, int]:
    ''' Run ``tasks`` reports on ``workers`` processes; return {session id: rows on the server}. '''
    from bokehsync import pull_session

    ctx = mp.get_context(start)
    jobs = [(url, f"{prefix}-{start}-{method}-{i}", i) for i in range(tasks)]
    if method == "pool":
        with ctx.Pool(workers) as pool:
            done = pool.starmap(make_report, jobs)
    else:
        with ProcessPoolExecutor(workers, mp_context=ctx) as executor:
            done = list(executor.map(make_report, *zip(*jobs, strict=True)))
    found = {}
    for session_id, _pid in done:  # check each arrived, from this process
        with pull_session(session_id=session_id, url=url, timeout=30) as check:
            found[session_id] = len(check.document.get_model_by_name("source").data["x"])
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", nargs="?", default=DEFAULT_URL, help=f"Bokeh app URL (default: {DEFAULT_URL})")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--method", choices=["pool", "executor"], default="pool")
    parser.add_argument("--start", choices=mp.get_all_start_methods(), default="spawn")
    args = parser.parse_args(argv)
    parts = urlsplit(args.url)
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    found = run(url, args.workers, args.tasks, args.method, args.start)
    for session_id, rows in found.items():
        print(f"{url}?bokeh-session-id={session_id}  {rows} rows")


if __name__ == "__main__":
    main()
