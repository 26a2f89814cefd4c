"""ASGI messages: request body delivery, response framing, application errors, disconnects."""

from __future__ import annotations

import hashlib
import socket
import struct
import uuid
from collections.abc import Iterator

import httpx
import pytest

from .conftest import StartServer
from .harness import Server
from .rawhttp import RawConnection, request

ERROR_LINE = r" ERROR "


def chunks_of(data: bytes, size: int) -> Iterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


# --- request body ----------------------------------------------------------------------------


def test_small_body_is_delivered(server: Server) -> None:
    response = httpx.post(server.url + "/body-info", content=b"hello body")
    info = response.json()
    assert info["length"] == 10
    assert info["sha256"] == hashlib.sha256(b"hello body").hexdigest()
    assert info["more_body"][-1] is False


def test_request_without_body_gets_one_empty_message(server: Server) -> None:
    info = httpx.get(server.url + "/body-info").json()
    assert info == {"length": 0, "sha256": hashlib.sha256(b"").hexdigest(), "more_body": [False]}


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_large_body_arrives_in_several_messages(server: Server, chunked: bool) -> None:
    data = bytes(range(256)) * (5 * 4096)  # 5 MiB
    content: bytes | Iterator[bytes] = chunks_of(data, 100_000) if chunked else data
    info = httpx.post(server.url + "/body-info", content=content, timeout=30).json()
    assert info["length"] == len(data)
    assert info["sha256"] == hashlib.sha256(data).hexdigest()
    flags = info["more_body"]
    assert len(flags) > 1, "5 MiB should not be buffered into a single message"
    assert all(flags[:-1]) and flags[-1] is False


def test_chunked_request_body_raw(server: Server) -> None:
    data = request(
        "POST", "/echo", "Transfer-Encoding: chunked", body=b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\n"
    )
    with RawConnection.tcp(server.host, server.port) as conn:
        conn.send(data)
        response = conn.read_response()
    assert response.status == 200
    assert response.body == b"Wikipedia"


def test_chunked_request_body_with_trailers(server: Server) -> None:
    body = b"3\r\nabc\r\n0\r\nX-Trailer: yes\r\n\r\n"
    with RawConnection.tcp(server.host, server.port) as conn:
        conn.send(request("POST", "/echo", "Transfer-Encoding: chunked", body=body))
        conn.send(request("GET", "/"))
        assert conn.read_response().body == b"abc"
        assert conn.read_response().body == b"hello"


def test_content_length_is_honoured(server: Server) -> None:
    """Bytes after Content-Length are the next request, not more body."""
    with RawConnection.tcp(server.host, server.port) as conn:
        conn.send(request("POST", "/echo", "Content-Length: 5", body=b"hello") + request("GET", "/"))
        first = conn.read_response()
        second = conn.read_response()
    assert (first.status, first.body) == (200, b"hello")
    assert (second.status, second.body) == (200, b"hello")


# --- response framing ------------------------------------------------------------------------


def test_streamed_response_is_chunked_on_http11(server: Server) -> None:
    with RawConnection.tcp(server.host, server.port) as conn:
        conn.send(request("GET", "/stream?n=4"))
        response = conn.read_response()
    assert response.header("transfer-encoding") == "chunked"
    assert response.header("content-length") is None
    assert response.body == b"chunk-0\nchunk-1\nchunk-2\nchunk-3\n"


def test_streamed_response_is_close_delimited_on_http10(server: Server) -> None:
    with RawConnection.tcp(server.host, server.port) as conn:
        conn.send(request("GET", "/stream?n=3", version="1.0", host=False))
        response = conn.read_head()
        body = conn.read_to_eof()
    assert response.status == 200
    assert response.header("transfer-encoding") is None
    assert response.header("content-length") is None
    assert body == b"chunk-0\nchunk-1\nchunk-2\n"


def test_single_body_message_gets_content_length(server: Server) -> None:
    response = httpx.get(server.url + "/")
    assert response.headers["content-length"] == "5"
    assert "transfer-encoding" not in response.headers


def test_head_sends_headers_but_no_body(server: Server) -> None:
    with RawConnection.tcp(server.host, server.port) as conn:
        conn.send(request("HEAD", "/fixed") + request("GET", "/fixed"))
        head = conn.read_response(head_request=True)
        get = conn.read_response()
    assert head.status == 200
    assert head.header("content-length") == "11"
    assert head.body == b""
    assert get.body == b"hello world"


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses(server: Server, code: int) -> None:
    with RawConnection.tcp(server.host, server.port) as conn:
        conn.send(request("GET", f"/status?code={code}") + request("GET", "/"))
        response = conn.read_response()
        follow_up = conn.read_response()
    assert response.status == code
    assert response.header("x-status-app") == "1"
    assert response.header("transfer-encoding") is None
    if code == 204:
        assert response.header("content-length") is None
    assert (follow_up.status, follow_up.body) == (200, b"hello"), "body bytes leaked onto the wire"


# --- application errors ----------------------------------------------------------------------


def test_exception_before_start_gives_500_and_traceback(server: Server) -> None:
    mark = server.mark()
    response = httpx.get(server.url + "/raise-before")
    assert response.status_code == 500
    server.wait_for_line(ERROR_LINE, start=mark)
    server.wait_for_line(r"RuntimeError: kaboom-before-start", start=mark)
    server.wait_for_line(r"^Traceback \(most recent call last\)", start=mark)


def test_500_after_an_app_failure_closes_the_connection(server: Server) -> None:
    """As uvicorn: after a failed app the connection's state is unknown, so the 500 closes it."""
    with RawConnection.tcp(server.host, server.port) as conn:
        conn.send(request("GET", "/raise-before"))
        response = conn.read_response()
        assert response.status == 500
        assert response.header_all("connection") == ["close"]
        assert response.header_all("content-length") == [str(len(response.body))]
        assert conn.read_to_eof() == b""


def test_exception_after_start_closes_the_connection(server: Server) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(server.url + "/raise-after")
    with RawConnection.tcp(server.host, server.port) as conn:
        conn.send(request("GET", "/raise-after"))
        head = conn.read_head()
        rest = conn.read_to_eof()
    assert head.status == 200
    assert rest.endswith(b"partial\r\n"), "the response must end without the terminating chunk"


def test_app_returning_without_response_gives_500(server: Server) -> None:
    mark = server.mark()
    assert httpx.get(server.url + "/no-response").status_code == 500
    server.wait_for_line(ERROR_LINE + r".*without starting a response", start=mark)


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("status-str", r"status"),
        ("header-crlf", r"CR|LF|control"),
        ("body-str", r"body"),
        ("body-first", r"http\.response\.start"),
    ],
)
def test_invalid_message_gives_500_and_names_the_problem(server: Server, kind: str, problem: str) -> None:
    mark = server.mark()
    response = httpx.get(server.url + f"/invalid?kind={kind}")
    assert response.status_code == 500
    assert "x-injected" not in response.headers
    server.wait_for_line(ERROR_LINE + r".*invalid message.*(" + problem + ")", start=mark)


def test_body_longer_than_content_length_closes_without_extra_bytes(server: Server) -> None:
    with RawConnection.tcp(server.host, server.port) as conn:
        conn.send(request("GET", "/too-long?split=1"))
        head = conn.read_head()
        rest = conn.read_to_eof()
    assert head.status == 200
    assert head.header("content-length") == "5"
    assert rest == b"01234"


def test_single_message_longer_than_content_length_never_reaches_the_wire(server: Server) -> None:
    mark = server.mark()
    with RawConnection.tcp(server.host, server.port) as conn:
        conn.send(request("GET", "/too-long"))
        data = conn.read_to_eof()
    assert b"56789" not in data
    if data:  # a 500 is fine, a 200 with a truncated body is fine, extra bytes are not
        status_line, _, rest = data.partition(b"\r\n")
        body = rest.partition(b"\r\n\r\n")[2]
        assert status_line.startswith(b"HTTP/1.1 500 ") or body in (b"", b"01234")
    server.wait_for_line(ERROR_LINE + r".*Content-Length", start=mark)


# --- disconnects -----------------------------------------------------------------------------


def wait_report(server: Server, key: str) -> dict[str, object]:
    response = httpx.get(server.url + "/report", params={"id": key, "wait": "5"}, timeout=10)
    assert response.status_code == 200, f"the app never reported {key!r}: {response.text}"
    return response.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("swallow", ["0", "1"], ids=["app-reraises", "app-swallows"])
def test_send_after_disconnect_raises_oserror_not_logged(start_server: StartServer, swallow: str) -> None:
    running = start_server()
    key = uuid.uuid4().hex
    with httpx.stream(
        "GET", running.url + "/stream-until-error", params={"id": key, "swallow": swallow}
    ) as r:
        assert r.status_code == 200
        next(r.iter_raw())
    report = wait_report(running, key)
    assert report["is_oserror"] is True, report
    assert running.stop() == 0
    errors = [line for line in running.lines if " ERROR " in line or "Traceback" in line]
    assert errors == []


@pytest.mark.parametrize("how", ["close", "reset"])
def test_disconnect_reaches_long_poll_app(server: Server, how: str) -> None:
    key = uuid.uuid4().hex
    mark = server.mark()
    conn = RawConnection.tcp(server.host, server.port)
    conn.send(request("GET", f"/long-poll?id={key}"))
    server.wait_for_line(f"APP long-poll waiting {key}", start=mark)
    if how == "reset":
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    assert wait_report(server, key) == {"disconnected": True}
