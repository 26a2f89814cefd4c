"""The error log and the access log on stderr."""

from __future__ import annotations

import re

import httpx

from .conftest import StartServer
from .harness import STARTUP, Server
from .rawhttp import RawConnection, request


def test_startup_line_names_the_url(server: Server) -> None:
    match = server.wait_for_line(STARTUP)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", match["url"])
    assert server.port > 0


def test_access_log_line(server: Server) -> None:
    with RawConnection.tcp(server.host, server.port) as conn:
        conn.send(request("GET", "/fixed?x=1"))
        assert conn.read_response().status == 200
        host, port = conn.sock.getsockname()
        client = f"{host}:{port}"
    line = server.wait_for_line(re.escape(f'{client} - "GET /fixed?x=1 HTTP/1.1" 200 11 ')).string
    assert re.search(r" INFO ", line)


def test_access_log_records_error_status_and_method(server: Server) -> None:
    mark = server.mark()
    httpx.post(server.url + "/status?code=404", content=b"x")
    server.wait_for_line(r'"POST /status\?code=404 HTTP/1\.1" 404 16 ', start=mark)


def test_control_characters_in_path_are_escaped(server: Server) -> None:
    mark = server.mark()
    with RawConnection.tcp(server.host, server.port) as conn:
        conn.send(request("GET", "/inject%0AFAKE%20LINE%1b[31m"))
        assert conn.read_response().status == 200
    line = server.wait_for_line(r'"GET /inject', start=mark).string
    assert "\\x0a" in line or "\\n" in line
    assert "\x1b" not in line
    assert "FAKE LINE" in line  # on the same line as the request
    assert not any(later.startswith("FAKE LINE") for later in server.lines[mark:])


def test_no_access_log(start_server: StartServer) -> None:
    running = start_server("--no-access-log")
    for path in ("/", "/fixed", "/missing"):
        assert httpx.get(running.url + path).status_code == 200
    assert running.stop() == 0
    assert running.access_lines() == []
    assert any("Finished server process" in line for line in running.lines)


def test_access_log_on_by_default(start_server: StartServer) -> None:
    running = start_server()
    httpx.get(running.url + "/fixed")
    assert running.stop() == 0
    assert [m["target"] for m in running.access_lines()] == ["/fixed"]
