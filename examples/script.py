''' A plain script: push a live plot, stream rows into it, check what arrived.

Run the demo server first (or any Bokeh server) and pass an app URL::

    bokehsync demo --port 5006 &
    python examples/script.py http://localhost:5006/demo

The same code with ``from bokeh.client import ...`` needs no other change;
with bokehsync every change is on the server when ``flush()`` returns.
'''
from __future__ import annotations

import argparse
import math
from urllib.parse import urlsplit, urlunsplit

from bokeh.document import Document
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

from bokehsync import pull_session, push_session

DEFAULT_URL = "http://localhost:5006/demo"


def app_url(url: str) -> str:
    ''' The app URL without a query (e.g. the ``?bokeh-session-id=`` the demo prints). '''
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", nargs="?", default=DEFAULT_URL, help=f"Bokeh app URL (default: {DEFAULT_URL})")
    parser.add_argument("--rows", type=int, default=200, help="rows to stream")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds for each blocking call")
    args = parser.parse_args(argv)
    url = app_url(args.url)

    doc = Document(title="bokehsync script example")
    source = ColumnDataSource(data={"x": [], "y": []}, name="source")
    plot = figure(title="a sine, streamed by a script", name="plot", height=300, sizing_mode="stretch_width")
    plot.line("x", "y", source=source)
    doc.add_root(plot)

    with push_session(doc, url=url, timeout=args.timeout) as session:
        print(f"Open {url}?bokeh-session-id={session.id}")
        for start in range(0, args.rows, 20):
            xs = [i / 10 for i in range(start, min(start + 20, args.rows))]
            # One PATCH-DOC for the block; session.lock keeps server updates out of it.
            with session.batch():
                source.stream({"x": xs, "y": [math.sin(x) for x in xs]})
        plot.title.text = f"a sine, {args.rows} rows streamed by a script"
        session.flush()  # every change so far is on the server now

        # Check from a second, fresh session, as any other client would see it.
        with pull_session(session_id=session.id, url=url, timeout=args.timeout) as check:
            rows = len(check.document.get_model_by_name("source").data["x"])
            title = check.document.get_model_by_name("plot").title.text
    print(f"server has {rows} rows; title: {title!r}")


if __name__ == "__main__":
    main()
