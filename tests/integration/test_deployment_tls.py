''' TLS (wss://) with verification, custom CAs and the insecure opt-out, and
HTTP CONNECT proxies (explicit and from the environment), against real
Bokeh servers.
'''
from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from bokeh.document import Document

from bokehsync import ClientSession, ConnectionFailed, pull_session
from bokehsync._localserver import LocalServer
from tests.support import APPS, LONG, ROOT, push_patch_pull
from tests.support.proxy import ConnectProxy

trustme = pytest.importorskip("trustme")

_PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY",
               "all_proxy", "ALL_PROXY")


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> Iterator[tuple[trustme.CA, str]]:
    ''' A test CA and its certificate file. '''
    authority = trustme.CA()
    path = str(tmp_path_factory.mktemp("ca") / "ca.pem")
    authority.cert_pem.write_to_path(path)
    yield authority, path


@pytest.fixture(scope="module")
def tls(ca, tmp_path_factory) -> Iterator[LocalServer]:
    ''' A Bokeh server speaking TLS with a certificate for 127.0.0.1 from the test CA. '''
    authority, _ = ca
    cert = authority.issue_cert("127.0.0.1", "localhost")
    d = tmp_path_factory.mktemp("tls")
    certfile, keyfile = str(d / "cert.pem"), str(d / "key.pem")
    for blob in cert.cert_chain_pems:
        blob.write_to_path(certfile, append=True)
    cert.private_key_pem.write_to_path(keyfile)
    with LocalServer(APPS, pythonpath=[ROOT], server_kwargs={"ssl_certfile": certfile, "ssl_keyfile": keyfile}) as srv:
        yield srv


@pytest.fixture
def clean_proxy_env(monkeypatch) -> None:
    ''' No proxy variables from the machine running the tests. '''
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


# TLS -------------------------------------------------------------------------

def test_wss_with_a_ca_file(tls, ca):
    ''' verify="ca.pem": pull, push, patch and flush work over wss://, from an https:// URL. '''
    _, ca_path = ca
    assert tls.url().startswith("https://")
    push_patch_pull(tls.url, verify=ca_path)
    with pull_session(url=tls.url("/empty"), verify=ca_path) as session:
        assert session.url.startswith("wss://")


def test_wss_with_an_ssl_context(tls, ca):
    ''' ssl_context= with the CA trusted works; a ClientSession takes an https:// URL too. '''
    authority, _ = ca
    context = ssl.create_default_context()
    authority.configure_trust(context)
    session = ClientSession(websocket_url=tls.url("/empty/ws"), ssl_context=context)
    try:
        session.pull()
        assert session.url == tls.ws_url("/empty")
    finally:
        session.close()


def test_untrusted_certificate_is_a_clear_tls_error(tls):
    ''' Without the CA: ConnectionFailed (an OSError) naming the URL, the TLS failure and the fix. '''
    with pytest.raises(ConnectionFailed) as info:
        pull_session(url=tls.url("/empty"))
    message = str(info.value)
    assert tls.ws_url("/empty") in message
    assert "TLS error" in message and "certificate verify failed" in message and "verify=" in message


def test_insecure_opt_out_works_and_warns(tls, caplog):
    ''' verify=False connects to the untrusted server and logs a warning naming the URL. '''
    caplog.set_level(logging.WARNING, logger="bokehsync")
    with pull_session(url=tls.url("/slider"), verify=False) as session:
        assert session.document.get_model_by_name("slider") is not None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("verification is disabled" in w and tls.ws_url("/slider") in w for w in warnings)


def test_missing_ca_file_is_refused_at_once(tls, tmp_path):
    ''' A CA path that does not exist fails when the session is made, naming it and the URL. '''
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(ValueError, match="CA bundle") as info:
        pull_session(url=tls.url("/empty"), verify=missing)
    assert missing in str(info.value) and tls.ws_url("/empty") in str(info.value)


def test_many_threads_share_one_wss_connection(tls, ca):
    ''' 32 threads x 50 requests (pulls and round trips) on one TLS connection all succeed. '''
    _, ca_path = ca
    with pull_session(url=tls.url("/slider"), verify=ca_path) as session:
        def work(k: int) -> int:
            done = 0
            for i in range(50):
                if i % 5 == 0:
                    doc = Document()
                    session._connection.pull_doc(doc, timeout=LONG)
                    assert sorted(m.name for m in doc.roots) == ["slider", "source"]
                else:
                    session.force_roundtrip(timeout=LONG)
                done += 1
            return done
        with ThreadPoolExecutor(32) as pool:
            results = list(pool.map(work, range(32)))
        session.document.get_model_by_name("slider").value = 11
        session.flush()
        assert session.connected
    assert results == [50] * 32
    with pull_session(session_id=session.id, url=tls.url("/slider"), verify=ca_path) as check:
        assert check.document.get_model_by_name("slider").value == 11


# Proxies ---------------------------------------------------------------------

def test_explicit_proxy(server, clean_proxy_env):
    ''' proxy="http://host:port": the session goes through the proxy's tunnel and works. '''
    with ConnectProxy() as proxy:
        push_patch_pull(server.url, proxy=proxy.url)
        assert proxy.tunnels and set(proxy.tunnels) == {f"127.0.0.1:{server.port}"}


def test_proxy_from_the_environment_and_no_proxy(server, clean_proxy_env, monkeypatch):
    ''' HTTP_PROXY is used for ws://; NO_PROXY bypasses it; proxy=False ignores both. '''
    with ConnectProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        with pull_session(url=server.url("/empty")):
            pass
        assert len(proxy.tunnels) == 1
        with pull_session(url=server.url("/empty"), proxy=False):
            pass
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        with pull_session(url=server.url("/empty")):
            pass
        assert len(proxy.tunnels) == 1


def test_wss_through_https_proxy_env(tls, ca, clean_proxy_env, monkeypatch):
    ''' HTTPS_PROXY carries wss:// (TLS inside the CONNECT tunnel, certificate still verified). '''
    _, ca_path = ca
    with ConnectProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # must not be used for wss://
        with pull_session(url=tls.url("/slider"), verify=ca_path) as session:
            session.force_roundtrip()
        assert proxy.tunnels == [f"127.0.0.1:{tls.port}"]


def test_proxy_refusing_the_tunnel_is_a_clear_error(server, clean_proxy_env):
    ''' A proxy answering 407: ConnectionFailed naming the proxy's refusal and the URL. '''
    with ConnectProxy(status=407) as proxy:
        with pytest.raises(ConnectionFailed, match=r"proxy refused the tunnel.*407") as info:
            pull_session(url=server.url("/empty"), proxy=proxy.url)
    assert server.ws_url("/empty") in str(info.value)


def test_proxy_not_running_is_named(server, clean_proxy_env):
    ''' A proxy that refuses TCP connections is named as the one refusing, not the Bokeh server. '''
    with ConnectProxy() as proxy:
        url = proxy.url
    with pytest.raises(ConnectionFailed, match=r"refused by the proxy 127\.0\.0\.1"):
        pull_session(url=server.url("/empty"), proxy=url)


def test_no_proxy_variables_leak_out_of_these_tests():
    ''' Sanity: the proxy variables the tests set are gone again. '''
    assert not any(os.environ.get(n, "").startswith("http://127.0.0.1") for n in _PROXY_VARS)
