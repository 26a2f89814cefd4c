"""Proxy headers end to end: X-Forwarded-* and Forwarded from a trusted peer (127.0.0.1, trusted by
default) change the scope's client and scheme (and so the access log and the URLs an app builds);
from an untrusted peer they change nothing. HTTP/1.1, HTTP/2, websockets over both, Unix sockets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect, unix_connect

from .conftest import StartServer
from .h2util import H2Client
from .harness import Server
from .test_ws_h2 import ENABLE_CONNECT_PROTOCOL, WsStream

APP = "tests.e2e.proxy_app:app"
NGINX_LIKE = {"x-forwarded-for": "6.6.6.6, 203.0.113.7", "x-forwarded-proto": "https"}


@pytest.fixture(scope="module")
def proxied() -> Iterator[Server]:
    """squall with its defaults: proxy headers on, 127.0.0.1 (the tests' address) trusted."""
    running = Server(app=APP).start()
    try:
        yield running
    finally:
        running.stop()
        running.kill()


def who(server: Server, headers: dict[str, str], uds: str | None = None) -> dict[str, object]:
    if uds is None:
        client = server.client()
    else:
        client = httpx.Client(transport=httpx.HTTPTransport(uds=uds), base_url="http://localhost")
    with client:
        response = client.get("/who", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_trusted_proxy_sets_client_scheme_and_access_log(proxied: Server) -> None:
    seen = who(proxied, NGINX_LIKE)
    # The rightmost untrusted hop, not the leftmost one the client may have written itself.
    assert seen["client"] == ["203.0.113.7", 0]
    assert seen["scheme"] == "https"
    assert str(seen["url"]).startswith("https://")
    proxied.wait_for_line(r'203\.0\.113\.7:0 - "GET /who HTTP/1\.1" 200')


def test_without_proxy_headers_the_peer_is_the_client(proxied: Server) -> None:
    seen = who(proxied, {})
    assert seen["client"][0] == "127.0.0.1"  # type: ignore[index]
    assert seen["scheme"] == "http"


def test_redirect_url_is_https_behind_a_tls_proxy(proxied: Server) -> None:
    """What broke FastAPI apps behind nginx: url_for / RedirectResponse built http:// URLs."""
    with proxied.client() as client:
        response = client.get(
            "/go",
            headers={"host": "shop.example", "x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.7"},
        )
    assert response.status_code == 303
    assert response.headers["location"] == "https://shop.example/target"


def test_x_forwarded_host_is_ignored_unless_asked(proxied: Server, start_server: StartServer) -> None:
    headers = {"host": "127.0.0.1:1", "x-forwarded-host": "shop.example", "x-forwarded-proto": "https"}
    with proxied.client() as client:
        assert client.get("/go", headers=headers).headers["location"] == "https://127.0.0.1:1/target"
    asked = start_server("--forwarded-host", app=APP)
    with asked.client() as client:
        assert client.get("/go", headers=headers).headers["location"] == "https://shop.example/target"
    assert who(asked, headers)["host"] == "shop.example"


def test_rfc7239_forwarded_quoted_ipv6(proxied: Server) -> None:
    seen = who(proxied, {"forwarded": 'for="[2001:db8::17]:4711";proto=https;by=_nginx'})
    assert seen["client"] == ["2001:db8::17", 4711]
    assert seen["scheme"] == "https"


def test_x_forwarded_for_wins_over_a_client_s_own_forwarded(proxied: Server) -> None:
    seen = who(proxied, {"forwarded": "for=6.6.6.6", "x-forwarded-for": "203.0.113.7"})
    assert seen["client"] == ["203.0.113.7", 0]


@pytest.mark.parametrize(
    "headers",
    [
        {"x-forwarded-for": "not an address"},
        {"x-forwarded-for": ""},
        {"x-forwarded-for": "1.2.3.4:99999"},
        {"x-forwarded-proto": "gopher"},
        {"x-forwarded-proto": "ht tps"},
        {"forwarded": 'for="[2001:db8::1'},
        {"forwarded": "for=1.2.3.4;for=5.6.7.8"},
        {"forwarded": ";;,,=="},
    ],
)
def test_malformed_values_are_ignored_never_a_500(proxied: Server, headers: dict[str, str]) -> None:
    seen = who(proxied, headers)
    assert seen["client"][0] == "127.0.0.1"  # type: ignore[index]
    assert seen["scheme"] == "http"


def test_untrusted_peer_changes_nothing(start_server: StartServer) -> None:
    server = start_server("--forwarded-allow-ips", "192.0.2.1, 10.0.0.0/8", app=APP)
    seen = who(server, {**NGINX_LIKE, "forwarded": "for=203.0.113.8;proto=https"})
    assert seen["client"][0] == "127.0.0.1"  # type: ignore[index]
    assert seen["scheme"] == "http"


def test_forwarded_allow_ips_from_the_environment_as_uvicorn(start_server: StartServer) -> None:
    untrusted = start_server(app=APP, env={"FORWARDED_ALLOW_IPS": "192.0.2.1"})
    assert who(untrusted, NGINX_LIKE)["scheme"] == "http"
    squall_wins = start_server(
        app=APP, env={"FORWARDED_ALLOW_IPS": "192.0.2.1", "SQUALL_FORWARDED_ALLOW_IPS": "*"}
    )
    seen = who(squall_wins, NGINX_LIKE)
    assert seen["scheme"] == "https"
    assert seen["client"] == ["6.6.6.6", 0]  # '*': every hop is trusted, the leftmost is the client


def test_no_proxy_headers_turns_it_off(start_server: StartServer) -> None:
    server = start_server("--no-proxy-headers", app=APP)
    seen = who(server, NGINX_LIKE)
    assert seen["client"][0] == "127.0.0.1"  # type: ignore[index]
    assert seen["scheme"] == "http"


def test_http2_request(proxied: Server) -> None:
    client = H2Client(proxied.port)
    sid = client.request("/who", headers=[(k.encode(), v.encode()) for k, v in NGINX_LIKE.items()])
    reply = client.wait(sid)
    client.close()
    assert reply.status == 200
    seen = json.loads(bytes(reply.body))
    assert seen["client"] == ["203.0.113.7", 0]
    assert seen["scheme"] == "https"


def test_websocket_over_http1(proxied: Server) -> None:
    url = proxied.url.replace("http://", "ws://") + "/ws"
    with connect(url, additional_headers=NGINX_LIKE) as ws:
        seen = json.loads(ws.recv())
    assert seen["client"] == ["203.0.113.7", 0]
    assert seen["scheme"] == "wss"  # https from the proxy is wss for a websocket scope
    assert str(seen["url"]).startswith("wss://")


def test_websocket_over_http2(proxied: Server) -> None:
    client = H2Client(proxied.port)
    while not client.conn.remote_settings.get(ENABLE_CONNECT_PROTOCOL):
        client.receive_once()
    ws = WsStream(client, "/ws", [(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"wss")])
    assert ws.wait_head().status == 200
    seen = json.loads(bytes(ws.recv().data))
    client.close()
    assert seen["client"] == ["203.0.113.7", 0]
    assert seen["scheme"] == "wss"


def test_unix_socket_peer_is_trusted_only_with_unix(start_server: StartServer, tmp_path: Path) -> None:
    path = str(tmp_path / "squall.sock")
    default = start_server("--uds", path, app=APP)
    assert who(default, NGINX_LIKE, uds=path)["scheme"] == "http"
    default.stop()
    trusting = start_server("--uds", path, "--forwarded-allow-ips", "unix:", app=APP)
    seen = who(trusting, NGINX_LIKE, uds=path)
    assert seen["client"] == ["203.0.113.7", 0]
    assert seen["scheme"] == "https"
    with unix_connect(path, "ws://localhost/ws", additional_headers=NGINX_LIKE) as ws:
        assert json.loads(ws.recv())["scheme"] == "wss"
