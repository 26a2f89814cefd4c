"""What a balancer needs from a stopping squall: ``--health-path`` (200 serving, 503 stopping,
answered before the app), ``--drain-delay`` (keep serving after SIGTERM while health says 503),
and a drain that loses no request: an idle keep-alive connection is not closed under a request its
client may be sending, and once the workers stop accepting a new connection is refused at once
rather than queued on a socket only the supervisor still holds."""

from __future__ import annotations

import re
import socket

import httpx
import pytest

from squall.process.worker import accept_queued

from .conftest import StartServer
from .harness import Server, run_cli
from .rawhttp import RawConnection, request

SUPERVISED = ["--workers", "2"]
MODES = pytest.mark.parametrize("mode", [[], SUPERVISED], ids=["single", "supervised"])


def get(server: Server, path: str) -> httpx.Response:
    with server.client() as client:
        return client.get(path)


def wait_for_lines(server: Server, text: str, count: int, start: int) -> None:
    """Wait until ``count`` stderr lines from index ``start`` on contain ``text``."""
    index = start
    for _ in range(count):
        server.wait_for_line(re.escape(text), start=index)
        index = next(i for i in range(index, len(server.lines)) if text in server.lines[i]) + 1


def test_health_path_is_answered_before_the_app(start_server: StartServer) -> None:
    server = start_server("--health-path", "/healthz")
    response = get(server, "/healthz?probe=1")
    assert (response.status_code, response.text) == (200, "ok\n")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    with server.client(http1=False, http2=True) as client:  # prior knowledge h2c
        h2 = client.get("/healthz")
    assert (h2.http_version, h2.status_code, h2.text) == ("HTTP/2", 200, "ok\n")
    assert get(server, "/healthz/more").json()["path"] == "/healthz/more"  # the app's scope view


def test_health_path_is_the_apps_without_the_flag(start_server: StartServer) -> None:
    server = start_server()
    assert get(server, "/healthz").json()["path"] == "/healthz"


def test_health_path_must_be_a_path() -> None:
    done = run_cli(["--health-path", "healthz"])
    assert done.returncode == 2
    assert "--health-path: invalid value 'healthz'" in done.stderr
    assert "Traceback" not in done.stderr


@MODES
def test_drain_delay_keeps_serving_while_health_says_503(start_server: StartServer, mode: list[str]) -> None:
    server = start_server("--health-path", "/healthz", "--drain-delay", "30", *mode)
    assert get(server, "/healthz").status_code == 200
    with RawConnection.tcp(server.host, server.port) as idle:
        idle.send(request("GET", "/healthz"))
        assert idle.read_response().status == 200
        mark = server.mark()
        server.terminate()
        server.wait_for_line(r"Draining in 30 s \(--drain-delay\)", start=mark)
        if mode:  # each worker heard it from the supervisor
            wait_for_lines(server, "Draining soon (--drain-delay)", 2, mark)
        idle.send(request("GET", "/healthz"))  # an open connection, as a balancer's health check
        response = idle.read_response()
        assert (response.status, response.body) == (503, b"draining\n")
        assert response.header("connection") is None  # still serving: keep-alive
        assert get(server, "/").text == "hello"  # new connections are still served
        assert get(server, "/healthz").status_code == 503
        server.terminate()  # a second signal ends the delay: stop now
        assert server.wait_exit(10) != 0
    assert "Graceful shutdown timed out" not in server.log()


def test_drain_delay_ends_in_a_graceful_stop(start_server: StartServer) -> None:
    server = start_server("--health-path", "/healthz", "--drain-delay", "0.5")
    server.terminate()
    assert server.wait_exit(10) == 0
    assert any("Draining in 0.5 s" in line for line in server.lines)


@MODES
def test_idle_connection_is_not_closed_under_its_next_request(
    start_server: StartServer, mode: list[str]
) -> None:
    """Draining, a keep-alive connection between requests stays open: a request its client sends
    (a balancer picks its idle upstream connections at any moment) is answered with
    ``Connection: close``; closing first would lose it, a POST for good."""
    server = start_server("--timeout-keep-alive", "4", *mode)
    with RawConnection.tcp(server.host, server.port, timeout=10) as conn:
        conn.send(request("GET", "/"))
        assert conn.read_response().status == 200
        mark = server.mark()
        server.terminate()
        server.wait_for_line("Shutting down", start=mark)
        with pytest.raises(TimeoutError):
            conn.wait_closed(1.5)  # squall's drain used to close idle connections after 1 s
        conn.send(request("POST", "/echo", "Content-Length: 5", body=b"hello"))
        response = conn.read_response()
        assert (response.status, response.body) == (200, b"hello")
        assert response.header("connection") == "close"
        conn.wait_closed(5)
    assert server.wait_exit(10) == 0


def test_idle_connection_closes_at_its_keep_alive_timeout_while_draining(start_server: StartServer) -> None:
    server = start_server("--timeout-keep-alive", "1")
    with RawConnection.tcp(server.host, server.port, timeout=10) as conn:
        conn.send(request("GET", "/"))
        assert conn.read_response().status == 200
        server.terminate()
        assert conn.wait_closed(5) < 2
    assert server.wait_exit(10) == 0


def test_draining_workers_leave_no_socket_that_queues_connections(start_server: StartServer) -> None:
    """Once every worker has stopped accepting, a connect is refused (a balancer then tries another
    node, even for a POST). The supervisor used to keep its copy of the listening socket until it
    exited: connections queued there and were reset then, after their requests were sent."""
    server = start_server(*SUPERVISED, "--timeout-graceful-shutdown", "20")
    with RawConnection.tcp(server.host, server.port, timeout=10) as busy:
        busy.send(request("POST", "/hold?id=busy", "Content-Length: 4"))
        server.wait_for_line("APP hold started busy")
        mark = server.mark()
        server.terminate()
        wait_for_lines(server, "Stopped accepting", 2, mark)  # both workers
        with pytest.raises(ConnectionRefusedError), socket.create_connection((server.host, server.port), 5):
            pass
        busy.send(b"done")
        response = busy.read_response()
        assert (response.status, response.body) == (200, b"held:done")
    assert server.wait_exit(10) == 0


def test_accept_queued_takes_every_waiting_connection() -> None:
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:
        clients = [socket.create_connection(listener.getsockname()) for _ in range(3)]
        try:
            accepted = accept_queued(listener, 10)
            assert len(accepted) == 3
            assert accept_queued(listener, 10) == []  # empty queue: no wait
            for conn in accepted:
                conn.close()
            clients.append(socket.create_connection(listener.getsockname()))
            clients.append(socket.create_connection(listener.getsockname()))
            limited = accept_queued(listener, 1)
            assert len(limited) == 1
            limited[0].close()
        finally:
            for client in clients:
                client.close()
