''' A Bokeh server behind a real nginx reverse proxy (Bokeh's documented
websocket configuration), under a URL prefix, once plain and once with TLS
terminated at nginx.
'''
from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from bokehsync import ConnectionFailed, pull_session
from bokehsync._localserver import LocalServer
from tests.support import ROOT, push_patch_pull
from tests.support.nginx import NGINX, Nginx

pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (.ci/run installs it)")

APPS = {"/app": "tests.apps:slider", "/empty": "tests.apps:empty", "/whoami": "tests.deploy_apps:whoami"}
PREFIX = "bokeh"


@pytest.fixture(scope="module")
def upstream() -> Iterator[LocalServer]:
    ''' The Bokeh server nginx forwards to: prefix /bokeh, X-Forwarded-* trusted. '''
    with LocalServer(APPS, pythonpath=[ROOT],
                      server_kwargs={"prefix": PREFIX, "use_xheaders": True}) as srv:
        yield srv


@pytest.fixture(scope="module")
def plain(upstream, tmp_path_factory) -> Iterator[Nginx]:
    ''' nginx on http:// in front of the Bokeh server. '''
    proxy = Nginx(str(tmp_path_factory.mktemp("nginx-plain")), upstream.port, PREFIX)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(scope="module")
def tls(upstream, tmp_path_factory) -> Iterator[tuple[Nginx, str]]:
    ''' nginx terminating TLS (certificate from a test CA) in front of the Bokeh server. '''
    trustme = pytest.importorskip("trustme")
    d = tmp_path_factory.mktemp("nginx-tls")
    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(d / "ca.pem"))
    cert = authority.issue_cert("127.0.0.1")
    for blob in cert.cert_chain_pems:
        blob.write_to_path(str(d / "cert.pem"), append=True)
    cert.private_key_pem.write_to_path(str(d / "key.pem"))
    proxy = Nginx(str(d), upstream.port, PREFIX, certfile=str(d / "cert.pem"), keyfile=str(d / "key.pem"))
    proxy.start()
    try:
        yield proxy, str(d / "ca.pem")
    finally:
        proxy.stop()


def _pull_push_patch(url, **options: object) -> None:
    ''' The usual round trip through the proxy; the session's URL is the one through nginx. '''
    with pull_session(url=url("/empty"), **options) as session:
        assert session.url == url("/empty/ws").replace("http", "ws", 1)
    push_patch_pull(lambda path: url("/app") if path == "/slider" else url(path), **options)


def test_behind_nginx(plain):
    ''' Through nginx under /bokeh: pull, push and patch work both ways. '''
    _pull_push_patch(plain.url)


def test_behind_nginx_with_tls(tls):
    ''' Through nginx terminating TLS (wss:// to nginx, ws:// behind it): pull, push and patch work;
    the app sees the original scheme in X-Forwarded-Proto. '''
    proxy, ca_path = tls
    _pull_push_patch(proxy.url, verify=ca_path)
    with pull_session(url=proxy.url("/whoami"), verify=ca_path) as session:
        seen = json.loads(session.document.get_model_by_name("whoami").text)
    assert seen["forwarded_proto"] == "https"


def test_wrong_prefix_through_nginx_is_a_404(plain):
    ''' An app path without the server's prefix is an HTTP 404 that names the URL. '''
    url = plain.url("/app").replace(f"/{PREFIX}/app", "/app")
    with pytest.raises(ConnectionFailed, match="404"):
        pull_session(url=url)
    with pytest.raises(ConnectionFailed, match="404") as info:
        pull_session(url=plain.url("/nope"))
    assert "/bokeh/nope/ws" in str(info.value)


def test_nginx_without_websocket_headers_is_a_clear_error(upstream, tmp_path):
    ''' The common mistake, nginx without the Upgrade/Connection lines: an HTTP error naming the URL. '''
    with Nginx(str(tmp_path), upstream.port, PREFIX, websocket=False) as proxy:
        with pytest.raises(ConnectionFailed) as info:
            pull_session(url=proxy.url("/app"))
    assert info.value.status == 400 and proxy.url("/app/ws").replace("http", "ws", 1) in str(info.value)
