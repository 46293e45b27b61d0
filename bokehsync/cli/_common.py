''' What every command shares: exit codes, the one-line error, option types.

One rule for every command: a usage error (a bad option value, a missing
argument, a URL that cannot name a Bokeh application) exits with
:data:`EXIT_USAGE` (2), before anything connects. The other codes say what
failed afterwards (see :mod:`bokehsync.cli`).
'''
from __future__ import annotations

import argparse
import html
import re

__all__ = (
    'EXIT_FAILED',
    'EXIT_FILE',
    'EXIT_INTERRUPTED',
    'EXIT_OK',
    'EXIT_TIMEOUT',
    'EXIT_UNREACHABLE',
    'EXIT_USAGE',
    'CommandError',
    'add_connection_options',
    'classify',
    'plain',
    'positive_int',
    'seconds',
)

EXIT_OK = 0
EXIT_UNREACHABLE = 1
EXIT_USAGE = 2
EXIT_FILE = 3
EXIT_FAILED = 4
EXIT_TIMEOUT = 5
EXIT_INTERRUPTED = 130

#: The epilog of ``bokehsync --help``: the exit codes in one line.
EXIT_CODES_HELP = ("Exit codes: 0 ok, 1 server unreachable or session refused, 2 usage error (bad "
                   "arguments or URL; every command), 3 file problem, 4 server or connection failure, "
                   "5 timeout, 130 interrupted.")


class CommandError(Exception):
    ''' A failure to report as one line, with its exit code.

    Args:
        message (str) : the line, without the ``bokehsync COMMAND: error:`` prefix
        code (int) : the exit code
    '''

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def classify(e: BaseException) -> tuple[int, str]:
    ''' The exit code and the one-line message for an exception.

    Args:
        e (BaseException) : what a command raised

    Returns:
        tuple[int, str] : the exit code, the message (one line, no HTML)
    '''
    from ..exceptions import ConnectionFailed, ReplyTimeout
    message = plain(str(e)) or type(e).__name__
    if isinstance(e, CommandError):
        return e.code, message
    if isinstance(e, ConnectionFailed):
        return EXIT_UNREACHABLE, message
    if isinstance(e, (ReplyTimeout, TimeoutError)):
        return EXIT_TIMEOUT, message
    if isinstance(e, OSError) and getattr(e, "filename", None):
        return EXIT_FILE, message
    return EXIT_FAILED, f"{type(e).__name__}: {message}"


_HTML = re.compile(r"<\s*(?:!doctype|html|head|body|title)\b.*", re.IGNORECASE | re.DOTALL)
_TITLE = re.compile(r"<\s*title[^>]*>(.*?)<\s*/\s*title\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def plain(message: str) -> str:
    ''' A message on one line, with an HTML page in it (an error body a server
    or proxy sent) replaced by that page's title, or its text.

    Args:
        message (str) : any text

    Returns:
        str : one line of plain text
    '''
    found = _HTML.search(message)
    if found:
        page = found.group(0)
        title = _TITLE.search(page)
        text = title.group(1) if title else _TAG.sub(" ", page)
        text = " ".join(html.unescape(text).split())[:200]
        before = message[:found.start()].rstrip().rstrip(":").rstrip()
        message = f"{before}: {text}" if before and text else (before or text)
    return " ".join(message.split())


def seconds(text: str) -> float:
    ''' An option type: a number of seconds, more than 0. '''
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
    return value


def positive_int(text: str) -> int:
    ''' An option type: an integer, at least 1. '''
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def add_connection_options(sub: argparse.ArgumentParser) -> None:
    ''' ``--timeout`` and ``-q`` of the commands that move a document (pull, push). '''
    sub.add_argument("--timeout", type=seconds, default=30.0, help="seconds for each step (default: 30)")
    sub.add_argument("-q", "--quiet", action="store_true", help="no progress indicator")
