"""nginx in front of squall, with the README's configuration (``balancer.Nginx`` takes it from
between the README's ``nginx:conf`` markers): TLS at nginx, proxy headers to the app, websockets,
unbuffered streaming, nginx's own 413, upstream keep-alive connections reused, and a graceful
drain under load that loses nothing because nginx sends the next request to the other node."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from squall import config

from .balancer import NGINX, Load, Nginx, Node, free_port, running_nginx, start_node, start_nodes
from .h2util import Certs, certs

__all__ = ["certs"]

pytestmark = [
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx-light)"),
    pytest.mark.timeout(120),
]
HAS_PROXY_HEADERS = any(option.name == "proxy_headers" for option in config.options())


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    port = free_port()
    running = Node("A", port, start_node("A", port, "old", workers=1))
    try:
        yield running
    finally:
        running.server.stop()
        running.server.kill()


@pytest.fixture(scope="module")
def proxy(node: Node, certs: Certs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    workdir = tmp_path_factory.mktemp("nginx")
    with running_nginx(workdir, [node.address], certfile=str(certs.cert), keyfile=str(certs.key)) as front:
        yield front


def client(proxy: Nginx, certs: Certs, source: str = "127.0.0.1") -> httpx.Client:
    transport = httpx.HTTPTransport(verify=certs.ssl_context(), local_address=source)
    return httpx.Client(base_url=proxy.url, transport=transport, timeout=10)


@pytest.mark.skipif(
    not HAS_PROXY_HEADERS, reason="squall has no --proxy-headers yet (issue: switch from uvicorn)"
)
def test_client_address_and_https_scheme_reach_the_app_and_the_access_log(
    proxy: Nginx, certs: Certs, tmp_path: Path
) -> None:
    """The client connects from 127.0.0.2; nginx (127.0.0.1, trusted by default) says so in
    X-Forwarded-For and that it was https in X-Forwarded-Proto."""
    port = free_port()
    server = start_node("P", port, "old", workers=1, access_log=True)
    try:
        with (
            running_nginx(
                tmp_path, [f"127.0.0.1:{port}"], certfile=str(certs.cert), keyfile=str(certs.key)
            ) as front,
            client(front, certs, source="127.0.0.2") as c,
        ):
            scope = c.get("/scope").json()
        assert scope["client"][0] == "127.0.0.2"
        assert scope["scheme"] == "https"
        server.wait_for_line(r'127\.0\.0\.2:\d+ - "GET /scope HTTP/1\.1" 200')
    finally:
        server.stop()
        server.kill()


def test_websocket_through_nginx(proxy: Nginx, certs: Certs) -> None:
    url = proxy.url.replace("https", "wss") + "/ws"
    big = bytes(range(256)) * 4096  # 1 MiB

    async def echoes() -> list[str | bytes]:
        # The asyncio client: the sync one's reader thread shares the SSL object with its
        # writes, and now and then never sends its request over TLS (see test_tls).
        async with connect(url, ssl=certs.ssl_context(), max_size=None, open_timeout=10) as ws:
            await ws.send("hello")
            first = await asyncio.wait_for(ws.recv(), 10)
            await ws.send(big)
            return [first, await asyncio.wait_for(ws.recv(), 10)]

    assert asyncio.run(echoes()) == ["hello", big]


def test_streamed_response_is_not_held_back(proxy: Nginx, certs: Certs) -> None:
    """``proxy_buffering off``: the first line arrives while the app still waits to send the last."""
    with client(proxy, certs) as c, c.stream("GET", "/stream") as response:
        lines = response.iter_lines()
        assert next(lines) == "first"
        with client(proxy, certs) as other:
            assert other.get("/release").text == "released"
        assert list(lines) == ["last"]


def test_upload_over_client_max_body_size_is_nginxs_413(proxy: Nginx, certs: Certs, node: Node) -> None:
    mark = node.server.mark()
    with client(proxy, certs) as c:
        response = c.post("/", content=b"x" * (11 * 1024 * 1024))  # the README's limit is 10m
        assert response.status_code == 413
        assert "nginx" in response.text
        assert c.post("/", content=b"small").status_code == 200
    assert [line for line in node.server.lines[mark:] if "ERROR" in line] == []


def upstream_connections(port: int) -> set[int]:
    """The other end's port of every TCP connection (any state) with local or remote ``port``."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        local_port, remote_port = int(local.split(":")[1], 16), int(remote.split(":")[1], 16)
        if state == "0A":  # LISTEN
            continue
        if local_port == port:
            found.add(remote_port)
        elif remote_port == port:
            found.add(local_port)
    return found


def test_upstream_keep_alive_connections_are_reused(certs: Certs, tmp_path: Path) -> None:
    port = free_port()
    server = start_node("K", port, "old", workers=1)
    try:
        with running_nginx(
            tmp_path, [f"127.0.0.1:{port}"], certfile=str(certs.cert), keyfile=str(certs.key)
        ) as front:
            for _ in range(5):  # new client connections each time: nginx still reuses its upstream ones
                with client(front, certs) as c:
                    for _ in range(10):
                        assert c.get("/").status_code == 200
            used = upstream_connections(port)
    finally:
        server.stop()
        server.kill()
    assert 1 <= len(used) <= 2, f"50 requests through nginx took {len(used)} upstream connections"


def test_sigterm_under_load_through_nginx_loses_nothing(tmp_path: Path) -> None:
    """Node A drains (SIGTERM) while 4 keep-alive clients send GETs and POSTs through nginx: every
    request is answered, by A before it stops accepting or by B after."""
    nodes = start_nodes(["A", "B"], workers=1)
    try:
        with (
            running_nginx(tmp_path, [n.address for n in nodes]) as front,
            Load("127.0.0.1", front.port) as load,
        ):
            assert load.wait_until(lambda c: c.served_by[("A", "old")] >= 100, 60)
            mark = sum(load.counts.total.values())
            nodes[0].server.terminate()
            assert nodes[0].server.wait_exit(30) == 0
            assert load.wait_until(lambda c: sum(c.total.values()) >= mark + 300, 60)
            counts = load.stop()
    finally:
        for n in nodes:
            n.server.stop()
            n.server.kill()
    assert sum(counts.failed.values()) == 0, counts.describe()
    assert counts.total["POST"] > 100
    assert set(counts.served_by) == {("A", "old"), ("B", "old")}
