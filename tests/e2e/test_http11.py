"""HTTP/1.1 connection management (RFC 9112): keep-alive, pipelining, 100-continue, flow control."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import StartServer
from .harness import Server
from .rawhttp import RawConnection, request

MIB = 1024 * 1024


def test_keep_alive_serves_several_requests_on_one_connection(server: Server) -> None:
    with RawConnection.tcp(server.host, server.port) as conn:
        ports = set()
        for n in range(5):
            conn.send(request("GET", f"/scope?n={n}"))
            response = conn.read_response()
            assert response.status == 200
            assert response.header("connection") is None
            scope = json.loads(response.body)
            assert scope["query_string"] == f"n={n}"
            ports.add(scope["client"][1])
    assert len(ports) == 1


def test_connections_each_see_their_own_client_in_a_complete_scope(server: Server) -> None:
    # The scopes of all connections are copied from one shared base (ServerState.scope_base):
    # each must still carry its own connection's client, and no key left unset.
    with RawConnection.tcp(server.host, server.port) as a, RawConnection.tcp(server.host, server.port) as b:
        for conn in (a, b, a, b):
            conn.send(request("GET", "/scope"))
            scope = json.loads(conn.read_response().body)
            assert scope["client"] == list(conn.sock.getsockname()[:2])
            assert scope["server"] == [server.host, server.port]
            unset = [key for key, kind in scope["types"].items() if kind == "NoneType"]
            assert unset == [], unset
            assert scope["types"]["extensions"] == "dict"


def test_connection_close_is_honoured(server: Server) -> None:
    with RawConnection.tcp(server.host, server.port) as conn:
        conn.send(request("GET", "/", "Connection: close"))
        response = conn.read_response()
        assert response.header("connection") == "close"
        conn.wait_closed(timeout=5)


def test_idle_keep_alive_timeout_closes(start_server: StartServer) -> None:
    running = start_server("--timeout-keep-alive", "0.5")
    with RawConnection.tcp(running.host, running.port) as conn:
        conn.send(request("GET", "/"))
        assert conn.read_response().status == 200
        conn.send(request("GET", "/"))  # still open right after a response
        assert conn.read_response().status == 200
        waited = conn.wait_closed(timeout=5)
    assert 0.3 <= waited <= 2.5


def test_pipelined_requests_answered_in_order(server: Server) -> None:
    with RawConnection.tcp(server.host, server.port) as conn:
        conn.send(
            request("GET", "/sleep?s=0.2")
            + request("POST", "/echo", "Content-Length: 6", body=b"second")
            + request("GET", "/stream?n=2")
        )
        bodies = [conn.read_response().body for _ in range(3)]
    assert bodies == [b"slept", b"second", b"chunk-0\nchunk-1\n"]


def test_expect_100_continue_sent_when_app_reads(server: Server) -> None:
    with RawConnection.tcp(server.host, server.port) as conn:
        conn.send(request("POST", "/echo", "Content-Length: 5", "Expect: 100-continue"))
        interim = conn.read_head()
        assert interim.status == 100
        assert interim.reason == "Continue"
        conn.send(b"hello")
        final = conn.read_response()
    assert (final.status, final.body) == (200, b"hello")


def test_expect_100_continue_not_sent_when_app_does_not_read(server: Server) -> None:
    with RawConnection.tcp(server.host, server.port) as conn:
        conn.send(request("POST", "/no-read", "Content-Length: 5", "Expect: 100-continue"))
        response = conn.read_response()
        assert response.status == 200
        assert response.body == b"answered without reading"
        # The client may still send the body (RFC 9110 §10.1.1): the server must discard it or close.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.send(b"hello" + request("GET", "/", "Connection: close"))
        rest = conn.read_to_eof()
    assert b"100 Continue" not in rest
    assert rest == b"" or (rest.startswith(b"HTTP/1.1 200 ") and rest.endswith(b"\r\n\r\nhello")), rest


def test_http10_request_closes_after_response(server: Server) -> None:
    with RawConnection.tcp(server.host, server.port) as conn:
        conn.send(request("GET", "/", version="1.0", host=False))
        response = conn.read_response()
        assert (response.status, response.body) == (200, b"hello")
        assert response.header("connection") in (None, "close")
        conn.wait_closed(timeout=5)


def test_http10_keep_alive(server: Server) -> None:
    with RawConnection.tcp(server.host, server.port) as conn:
        for _ in range(2):
            conn.send(request("GET", "/", "Connection: keep-alive", version="1.0", host=False))
            response = conn.read_response()
            assert response.body == b"hello"
            assert (response.header("connection") or "").lower() == "keep-alive"


def test_absolute_form_target(server: Server) -> None:
    with RawConnection.tcp(server.host, server.port) as conn:
        conn.send(b"GET http://example.com/p?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n")
        response = conn.read_response()
    scope = json.loads(response.body)
    assert scope["path"] == "/p"
    assert scope["raw_path"] == "/p"
    assert scope["query_string"] == "q=1"


# --- flow control ----------------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return pids
    for child in children:
        pids.extend(_descendants(int(child)))
    return pids


def tree_rss_kib(pid: int) -> int:
    """RSS of a process and all its descendants (squall may run worker processes)."""
    total = 0
    for each in _descendants(pid):
        try:
            with open(f"/proc/{each}/status") as status:
                total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        except (FileNotFoundError, StopIteration):
            continue
    return total


class RSSSampler:
    """Samples the server's RSS in a thread while a transfer runs; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = tree_rss_kib(pid)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, tree_rss_kib(self.pid))

    def __enter__(self) -> RSSSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss_kib(self.pid))


@pytest.fixture
def flow_server(start_server: StartServer) -> Iterator[Server]:
    running = start_server()
    with RawConnection.tcp(running.host, running.port) as conn:  # warm up
        conn.send(
            request("GET", "/big?mib=1") + request("POST", "/slow-read", "Content-Length: 3", body=b"abc")
        )
        conn.read_response()
        conn.read_response()
    yield running


def test_slow_reader_does_not_make_server_buffer_the_response(flow_server: Server) -> None:
    baseline = tree_rss_kib(flow_server.pid)
    with RawConnection.tcp(flow_server.host, flow_server.port, timeout=20, rcvbuf=64 * 1024) as conn:
        conn.send(request("GET", "/big?mib=20", "Connection: close"))
        head = conn.read_head()
        with RSSSampler(flow_server.pid) as sampler:
            while conn.fill():  # read slowly: at most 64 KiB every 3 ms
                time.sleep(0.003)
        received = len(conn.buffer)
        try:
            conn.read_chunked_body(head)
        except EOFError:
            pytest.fail(f"response truncated: the server closed after {received} bytes")
    assert len(head.body) == 20 * MIB
    growth_mib = (sampler.peak - baseline) / 1024
    assert growth_mib < 8, f"server RSS grew by {growth_mib:.1f} MiB while streaming 20 MiB"


def test_slow_app_does_not_make_server_buffer_the_upload(flow_server: Server) -> None:
    baseline = tree_rss_kib(flow_server.pid)
    size = 20 * MIB
    block = b"u" * (256 * 1024)
    with RawConnection.tcp(flow_server.host, flow_server.port, timeout=30) as conn:
        conn.send(request("POST", "/slow-read", f"Content-Length: {size}"))
        with RSSSampler(flow_server.pid) as sampler:
            for _ in range(size // len(block)):
                conn.send(block)
            response = conn.read_response()
    assert json.loads(response.body)["length"] == size
    growth_mib = (sampler.peak - baseline) / 1024
    assert growth_mib < 8, f"server RSS grew by {growth_mib:.1f} MiB while receiving 20 MiB"


def test_keep_alive_timer_does_not_cut_a_response_still_being_written(start_server: StartServer) -> None:
    """The idle timeout starts once the response is on the wire, not when the app finished it."""
    running = start_server("--timeout-keep-alive", "0.3")
    with RawConnection.tcp(running.host, running.port, timeout=20, rcvbuf=64 * 1024) as conn:
        conn.send(request("GET", "/big?mib=8"))
        head = conn.read_head()
        while len(conn.buffer) < 8 * MIB + 128 * 9 + 5 and conn.fill():  # 64 KiB every 10 ms
            time.sleep(0.01)
        received = len(conn.buffer)
        try:
            conn.read_chunked_body(head)
        except EOFError:
            pytest.fail(f"response truncated: the server closed after {received} body bytes")
    assert len(head.body) == 8 * MIB
