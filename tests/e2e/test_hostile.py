"""Malformed and hostile input (RFC 9112 §2-§7, RFC 9110 §5, §8.6, §10.1.1): every case gets an
error status, the connection is closed afterwards, and the server keeps serving."""

from __future__ import annotations

import re
import threading
import time

import httpx
import pytest

from .conftest import StartServer
from .harness import Server
from .rawhttp import RawConnection, exchange, request

H = "Host: e2e.test\r\n"
STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) ")


def raw(start_line: str, *fields: str, body: str = "", host: bool = True) -> bytes:
    """A request with CRLF line endings; the Host field is added unless ``host`` is False."""
    lines = [start_line, *([H.strip()] if host else []), *fields]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("latin-1")


CL, TE = "Content-Length", "Transfer-Encoding"
POST = "POST /echo HTTP/1.1"

CORPUS = [
    pytest.param(b"GARBAGE\r\n\r\n", {400}, id="bad-request-line"),
    pytest.param(raw("GET /"), {400}, id="request-line-no-version"),
    pytest.param(raw("GET / HTTP/1.1 extra"), {400}, id="request-line-extra-token"),
    pytest.param(raw("FROB / HTTP/1.1"), {400, 501}, id="unknown-method"),
    pytest.param(raw("get / HTTP/1.1"), {400, 501}, id="lowercase-method"),
    pytest.param(raw("GET / HTTP/1.2"), {400, 505}, id="version-1.2"),
    pytest.param(raw("GET / HTTP/2.0"), {505}, id="version-2.0"),
    pytest.param(raw("GET / HTTP/x.y"), {400}, id="version-garbage"),
    pytest.param(raw("GET ::: HTTP/1.1"), {400}, id="invalid-target"),
    pytest.param(raw("GET / HTTP/1.1", "NoColonHere"), {400}, id="header-without-colon"),
    pytest.param(raw("GET / HTTP/1.1", "X-A : 1"), {400}, id="space-before-colon"),
    pytest.param(raw("GET / HTTP/1.1", "X A: 1"), {400}, id="space-in-header-name"),
    pytest.param(raw("GET / HTTP/1.1", "X-A: a\x00b"), {400}, id="nul-in-header-value"),
    pytest.param(raw("GET / HTTP/1.1", "X-A: a\x01b"), {400}, id="ctl-in-header-value"),
    pytest.param(raw("GET / HTTP/1.1", "X-A: a\rb"), {400}, id="bare-cr-in-header-value"),
    pytest.param(b"GET / HTTP/1.1\nHost: e2e.test\n\n", {400}, id="bare-lf-line-endings"),
    pytest.param(raw("GET / HTTP/1.1", host=False), {400}, id="missing-host-1.1"),
    pytest.param(raw("GET / HTTP/1.1", "Host: other.test"), {400}, id="duplicate-host"),
    pytest.param(raw("GET / HTTP/1.1", "Host: exa mple.test", host=False), {400}, id="invalid-host"),
    pytest.param(raw("GET / HTTP/1.1", "Host: a/b", host=False), {400}, id="invalid-host-slash"),
    pytest.param(raw(POST, f"{CL}: 3", f"{CL}: 4", body="abcd"), {400}, id="conflicting-content-length"),
    pytest.param(raw(POST, f"{CL}: 3", f"{CL}: 3", body="abc"), {400}, id="duplicate-content-length"),
    pytest.param(raw(POST, f"{CL}: 3, 3", body="abc"), {400}, id="content-length-list"),
    pytest.param(raw(POST, f"{CL}: -1"), {400}, id="negative-content-length"),
    pytest.param(raw(POST, f"{CL}: abc"), {400}, id="non-numeric-content-length"),
    pytest.param(raw(POST, f"{CL}: +3", body="abc"), {400}, id="plus-content-length"),
    pytest.param(raw(POST, f"{CL}: 3", f"{TE}: chunked", body="0\r\n\r\n"), {400}, id="cl-and-te"),
    pytest.param(raw(POST, f"{TE}: gzip"), {400}, id="te-gzip-not-final-chunked"),
    pytest.param(raw(POST, f"{TE}: chunked, gzip"), {400}, id="te-chunked-then-gzip"),
    pytest.param(raw(POST, f"{TE}: chunked, chunked", body="0\r\n\r\n"), {400}, id="te-chunked-twice"),
    pytest.param(
        raw(POST, f"{TE}: chunked", f"{TE}: chunked", body="0\r\n\r\n"), {400}, id="te-chunked-two-fields"
    ),
    pytest.param(raw(POST, f"{TE}: gzip, chunked", body="0\r\n\r\n"), {501}, id="te-gzip-chunked"),
    pytest.param(
        raw("POST /echo HTTP/1.0", f"{TE}: chunked", body="3\r\nabc\r\n0\r\n\r\n", host=False),
        {400},
        id="te-on-http-1.0",
    ),
    pytest.param(raw(POST, f"{TE}: chunked", body="zz\r\nabc\r\n0\r\n\r\n"), {400}, id="invalid-chunk-size"),
    pytest.param(
        raw(POST, f"{TE}: chunked", body="f" * 20 + "\r\nabc\r\n"), {400, 413}, id="chunk-size-overflow"
    ),
    pytest.param(raw(POST, f"{TE}: chunked", body="3\r\nabcX0\r\n\r\n"), {400}, id="chunk-missing-crlf"),
    pytest.param(raw("GET /" + "a" * 9000 + " HTTP/1.1"), {414, 431}, id="too-long-url"),
    pytest.param(raw("GET / HTTP/1.1", *(f"X-{n}: v" for n in range(120))), {431}, id="too-many-headers"),
    pytest.param(raw("GET / HTTP/1.1", "X-Big: " + "b" * 70000), {431}, id="too-large-header-block"),
    pytest.param(raw(POST, f"{CL}: 3", "Expect: something-else", body="abc"), {417}, id="unsupported-expect"),
]


def statuses(data: bytes) -> list[int]:
    return [int(code) for code in STATUS_LINE.findall(data)]


@pytest.mark.parametrize(("data", "expected"), CORPUS)
def test_malformed_request_rejected_and_closed(server: Server, data: bytes, expected: set[int]) -> None:
    with RawConnection.tcp(server.host, server.port) as conn:
        conn.send(data)
        response = conn.read_response()
        assert response.status in expected, response
        assert response.header("connection") == "close"
        conn.wait_closed(timeout=5)  # nothing more, then EOF
    assert httpx.get(server.url + "/").text == "hello"


def test_obs_fold_never_reaches_the_app_as_a_line_break(server: Server) -> None:
    """RFC 9112 §5.2: reject with 400 or replace the fold with spaces."""
    data = exchange(
        server.host, server.port, request("GET", "/scope", "X-A: 1", "  folded", "Connection: close")
    )
    assert statuses(data)[0] in (200, 400)
    assert b"\\r\\n" not in data and b"\\n  folded" not in data


SMUGGLING = [
    (
        "cl-te",
        f"POST /echo HTTP/1.1\r\n{H}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        f"GET /smuggled HTTP/1.1\r\n{H}\r\n",
    ),
    (
        "te-cl",
        f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
        f"5c\r\nGET /smuggled HTTP/1.1\r\n{H}Content-Length: 15\r\n\r\nx=1\r\n0\r\n\r\n",
    ),
    (
        "te-space-before-colon",
        f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n"
        f"1\r\nZ\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n{H}\r\n",
    ),
    (
        "te-obfuscated-value",
        f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: xchunked\r\nContent-Length: 4\r\n\r\n"
        f"1\r\nZ\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n{H}\r\n",
    ),
    (
        "te-tab-and-case",
        f"POST /echo HTTP/1.1\r\n{H}Transfer-encoding:\tCHUNKED\r\nContent-Length: 4\r\n\r\n"
        f"1\r\nZ\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n{H}\r\n",
    ),
    (
        "double-content-length",
        f"POST /echo HTTP/1.1\r\n{H}Content-Length: 0\r\nContent-Length: 41\r\n\r\n"
        f"GET /smuggled HTTP/1.1\r\n{H}\r\n",
    ),
]


@pytest.mark.parametrize("payload", [s[1] for s in SMUGGLING], ids=[s[0] for s in SMUGGLING])
def test_smuggling_payload_never_yields_two_responses(server: Server, payload: str) -> None:
    mark = server.mark()
    data = exchange(server.host, server.port, payload.encode())
    assert len(statuses(data)) == 1, data
    assert statuses(data)[0] == 400, data
    assert b"/smuggled" not in data
    httpx.get(server.url + "/after-smuggling")  # its access line proves earlier lines are flushed
    server.wait_for_line(r'"GET /after-smuggling ', start=mark)
    assert not any("/smuggled" in line for line in server.lines[mark:])


# --- timeouts and limits ---------------------------------------------------------------------


def trickle(conn: RawConnection, data: bytes, interval: float, stop: threading.Event) -> None:
    """Send ``data`` one byte at a time until the server hangs up."""
    for byte in data:
        if stop.wait(interval):
            return
        try:
            conn.send(bytes([byte]))
        except OSError:
            return


def test_slowloris_head_is_cut_off_while_others_are_served(start_server: StartServer) -> None:
    running = start_server("--timeout-request-header", "1")
    slow = RawConnection.tcp(running.host, running.port, timeout=10)
    stop = threading.Event()
    started = time.monotonic()
    sender = threading.Thread(
        target=trickle, args=(slow, request("GET", "/", "X-Pad: " + "p" * 60), 0.2, stop)
    )
    sender.start()
    try:
        with running.client() as client:
            assert client.get("/").text == "hello"  # a normal client meanwhile
        data = slow.read_to_eof()
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        sender.join()
        slow.close()
    assert elapsed < 3.0, f"slow head kept the connection open for {elapsed:.1f}s"
    assert elapsed > 0.8
    assert statuses(data) in ([], [408])
    assert httpx.get(running.url + "/").text == "hello"


def test_stalled_request_body_is_cut_off(start_server: StartServer) -> None:
    running = start_server("--timeout-request-body", "1")
    with RawConnection.tcp(running.host, running.port, timeout=10) as conn:
        conn.send(request("POST", "/echo", "Content-Length: 100", body=b"only ten b"))
        started = time.monotonic()
        data = conn.read_to_eof()
        elapsed = time.monotonic() - started
    assert 0.8 < elapsed < 3.0, elapsed
    assert statuses(data) in ([], [408])


def test_limit_concurrency_answers_503(start_server: StartServer) -> None:
    running = start_server("--limit-concurrency", "1")
    with RawConnection.tcp(running.host, running.port) as busy:
        busy.send(request("POST", "/hold?id=busy", "Content-Length: 4"))
        running.wait_for_line("APP hold started busy")
        rejected = httpx.get(running.url + "/")
        assert rejected.status_code == 503
        busy.send(b"done")
        held = busy.read_response()
    assert (held.status, held.body) == (200, b"held:done")
    assert httpx.get(running.url + "/").status_code == 200
