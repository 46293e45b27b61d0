''' A real Bokeh server in a child process on 127.0.0.1, on a free port.

Used by the ``demo`` command and by the test suite. The child binds port 0,
prints one JSON line ``{"port": N}`` and serves until its standard input
closes, so it never outlives the process that started it.

Run as ``python -m bokehsync._localserver --app /name=module:function ...``;
``function(doc)`` builds each new session's document, as a Bokeh app does.
'''
from __future__ import annotations

import argparse
import importlib
import json
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

__all__ = (
    'LocalServer',
)


class LocalServer:
    ''' Start and stop a Bokeh server process on 127.0.0.1.

    Args:
        apps (dict[str, str]) : URL path -> ``"module:function"`` app builder
        server_kwargs (dict, optional) : extra keyword arguments for
            ``bokeh.server.server.Server`` (JSON-serializable); with
            ``ssl_certfile`` the server speaks TLS (``https``/``wss`` URLs),
            and ``auth_module`` (a file path) becomes
            ``auth_provider=AuthModule(path)``
        env (dict, optional) : extra environment variables for the server
        pythonpath (list[str], optional) : prepended to the child's ``PYTHONPATH``
        address (str, optional) : where to listen (default: ``127.0.0.1``)
    '''

    def __init__(self, apps: dict[str, str], server_kwargs: dict[str, Any] | None = None,
            env: dict[str, str] | None = None, pythonpath: Sequence[str] = (),
            address: str = "127.0.0.1") -> None:
        self.apps = dict(apps)
        self.server_kwargs = dict(server_kwargs or {})
        self.env = dict(env or {})
        self.pythonpath = list(pythonpath)
        self.address = address
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0, port: int = 0) -> LocalServer:
        ''' Start the server and wait until it listens.

        Args:
            timeout (float, optional) : seconds to wait for it
            port (int, optional) : the port, 0 for a free one

        Returns:
            LocalServer : self

        Raises:
            RuntimeError: the server did not come up in time
        '''
        cmd = [sys.executable, "-m", "bokehsync._localserver", "--address", self.address,
               "--port", str(port), "--kwargs", json.dumps(self.server_kwargs)]
        for path, spec in self.apps.items():
            cmd += ["--app", f"{path}={spec}"]
        env = dict(os.environ, **self.env)
        paths = [*self.pythonpath, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
        if paths:
            env["PYTHONPATH"] = os.pathsep.join(paths)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        assert self.proc.stdout is not None
        line = _readline(self.proc.stdout, timeout)
        if not line:
            self.stop()
            raise RuntimeError(f"the Bokeh server did not start within {timeout} s: {' '.join(cmd)}")
        self.port = json.loads(line)["port"]
        return self

    @property
    def tls(self) -> bool:
        ''' Whether the server speaks TLS (``ssl_certfile`` in ``server_kwargs``). '''
        return bool(self.server_kwargs.get("ssl_certfile"))

    def url(self, path: str = "/") -> str:
        ''' The http(s) URL of an app path on this server. '''
        return f"{'https' if self.tls else 'http'}://{self.address}:{self.port}{path}"

    def ws_url(self, path: str = "/") -> str:
        ''' The websocket URL of an app path on this server. '''
        return f"{'wss' if self.tls else 'ws'}://{self.address}:{self.port}{path.rstrip('/')}/ws"

    def stop(self, timeout: float = 10.0) -> None:
        ''' Stop the server (close its stdin, then terminate, then kill). '''
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        finally:
            if proc.stdout:
                proc.stdout.close()

    def kill(self) -> None:
        ''' Kill the server at once (SIGKILL), as a crash would. '''
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait(10)
            for f in (proc.stdin, proc.stdout):
                if f:
                    f.close()

    def __enter__(self) -> LocalServer:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _readline(stream: IO[bytes], timeout: float) -> bytes:
    ''' One line from a pipe, or b"" if none came within ``timeout``. '''
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    line = b""
    try:
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                return b""
            chunk = os.read(stream.fileno(), 1)
            if not chunk:
                return b""
            line += chunk
    finally:
        sel.close()
    return line


def _load(spec: str) -> Any:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv: Sequence[str] | None = None) -> None:
    ''' Serve the given apps until standard input closes. '''
    parser = argparse.ArgumentParser(prog="python -m bokehsync._localserver")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--app", action="append", default=[], help="/path=module:function")
    parser.add_argument("--kwargs", default="{}", help="JSON keyword arguments for Server")
    args = parser.parse_args(argv)

    # Serve as ``bokeh serve`` does: importing bokehsync (this module's
    # package) switched this process to UUID model ids (``_ids``); a real
    # server counts simple ids, whose collisions with clients' are the case
    # the clients must survive.
    from bokeh.settings import settings
    settings.simple_ids.unset_value()

    from bokeh.application import Application
    from bokeh.application.handlers.function import FunctionHandler
    from bokeh.server.server import Server
    from tornado.ioloop import IOLoop

    apps = {}
    for item in args.app:
        path, _, spec = item.partition("=")
        apps[path] = Application(FunctionHandler(_load(spec)))
    kwargs = json.loads(args.kwargs)
    if "auth_module" in kwargs:
        from bokeh.server.auth_provider import AuthModule
        kwargs["auth_provider"] = AuthModule(kwargs.pop("auth_module"))
    port = args.port
    # Reserve a free port first, without listening on it: with SO_REUSEADDR
    # the server's own bind to it then succeeds, and nothing else can take it
    # in between. Knowing the port lets browsers on 127.0.0.1 be allowed.
    probe = socket.socket(socket.AF_INET6 if ":" in args.address else socket.AF_INET)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    probe.bind((args.address, port))
    port = probe.getsockname()[1]
    kwargs.setdefault("allow_websocket_origin", [f"{args.address}:{port}", f"localhost:{port}"])
    loop = IOLoop.current()
    try:
        server = Server(apps, io_loop=loop, address=args.address, port=port, **kwargs)
        server.start()
    finally:
        probe.close()
    sys.stdout.write(json.dumps({"port": server.port}) + "\n")
    sys.stdout.flush()

    def watch_stdin() -> None:
        # The parent closes our stdin (or dies): stop serving.
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            loop.add_callback(loop.stop)
    threading.Thread(target=watch_stdin, name="localserver-stdin", daemon=True).start()
    loop.start()
    server.stop()


if __name__ == "__main__":
    main()
