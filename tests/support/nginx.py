''' Run nginx on 127.0.0.1 as a reverse proxy in front of a Bokeh server,
with Bokeh's documented websocket configuration.

nginx runs in the foreground (``daemon off``, one process) from a config
written to a temporary directory; :meth:`Nginx.stop` ends it.
'''
from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import time
from typing import Any

#: The nginx binary, or None when nginx is not installed.
NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)

_CONFIG = """
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port}{ssl};
        server_name 127.0.0.1;
        {tls}
        location {prefix}/ {{
            proxy_pass http://127.0.0.1:{upstream};
{websocket}
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header Host $host:$server_port;
            proxy_buffering off;
        }}
    }}
}}
"""


_WEBSOCKET = """            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_http_version 1.1;"""


def _candidate_port() -> int:
    ''' A port for nginx to bind itself (nginx cannot bind port 0 and report it).

    Below the kernel's ephemeral range (``ip_local_port_range``), where the
    port-0 servers and outgoing connections of every test suite on this
    machine get their ports, so only another nginx test can want it; if so,
    nginx fails to bind, exits, and :meth:`Nginx.start` tries another. No port
    is probed and released (another process could take it in between).
    '''
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return random.randrange(max(1024, low - 12000), low)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


class Nginx:
    ''' nginx proxying ``prefix/`` on its port to ``upstream`` (a port on 127.0.0.1).

    Args:
        tmp (str) : a directory of its own for the config, logs and temp files
        upstream (int) : the Bokeh server's port
        prefix (str) : the URL prefix proxied (the Bokeh server's ``prefix``)
        certfile, keyfile (str, optional) : terminate TLS with these
        websocket (bool, optional) : include the websocket lines of the
            config (False: the common mistake of leaving them out)
    '''

    def __init__(self, tmp: str, upstream: int, prefix: str, certfile: str | None = None,
            keyfile: str | None = None, websocket: bool = True) -> None:
        self.tmp = tmp
        self.upstream = upstream
        self.prefix = "/" + prefix.strip("/")
        self.certfile = certfile
        self.keyfile = keyfile
        self.websocket = websocket
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, path: str = "/") -> str:
        ''' The http(s) URL of a path under the prefix, through nginx. '''
        return f"{'https' if self.certfile else 'http'}://127.0.0.1:{self.port}{self.prefix}{path}"

    def start(self, timeout: float = 30.0) -> Nginx:
        ''' Start nginx and wait until it accepts connections.

        Raises:
            RuntimeError: it exited or did not listen in time (with its error log)
        '''
        assert NGINX is not None
        for _ in range(5):  # another nginx test may hold the candidate port: try another
            self.port = _candidate_port()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.tmp, "nginx.pid"))
            conf = os.path.join(self.tmp, "nginx.conf")
            tls = (f"ssl_certificate {self.certfile};\n        ssl_certificate_key {self.keyfile};"
                   if self.certfile else "")
            with open(conf, "w") as f:
                f.write(_CONFIG.format(tmp=self.tmp, port=self.port, ssl=" ssl" if self.certfile else "",
                                       tls=tls, prefix=self.prefix, upstream=self.upstream,
                                       websocket=_WEBSOCKET if self.websocket else ""))
            self.proc = subprocess.Popen([NGINX, "-c", conf, "-p", self.tmp, "-e", f"{self.tmp}/error.log"],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            # nginx writes its pid file once its listening socket is bound (a
            # connect could reach another process on the port; the pid file cannot).
            pidfile = os.path.join(self.tmp, "nginx.pid")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if _read(pidfile).strip() == str(self.proc.pid):
                    return self
                try:
                    self.proc.wait(0.02)  # returns early only if nginx exited (e.g. port taken)
                    break
                except subprocess.TimeoutExpired:
                    pass
            self.stop()
        raise RuntimeError(f"nginx did not start: {self._log()}")

    def _log(self) -> str:
        return _read(os.path.join(self.tmp, "error.log"))[-2000:] or "(no error log)"

    def stop(self) -> None:
        ''' Stop nginx (terminate, then kill). '''
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

