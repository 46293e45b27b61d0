''' ``bokehsync pull URL [-o FILE]``: a session's document as JSON. '''
from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from ._apps import explain_missing_app
from ._common import EXIT_FILE, EXIT_OK, CommandError, add_connection_options
from ._progress import progress_kwargs
from ._urls import app_arguments, split_url

if TYPE_CHECKING:
    from ..session import ClientSession

__all__ = (
    'add_parser',
    'pull',
    'run',
)


def add_parser(commands: Any) -> argparse.ArgumentParser:
    ''' Add ``pull`` to the subcommands of the ``bokehsync`` parser. '''
    pull: argparse.ArgumentParser = commands.add_parser(
        "pull", help="print a session document as JSON",
        description="Pull the document of a session and write it as JSON (Document.to_json). Without "
                    "a session id, a new session of the app is created and its initial document pulled.")
    pull.set_defaults(command="pull", func=run)
    pull.add_argument("url", metavar="URL", help="URL of a Bokeh application (http:// if no scheme)")
    pull.add_argument("--session-id", help="the session (default: the URL's bokeh-session-id, or a new one)")
    pull.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    pull.add_argument("--indent", type=int, default=None, help="indent the JSON by this many spaces")
    add_connection_options(pull)
    return pull


def pull(url: str, session_id: str | None, timeout: float, quiet: bool = False) -> ClientSession:
    ''' Open a session and pull its document, with a progress indicator.

    Args:
        url (str) : the http(s) app URL (its query holds the app arguments)
        session_id (str, optional) : the session, None for a new one
        timeout (float) : seconds for each step
        quiet (bool, optional) : no progress indicator

    Returns:
        ClientSession : open, its document pulled; the caller closes it

    Raises:
        CommandError: no application at the path (exit code 1)
        BokehSyncError: the connection or the pull failed
    '''
    from bokeh.client.util import websocket_url_for_server_url
    from bokeh.core.types import ID

    from ..session import ClientSession

    base, arguments = app_arguments(url)
    with progress_kwargs("pulling", ClientSession.pull, quiet) as extra, \
            explain_missing_app(url, session_id, timeout):
        session = ClientSession(session_id=ID(session_id) if session_id else None,
                                websocket_url=websocket_url_for_server_url(base),
                                arguments=arguments, timeout=timeout)
        try:
            session.pull(**extra)
        except BaseException:
            session.close(flush=False)
            raise
    return session


def run(args: argparse.Namespace) -> int:
    ''' ``bokehsync pull URL``: the session document as JSON, on stdout or in a file. '''
    url, session_id = split_url(args.url, args.session_id)
    with pull(url, session_id, args.timeout, args.quiet) as session:
        with session.lock:
            doc_json = session.document.to_json(deferred=False)
    text = json.dumps(doc_json, indent=args.indent, allow_nan=False)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        except OSError as e:
            raise CommandError(f"cannot write {args.output}: {e.strerror or e}", EXIT_FILE)
    else:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    return EXIT_OK
