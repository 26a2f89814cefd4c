"""Flags not covered elsewhere: --app-dir, the request limits, --log-level, --loop, --config."""

from __future__ import annotations

import pathlib

from . import rawhttp
from .conftest import StartServer
from .harness import run_cli

APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"from app-dir"})
"""


def test_app_dir_is_searched_for_the_app(tmp_path: pathlib.Path, start_server: StartServer) -> None:
    (tmp_path / "elsewhere_app.py").write_text(APP)
    server = start_server("--app-dir", str(tmp_path), app="elsewhere_app:app")
    with server.client() as client:
        assert client.get("/").text == "from app-dir"


def test_limit_request_line(start_server: StartServer) -> None:
    server = start_server("--limit-request-line", "100")
    ok = rawhttp.exchange(
        server.host, server.port, b"GET /" + b"a" * 50 + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    assert ok.startswith(b"HTTP/1.1 200 ")
    long = rawhttp.exchange(server.host, server.port, b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert long.startswith(b"HTTP/1.1 414 ")


def test_limit_request_head(start_server: StartServer) -> None:
    server = start_server("--limit-request-head", "1000")
    ok = rawhttp.exchange(
        server.host,
        server.port,
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX: " + b"v" * 500 + b"\r\n\r\n",
    )
    assert ok.startswith(b"HTTP/1.1 200 ")
    big = rawhttp.exchange(
        server.host, server.port, b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"v" * 2000 + b"\r\n\r\n"
    )
    assert big.startswith(b"HTTP/1.1 431 ")


def test_limits_can_be_turned_off(start_server: StartServer) -> None:
    server = start_server("--limit-request-line", "off", "--limit-request-head", "off")
    long = rawhttp.exchange(
        server.host,
        server.port,
        b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    assert long.startswith(b"HTTP/1.1 200 ")


def test_log_level_debug_shows_the_import_traceback() -> None:
    quiet = run_cli(["no_such_module_xyz:app"])
    loud = run_cli(["no_such_module_xyz:app", "--log-level", "debug"])
    assert quiet.returncode == loud.returncode == 3
    assert "Traceback" not in quiet.stderr
    assert "Traceback" in loud.stderr and "no_such_module_xyz" in loud.stderr


def test_asyncio_loop_serves(start_server: StartServer) -> None:
    server = start_server("--loop", "asyncio")
    with server.client() as client:
        assert client.get("/").status_code == 200


def test_config_file(tmp_path: pathlib.Path, start_server: StartServer) -> None:
    config = tmp_path / "squall.toml"
    config.write_text('header = ["x-from-file: yes"]\nserver-header = false\n')
    server = start_server("--config", str(config))
    with server.client() as client:
        response = client.get("/")
    assert response.headers["x-from-file"] == "yes"
    assert "server" not in response.headers


def test_limit_request_body(start_server: StartServer) -> None:
    server = start_server("--limit-request-body", "1000")
    with server.client() as client:
        assert client.post("/echo", content=b"x" * 1000).status_code == 200
        assert client.post("/echo", content=b"x" * 1001).status_code == 413
        chunked = client.post("/echo", content=iter([b"x" * 600, b"x" * 600]))
        assert chunked.status_code == 413
