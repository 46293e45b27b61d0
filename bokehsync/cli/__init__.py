''' The ``bokehsync`` command line (also ``python -m bokehsync``).

.. code-block:: none

    bokehsync info URL                      is the server there? version, latency
    bokehsync pull URL [-o FILE]            a session document as JSON
    bokehsync push FILE URL [--show]        push a JSON document or an app script
    bokehsync demo [--workers N]            a local server and a live document

``URL`` is the URL of a Bokeh application, as a browser opens it: ``http(s)``
(assumed when there is no scheme, as in ``localhost:5006/app``), or the app's
``ws(s)://.../ws``. A ``?bokeh-session-id=...`` in it names the session (as
``--session-id`` does).

Exit codes, one rule for every command:

====  =====================================================================
0     success (the demo also exits 0 when stopped with Ctrl-C or SIGTERM)
1     the server could not be reached, or refused the session, or has no
      application at the path (``info``: any failure of the check)
2     usage error: bad arguments or option values, or a URL that cannot
      name a Bokeh application; nothing was attempted
3     an input or output file could not be read, written or understood
4     the server or the connection failed during the operation
5     the server did not answer within ``--timeout``
130   interrupted (Ctrl-C)
====  =====================================================================

Errors are one line on standard error, ``bokehsync <command>: error: ...``
(``-v`` adds the traceback and debug logging).

One module per command (:mod:`~bokehsync.cli.info`, :mod:`~bokehsync.cli.pull`,
:mod:`~bokehsync.cli.push`, :mod:`~bokehsync.cli.demo`), each with
``add_parser(commands)`` and ``run(args) -> int``; what they share is in
``_common`` (exit codes, errors, option types), ``_urls`` (reading a URL),
``_apps`` (which applications a server has), ``_progress`` and ``_browser``.
'''
from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence

from . import demo, info, pull, push
from ._common import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_FILE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CommandError,
    classify,
)
from ._progress import Progress
from ._urls import normalize_url, session_url, split_url

__all__ = (
    'EXIT_FAILED',
    'EXIT_FILE',
    'EXIT_INTERRUPTED',
    'EXIT_OK',
    'EXIT_TIMEOUT',
    'EXIT_UNREACHABLE',
    'EXIT_USAGE',
    'CommandError',
    'Progress',
    'build_parser',
    'main',
    'normalize_url',
    'session_url',
    'split_url',
)

#: The commands, in the order ``--help`` lists them.
COMMANDS = (info, pull, push, demo)


def build_parser() -> argparse.ArgumentParser:
    ''' The argument parser of every command.

    Returns:
        argparse.ArgumentParser : ``args.func(args)`` runs the chosen command
    '''
    from .. import __version__

    parser = argparse.ArgumentParser(prog="bokehsync", description="A synchronous client for the Bokeh server.",
                                     epilog=EXIT_CODES_HELP)
    parser.add_argument("--version", action="version", version=f"bokehsync {__version__}")
    parser.set_defaults(command=None, verbose=False)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for command in COMMANDS:
        sub = command.add_parser(commands)
        sub.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    ''' Run the command line.

    Usage errors exit 2 for every command, whether argparse finds them (a
    missing argument, a bad option value) or the command does (a URL that
    cannot name a Bokeh application): this function returns the code rather
    than raising ``SystemExit``, also for ``--help`` and ``--version`` (0).

    Args:
        argv (list[str], optional) : the arguments (default: ``sys.argv[1:]``)

    Returns:
        int : the exit code (see the module docs)
    '''
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse printed the usage error (2), or --help / --version (0)
        return EXIT_OK if e.code is None else e.code if isinstance(e.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(threadName)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or EXIT_OK)
    except KeyboardInterrupt:
        print(f"bokehsync {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        code, message = classify(e)
        if args.verbose:
            traceback.print_exc()
        print(f"bokehsync {args.command}: error: {message}", file=sys.stderr)
        return code
