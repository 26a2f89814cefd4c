"""The lifespan protocol (ASGI lifespan spec 2.0) and graceful shutdown."""

from __future__ import annotations

import contextlib
import socket
import time

import httpx
import pytest

from .conftest import StartServer
from .harness import Server
from .rawhttp import RawConnection, request


def run_to_exit(app: str, *args: str) -> tuple[int, str]:
    """Start a server that is expected to exit on its own; return (exit code, stderr)."""
    process = Server(args, app=app)
    try:
        process.start()
    except Exception:
        code = process.wait_exit(15)
        return code, process.log()
    finally:
        process.kill()
    pytest.fail(f"the server started although it should not have:\n{process.log()}")


def test_startup_state_reaches_requests(server: Server) -> None:
    assert httpx.get(server.url + "/scope").json()["state"]["greeting"] == "hello from lifespan"
    server.wait_for_line("APP lifespan startup complete")


def test_startup_failed_exits_nonzero_with_message() -> None:
    code, log = run_to_exit("tests.e2e.apps:failing_startup_app")
    assert code != 0
    assert "database unreachable (e2e)" in log


def test_startup_exception_with_lifespan_on_exits_nonzero() -> None:
    code, log = run_to_exit("tests.e2e.apps:raising_startup_app", "--lifespan", "on")
    assert code != 0
    assert "startup exploded (e2e)" in log


def test_startup_exception_with_lifespan_auto_still_serves(start_server: StartServer) -> None:
    running = start_server(app="tests.e2e.apps:raising_startup_app")
    assert httpx.get(running.url + "/").text == "served"


def test_app_raising_on_lifespan_scope_is_served_under_auto(start_server: StartServer) -> None:
    running = start_server(app="tests.e2e.apps:no_lifespan_app")
    assert httpx.get(running.url + "/").text == "no lifespan here"
    assert running.stop() == 0


def test_app_ignoring_lifespan_scope_is_served_under_auto(start_server: StartServer) -> None:
    """An app that simply returns for scopes it does not handle has no lifespan support."""
    running = start_server(app="tests.e2e.apps:Asgi2App")
    assert httpx.get(running.url + "/x").text == "asgi2 /x"


def test_lifespan_off_never_calls_the_app_with_lifespan(start_server: StartServer) -> None:
    running = start_server("--lifespan", "off")
    assert httpx.get(running.url + "/scope").json().get("state", {}) == {}
    running.stop()
    assert not any("APP lifespan" in line for line in running.lines)


def test_shutdown_runs_on_sigterm(start_server: StartServer) -> None:
    running = start_server()
    assert httpx.get(running.url + "/").status_code == 200
    assert running.stop() == 0
    running.wait_for_line("APP lifespan shutdown complete")


# --- graceful shutdown -----------------------------------------------------------------------


def attempt_request(server: Server) -> RawConnection | None:
    """Open a connection and send a request; None if the connection is refused (or reset while
    connecting: the listening socket closed under the handshake, before any request was sent)."""
    try:
        conn = RawConnection.tcp(server.host, server.port, timeout=10)
    except (ConnectionRefusedError, ConnectionResetError):
        return None
    with contextlib.suppress(OSError):
        conn.send(request("GET", "/"))
    return conn


def assert_served_or_refused(late: RawConnection | None) -> None:
    """A connection made while the drain begins is refused, or accepted and answered whole (the
    drain serves what waits in the accept queue before it closes the listening socket): never
    accepted by the kernel and then dropped."""
    if late is not None:
        with late:
            response = late.read_response()
            assert (response.status, response.body) == (200, b"hello")
            assert response.header("connection") == "close"
            assert late.read_to_eof() == b""


def test_sigterm_lets_slow_in_flight_request_finish(start_server: StartServer) -> None:
    running = start_server()
    with RawConnection.tcp(running.host, running.port, timeout=10) as inflight:
        inflight.send(request("GET", "/sleep?s=1&id=slow"))
        running.wait_for_line("APP sleep started slow")
        late = terminate_and_connect(running)
        response = inflight.read_response()
        assert (response.status, response.body) == (200, b"slept")
        inflight.wait_closed(timeout=5)
    assert_drained(running, late)


def test_sigterm_lets_in_flight_upload_finish(start_server: StartServer) -> None:
    """The body of a request already being served still has to be read during the drain."""
    running = start_server()
    with RawConnection.tcp(running.host, running.port, timeout=5) as inflight:
        inflight.send(request("POST", "/hold?id=inflight", "Content-Length: 4"))
        running.wait_for_line("APP hold started inflight")
        late = terminate_and_connect(running)
        inflight.send(b"done")
        response = inflight.read_response()
        assert (response.status, response.body) == (200, b"held:done")
        inflight.wait_closed(timeout=5)
    assert_drained(running, late)


def terminate_and_connect(running: Server) -> RawConnection | None:
    """SIGTERM, and a request on a new connection right as the drain begins (``attempt_request``)."""
    mark = running.mark()
    running.terminate()
    running.wait_for_line("Shutting down", start=mark)
    return attempt_request(running)


def assert_drained(running: Server, late: RawConnection | None) -> None:
    """The server exited cleanly, answered or refused ``late``, and refuses connections now."""
    assert running.wait_exit(10) == 0
    assert_served_or_refused(late)
    with pytest.raises(ConnectionRefusedError), socket.create_connection((running.host, running.port), 2):
        pass


def test_graceful_shutdown_timeout_cuts_never_ending_request(start_server: StartServer) -> None:
    running = start_server("--timeout-graceful-shutdown", "1")
    with RawConnection.tcp(running.host, running.port, timeout=10) as stuck:
        stuck.send(request("GET", "/forever"))
        running.wait_for_line("APP forever started")
        started = time.monotonic()
        running.terminate()
        running.wait_exit(10)
        elapsed = time.monotonic() - started
        assert stuck.read_to_eof() == b""
    assert 0.8 < elapsed < 3.5, f"exit took {elapsed:.1f}s"
