''' ``bokehsync push FILE URL [--show] [--wait]``: push a JSON document or a Bokeh app. '''
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._apps import explain_missing_app
from ._browser import show_or_say
from ._common import EXIT_FILE, EXIT_OK, CommandError, add_connection_options
from ._progress import progress_kwargs
from ._urls import session_url, split_url

if TYPE_CHECKING:
    from bokeh.document import Document

    from ..session import ClientSession

__all__ = (
    'add_parser',
    'load_document',
    'push',
    'run',
)

log = logging.getLogger(__name__)


def add_parser(commands: Any) -> argparse.ArgumentParser:
    ''' Add ``push`` to the subcommands of the ``bokehsync`` parser. '''
    push: argparse.ArgumentParser = commands.add_parser(
        "push", help="push a document from a JSON file or an app script",
        description="Push a document to a session and print the session's URL. FILE is a JSON "
                    "document (as 'bokehsync pull' writes it), or a Bokeh app: a .py script or "
                    ".ipynb notebook that builds curdoc(), or a directory with a main.py. The server "
                    "discards a session nobody is connected to after a while (15 s by default): "
                    "open the URL soon, or keep the session open with --wait.")
    push.set_defaults(command="push", func=run)
    push.add_argument("file", metavar="FILE", help=".json document, .py script, .ipynb notebook or app directory")
    push.add_argument("url", metavar="URL", help="URL of a Bokeh application (http:// if no scheme)")
    push.add_argument("--session-id", help="the session (default: the URL's bokeh-session-id, or a new one)")
    push.add_argument("--show", action="store_true",
                      help="open the session in a web browser (says so on stderr if none opened)")
    push.add_argument("--wait", action="store_true",
                      help="keep the session open (and its periodic callbacks running) until Ctrl-C")
    push.add_argument("--args", nargs=argparse.REMAINDER, default=[], metavar="...",
                      help="command line arguments for the app script (must come last)")
    add_connection_options(push)
    return push


def load_document(path: str, argv: Sequence[str] = ()) -> Document:
    ''' A document from a JSON file, a Bokeh app script or notebook, or an app directory.

    Args:
        path (str) : ``.json`` file, ``.py`` script, ``.ipynb`` notebook or directory
        argv (list[str], optional) : ``sys.argv[1:]`` for the app script

    Returns:
        Document

    Raises:
        CommandError: the file is missing, not a document, or the script failed (exit code 3)
    '''
    from bokeh.document import Document

    if not os.path.exists(path):
        raise CommandError(f"no such file or directory: {path}", EXIT_FILE)
    if path.endswith(".json"):
        try:
            with open(path, encoding="utf-8") as f:
                return Document.from_json(json.load(f))
        except OSError as e:
            raise CommandError(f"cannot read {path}: {e.strerror or e}", EXIT_FILE)
        except Exception as e:
            raise CommandError(f"{path} is not a Bokeh document in JSON: {type(e).__name__}: {e}", EXIT_FILE)

    from bokeh.command.util import build_single_handler_application
    try:
        app = build_single_handler_application(path, list(argv))
    except Exception as e:  # bokeh raises ValueError/RuntimeError with a sentence
        raise CommandError(" ".join(str(e).split()), EXIT_FILE)
    doc = Document()
    for handler in app.handlers:
        handler.modify_document(doc)
        if handler.failed:
            log.debug("%s", handler.error_detail)
            raise CommandError(f"{path} failed: {handler.error}", EXIT_FILE)
    return doc


def push(doc: Document, url: str, session_id: str | None, timeout: float, quiet: bool = False) -> ClientSession:
    ''' Open a session and push ``doc`` into it, with a progress indicator.

    Args:
        doc (Document) : what to push
        url (str) : the http(s) app URL
        session_id (str, optional) : the session, None for a new one
        timeout (float) : seconds for each step
        quiet (bool, optional) : no progress indicator

    Returns:
        ClientSession : open, the document pushed; the caller closes it

    Raises:
        CommandError: no application at the path (exit code 1)
        BokehSyncError: the connection or the push failed
    '''
    from bokeh.client.util import websocket_url_for_server_url
    from bokeh.core.types import ID

    from ..session import ClientSession

    with progress_kwargs("pushing", ClientSession.push, quiet) as extra, \
            explain_missing_app(url, session_id, timeout):
        session = ClientSession(session_id=ID(session_id) if session_id else None,
                                websocket_url=websocket_url_for_server_url(url), timeout=timeout)
        try:
            session.push(doc, **extra)
        except BaseException:
            session.close(flush=False)
            raise
    return session


def run(args: argparse.Namespace) -> int:
    ''' ``bokehsync push FILE URL``: push a document, print the session URL. '''
    url, session_id = split_url(args.url, args.session_id)
    doc = load_document(args.file, args.args)
    with push(doc, url, session_id, args.timeout, args.quiet) as session:
        shown = session_url(url, session.id)
        print(shown, flush=True)
        if args.show:
            show_or_say(shown, "push")
        if args.wait:
            print("Session open; Ctrl-C to close it.", file=sys.stderr, flush=True)
            try:
                session._loop_until_closed()
            except KeyboardInterrupt:
                pass
    return EXIT_OK
