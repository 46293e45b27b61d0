''' A Flask view that pulls a Bokeh session per request and embeds it.

The ``server_session`` pattern of ``bokeh.embed``: for each page view, open a
new session of the Bokeh app, adjust its document for this request (here the
title and the greeting), then hand the session id to the browser, which
connects to the Bokeh server itself.

With ``bokeh.client`` this view breaks under threaded WSGI servers and inside
gevent/asyncio workers; bokehsync needs no event loop, so it runs in any
request thread::

    bokehsync demo --port 5006 &
    BOKEH_APP_URL=http://localhost:5006/demo flask --app examples/flask_app.py run --port 8000

The Bokeh server must accept the page's origin (``--allow-websocket-origin
localhost:8000`` for ``bokeh serve``).
'''
from __future__ import annotations

import html
import os

from bokeh.embed import server_session
from flask import Flask, request

from bokehsync import pull_session

DEFAULT_URL = "http://localhost:5006/demo"

PAGE = '''<!doctype html>
<html>
  <head><meta charset="utf-8"><title>{title}</title></head>
  <body>
    <h1>{title}</h1>
    {script}
  </body>
</html>
'''


def create_app(bokeh_url: str | None = None) -> Flask:
    ''' The Flask app; ``bokeh_url`` defaults to ``$BOKEH_APP_URL``. '''
    app = Flask(__name__)
    app.config["BOKEH_APP_URL"] = bokeh_url or os.environ.get("BOKEH_APP_URL", DEFAULT_URL)

    @app.route("/")
    def index() -> str:
        url = app.config["BOKEH_APP_URL"]
        user = request.args.get("user", "visitor")
        with pull_session(url=url, timeout=10) as session:
            doc = session.document
            with session.lock:
                doc.title = f"Hello, {user}"
                for root in doc.roots:
                    if hasattr(root, "text"):  # e.g. the demo app's Div
                        root.text = f"<p>This session was prepared for {html.escape(user)}.</p>"
            # Leaving the block flushes: the changes are on the server before
            # the browser connects to the session.
            script = server_session(session_id=session.id, url=url)
        return PAGE.format(title=html.escape(f"Hello, {user}"), script=script)

    return app


app = create_app()

if __name__ == "__main__":
    app.run(port=8000)
