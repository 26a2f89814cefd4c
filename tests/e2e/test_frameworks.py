"""A real framework (Starlette) and a real command-line client (curl) against squall."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import httpx
import pytest

from .harness import Server

CURL = "/usr/bin/curl"


@pytest.fixture(scope="module")
def starlette_server() -> Iterator[Server]:
    running = Server(app="tests.e2e.starlette_app:app").start()
    yield running
    assert running.stop() == 0


def test_starlette_routes_and_json(starlette_server: Server) -> None:
    with starlette_server.client() as client:
        assert client.get("/").text == "starlette says hi"
        assert client.get("/users/ada", params={"q": "x y"}).json() == {"user": "ada", "q": "x y"}
        assert client.get("/missing").status_code == 404
        assert client.post("/").status_code == 405


def test_starlette_request_body(starlette_server: Server) -> None:
    data = b"0123456789abcdef" * 65536  # 1 MiB
    response = httpx.post(starlette_server.url + "/upload", content=data, timeout=10)
    assert response.status_code == 201
    assert response.json() == {"length": len(data), "head": "0123456789abcdef"}


def test_starlette_streaming_response(starlette_server: Server) -> None:
    with httpx.stream("GET", starlette_server.url + "/numbers") as response:
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.read() == b"0\n1\n2\n3\n4\n"


def test_starlette_lifespan_state(starlette_server: Server) -> None:
    assert httpx.get(starlette_server.url + "/state").json() == {"started": True}


def curl(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [CURL, "-s", "-S", "--http1.1", "--max-time", "10", *args],
        input=stdin,
        capture_output=True,
        timeout=15,
        check=False,
    )


def test_curl_get(server: Server) -> None:
    result = curl("-i", server.url + "/")
    assert result.returncode == 0, result.stderr
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"server: squall" in head.lower()
    assert body == b"hello"


def test_curl_chunked_post(server: Server) -> None:
    payload = b"line one\nline two\n" * 1000
    result = curl(
        "-H", "Transfer-Encoding: chunked", "--data-binary", "@-", server.url + "/echo", stdin=payload
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == payload
