''' Dask workers push documents to one Bokeh server, each through its own session.

Without ``--scheduler``, a ``distributed.LocalCluster`` of worker processes is
started here. With a real cluster, pass the scheduler's address, and a Bokeh
URL every worker machine can reach (not ``localhost``)::

    bokeh serve app.py --address 0.0.0.0 --port 5006 --allow-websocket-origin '*'
    python examples/dask_cluster.py http://bokeh-host:5006/app --scheduler tcp://scheduler:8786

Each task opens its own session inside the worker (sessions cannot be
pickled or shared between processes) and closes it before it returns, so the
change is on the server when the task's result arrives. Every worker needs
bokehsync installed.
'''
from __future__ import annotations

import argparse
import math
import os
import socket
from urllib.parse import urlsplit, urlunsplit

DEFAULT_URL = "http://localhost:5006/demo"


def make_report(url: str, session_id: str, index: int, rows: int = 100) -> dict[str, object]:
    ''' A Dask task: compute a curve, push it to ``session_id``, say where it ran. '''
    from bokeh.document import Document
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure

    from bokehsync import push_session

    xs = [i / 10 for i in range(rows)]
    source = ColumnDataSource(data={"x": xs, "y": [math.cos(x * (index + 1)) for x in xs]}, name="source")
    plot = figure(title=f"task {index} on {socket.gethostname()} pid {os.getpid()}", name="plot", height=300)
    plot.line("x", "y", source=source)
    doc = Document()
    doc.add_root(plot)
    with push_session(doc, session_id=session_id, url=url, timeout=30):
        pass  # close() flushes: the document is on the server when the task returns
    return {"session_id": session_id, "pid": os.getpid(), "host": socket.gethostname()}


def run(client: object, url: str, tasks: int = 4, prefix: str = "dask") -> dict[str, int]:
    ''' Submit ``tasks`` reports to a ``distributed.Client``; return {session id: rows on the server}. '''
    from bokehsync import pull_session

    futures = [client.submit(make_report, url, f"{prefix}-{i}", i, pure=False)  # type: ignore[attr-defined]
               for i in range(tasks)]
    results = client.gather(futures)  # type: ignore[attr-defined]
    found = {}
    for result in results:
        with pull_session(session_id=result["session_id"], url=url, timeout=30) as check:
            found[result["session_id"]] = len(check.document.get_model_by_name("source").data["x"])
    return found


def main(argv: list[str] | None = None) -> None:
    from distributed import Client, LocalCluster

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", nargs="?", default=DEFAULT_URL, help=f"Bokeh app URL (default: {DEFAULT_URL})")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler (default: a LocalCluster)")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    parser.add_argument("--tasks", type=int, default=4)
    args = parser.parse_args(argv)
    parts = urlsplit(args.url)
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))

    if args.scheduler:
        with Client(args.scheduler) as client:
            found = run(client, url, args.tasks)
    else:
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            found = run(client, url, args.tasks)
    for session_id, rows in found.items():
        print(f"{url}?bokeh-session-id={session_id}  {rows} rows")


if __name__ == "__main__":
    main()
