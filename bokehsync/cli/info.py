''' ``bokehsync info URL``: is the server there? Its version, the round-trip latency.

A health check for scripts: exit code 0 if the server answered, 1 if it did
not (unreachable, refused, no application at the path, timed out), 2 for a
usage error, as for every command.
'''
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback
from typing import Any

from ._apps import explain_missing_app
from ._common import EXIT_OK, EXIT_UNREACHABLE, classify, seconds
from ._urls import app_arguments, split_url

__all__ = (
    'add_parser',
    'run',
)

#: Round trips timed after connecting.
SAMPLES = 5


def add_parser(commands: Any) -> argparse.ArgumentParser:
    ''' Add ``info`` to the subcommands of the ``bokehsync`` parser. '''
    info: argparse.ArgumentParser = commands.add_parser(
        "info", help="check a server: version, round-trip latency",
        description="Connect to a Bokeh application, print the server version and the round-trip "
                    "latency. Exit code 0 if the server answered, 1 if not, 2 for a usage error.")
    info.set_defaults(command="info", func=run)
    info.add_argument("url", metavar="URL", help="URL of a Bokeh application (http:// if no scheme)")
    info.add_argument("--timeout", type=seconds, default=10.0, help="seconds to wait (default: 10)")
    info.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return info


def check(url: str, timeout: float) -> dict[str, Any]:
    ''' Connect to an app, time the connection and a few round trips, close.

    Args:
        url (str) : the http(s) app URL (maybe with app arguments in its query)
        timeout (float) : seconds for each step

    Returns:
        dict : ``url``, ``ok``, server and client versions, ``connect_ms``,
        ``roundtrip_ms`` (the median of :data:`SAMPLES`)

    Raises:
        CommandError: no application at the path (exit code 1)
        BokehSyncError: the server could not be reached, refused, or timed out
    '''
    from bokeh import __version__ as bokeh_version
    from bokeh.client.util import websocket_url_for_server_url

    from .. import __version__
    from ..session import ClientSession

    base, arguments = app_arguments(url)
    session = ClientSession(websocket_url=websocket_url_for_server_url(base), arguments=arguments,
                            timeout=timeout)
    try:
        t0 = time.perf_counter()
        with explain_missing_app(url, timeout=timeout):
            session.connect()
            session.check_connection_errors()
        connect_ms = 1000 * (time.perf_counter() - t0)
        version = session.request_server_info()["version_info"]
        samples = []
        for _ in range(SAMPLES):
            t0 = time.perf_counter()
            session.force_roundtrip()
            samples.append(1000 * (time.perf_counter() - t0))
    finally:
        session.close(flush=False)
    return {
        "url": url, "ok": True,
        "server_bokeh_version": version.get("bokeh"), "server_version": version.get("server"),
        "client_version": __version__, "client_bokeh_version": bokeh_version,
        "connect_ms": round(connect_ms, 2), "roundtrip_ms": round(statistics.median(samples), 2),
    }


def run(args: argparse.Namespace) -> int:
    ''' ``bokehsync info URL``: 0 if the server answered, 1 otherwise.

    Raises:
        CommandError: a usage error (exit code 2), before connecting
    '''
    url, _ = split_url(args.url)  # a usage error raises here: exit code 2, as for every command
    try:
        result = check(url, args.timeout)
    except Exception as e:
        _, message = classify(e)
        if args.verbose:
            traceback.print_exc()
        if args.json:
            print(json.dumps({"url": url, "ok": False, "error": message}))
        print(f"bokehsync info: error: {message}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.json:
        print(json.dumps(result))
    else:
        print(f"url:        {url}")
        print(f"server:     bokeh {result['server_bokeh_version']} (server {result['server_version']})")
        print(f"client:     bokehsync {result['client_version']}, bokeh {result['client_bokeh_version']}")
        print(f"connect:    {result['connect_ms']:.1f} ms")
        print(f"round trip: {result['roundtrip_ms']:.1f} ms (median of {SAMPLES})")
        print("status:     OK")
    return EXIT_OK
