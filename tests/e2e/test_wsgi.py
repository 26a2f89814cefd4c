"""WSGI applications served by a real squall process (``--interface wsgi`` and auto-detection).

The WSGI apps live in this module (the server imports ``tests.e2e.test_wsgi:<name>``).
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from .conftest import StartServer
from .harness import Server

Environ = dict[str, Any]
CHUNK = 64 * 1024

try:  # Flask is optional: the Flask tests are skipped without it.
    import flask
except ImportError:  # pragma: no cover
    flask = None  # type: ignore[assignment]


# --- a plain PEP 3333 application -------------------------------------------------------------


def _respond(
    start_response: Any, body: bytes, status: str = "200 OK", ctype: str = "text/plain"
) -> list[bytes]:
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def _big(mib: int) -> Iterator[bytes]:
    for n in range(mib * 1024 * 1024 // CHUNK):
        yield bytes([n % 256]) * CHUNK  # a fresh object per chunk


class _Closing:
    """A response iterable that reports ``close()`` on the server's stderr."""

    def __init__(self, chunks: Iterable[bytes], tag: str) -> None:
        self._chunks = iter(chunks)
        self._tag = tag

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        print(f"APP closed {self._tag}", file=sys.stderr, flush=True)


def wsgi_app(environ: Environ, start_response: Any) -> Iterable[bytes]:
    """A router over PATH_INFO, in plain PEP 3333."""
    path = environ["PATH_INFO"]
    params = dict(parse_qsl(environ["QUERY_STRING"]))
    stream = environ["wsgi.input"]
    if path == "/":
        return _respond(start_response, b"hello from wsgi")
    if path == "/environ":
        shown = {k: v if isinstance(v, str) else repr(v) for k, v in environ.items()}
        return _respond(start_response, json.dumps(shown).encode(), ctype="application/json")
    if path == "/echo":
        return _respond(start_response, stream.read(), ctype=environ.get("CONTENT_TYPE", "text/plain"))
    if path == "/body-info":
        digest, total, reads = hashlib.sha256(), 0, 0
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            total += len(chunk)
            reads += 1
        info = {"length": total, "sha256": digest.hexdigest(), "reads": reads}
        return _respond(start_response, json.dumps(info).encode(), ctype="application/json")
    if path == "/lines":
        lines = [line.decode().rstrip("\n").upper() for line in stream]
        return _respond(start_response, json.dumps(lines).encode(), ctype="application/json")
    if path == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _Closing(_big(int(params.get("mib", "8"))), params.get("tag", "big"))
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written,")
        return [b"returned"]
    if path == "/raise":
        raise RuntimeError("wsgi-kaboom-before-start")
    if path == "/raise-late":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _Closing(_fail_after(b"partial"), params.get("tag", "late"))
    if path == "/hang":  # stuck in application code for a minute
        print("APP hanging", file=sys.stderr, flush=True)
        threading.Event().wait(60)
        return _respond(start_response, b"too late")
    if path == "/errors":
        environ["wsgi.errors"].write("APP-wsgi-errors-line\n")
        return _respond(start_response, b"logged")
    return _respond(start_response, b"not found", status="404 Not Found")


def _fail_after(first: bytes) -> Iterator[bytes]:
    yield first
    raise RuntimeError("wsgi-kaboom-after-start")


# --- a Flask application ----------------------------------------------------------------------

if flask is not None:
    flask_app = flask.Flask("squall_e2e_wsgi")

    @flask_app.get("/hello/<name>")
    def flask_hello(name: str) -> str:
        return f"hello {name} from flask at {flask.request.script_root}{flask.request.path}"

    @flask_app.post("/json")
    def flask_json() -> Any:
        data = flask.request.get_json()
        return {"received": data, "method": flask.request.method}

    @flask_app.post("/form")
    def flask_form() -> Any:
        upload = flask.request.files["file"]
        content = upload.read()
        return {"field": flask.request.form["field"], "size": len(content), "name": upload.filename}

    @flask_app.get("/stream")
    def flask_stream() -> Any:
        def generate() -> Iterator[str]:
            for n in range(5):
                yield f"line {n}\n"

        return flask.Response(flask.stream_with_context(generate()), mimetype="text/plain")

    @flask_app.get("/boom")
    def flask_boom() -> str:
        raise ValueError("flask-kaboom")

    @flask_app.get("/cookies")
    def flask_cookies() -> Any:
        response = flask.jsonify(dict(flask.request.cookies))
        response.set_cookie("set-by", "flask")
        return response


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wsgi_server() -> Iterator[Server]:
    running = Server(["--interface", "wsgi"], app="tests.e2e.test_wsgi:wsgi_app").start()
    try:
        yield running
    finally:
        running.stop()
        running.kill()


# --- the plain app -------------------------------------------------------------------------------


def test_hello(wsgi_server: Server) -> None:
    with wsgi_server.client() as client:
        response = client.get("/")
    assert response.status_code == 200
    assert response.text == "hello from wsgi"
    assert response.headers["content-length"] == "15"
    assert response.headers["content-type"] == "text/plain"


def test_keep_alive_and_sequential_requests(wsgi_server: Server) -> None:
    with wsgi_server.client() as client:
        texts = [client.get("/").text for _ in range(20)]
    assert texts == ["hello from wsgi"] * 20


def test_environ(wsgi_server: Server) -> None:
    with wsgi_server.client() as client:
        response = client.get(
            "/environ", params={"q": "é"}, headers={"X-Thing": "1", "Cookie": "a=1"}, cookies=None
        )
    environ = response.json()
    assert environ["REQUEST_METHOD"] == "GET"
    assert environ["PATH_INFO"] == "/environ"
    assert environ["SCRIPT_NAME"] == ""
    assert environ["QUERY_STRING"] == "q=%C3%A9"
    assert environ["SERVER_NAME"] == wsgi_server.host
    assert environ["SERVER_PORT"] == str(wsgi_server.port)
    assert environ["REMOTE_ADDR"] == "127.0.0.1"
    assert environ["REMOTE_PORT"].isdigit()
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["HTTP_HOST"] == f"{wsgi_server.host}:{wsgi_server.port}"
    assert environ["HTTP_X_THING"] == "1"
    assert environ["HTTP_COOKIE"] == "a=1"
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.version"] == "(1, 0)"
    assert environ["wsgi.multithread"] == "True"


def test_post_echo(wsgi_server: Server) -> None:
    with wsgi_server.client() as client:
        response = client.post("/echo", content=b"ping \x00\xff pong", headers={"Content-Type": "x/y"})
    assert response.status_code == 200
    assert response.content == b"ping \x00\xff pong"
    assert response.headers["content-type"] == "x/y"


def test_large_upload_is_streamed(wsgi_server: Server) -> None:
    """A chunked 16 MiB upload (no Content-Length) arrives whole, read 64 KiB at a time."""
    payload = bytes(range(256)) * (16 * 4096)

    def body() -> Iterator[bytes]:
        for offset in range(0, len(payload), 100_000):
            yield payload[offset : offset + 100_000]

    with wsgi_server.client() as client:
        info = client.post("/body-info", content=body()).json()
    assert info["length"] == len(payload)
    assert info["sha256"] == hashlib.sha256(payload).hexdigest()
    assert info["reads"] == len(payload) // CHUNK


def test_readline_iteration(wsgi_server: Server) -> None:
    with wsgi_server.client() as client:
        response = client.post("/lines", content=b"one\ntwo\nthree")
    assert response.json() == ["ONE", "TWO", "THREE"]


def test_large_streamed_response(wsgi_server: Server) -> None:
    """128 MiB from a generator: streamed (chunked), not buffered whole by the server."""
    mark = wsgi_server.mark()
    baseline = wsgi_server.rss_kib()
    total = 0
    peak = baseline
    digest = hashlib.sha256()
    with wsgi_server.client() as client, client.stream("GET", "/big", params={"mib": "128"}) as response:
        assert response.status_code == 200
        assert response.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in response.headers
        for index, chunk in enumerate(response.iter_bytes(CHUNK)):
            digest.update(chunk)
            total += len(chunk)
            if index % 256 == 0:
                peak = max(peak, wsgi_server.rss_kib())
    assert total == 128 * 1024 * 1024
    expected = hashlib.sha256(b"".join(bytes([n % 256]) * CHUNK for n in range(256)) * 8).hexdigest()
    assert digest.hexdigest() == expected
    assert peak - baseline < 48 * 1024, f"server RSS grew by {peak - baseline} KiB"
    wsgi_server.wait_for_line(r"APP closed big", start=mark)


def test_client_gone_mid_response_closes_iterable(wsgi_server: Server) -> None:
    mark = wsgi_server.mark()
    with (
        wsgi_server.client() as client,
        client.stream("GET", "/big", params={"mib": "512", "tag": "gone"}) as r,
    ):
        next(r.iter_bytes(CHUNK))
    # The client closed the connection; the server's next send fails and close() is still called.
    wsgi_server.wait_for_line(r"APP closed gone", start=mark)
    with wsgi_server.client() as client:
        assert client.get("/").status_code == 200


def test_write_callable(wsgi_server: Server) -> None:
    with wsgi_server.client() as client:
        response = client.get("/write")
    assert response.text == "written,returned"


def test_head(wsgi_server: Server) -> None:
    with wsgi_server.client() as client:
        response = client.head("/")
    assert response.status_code == 200
    assert response.headers["content-length"] == "15"
    assert response.content == b""


def test_exception_before_output_is_500(wsgi_server: Server) -> None:
    mark = wsgi_server.mark()
    with wsgi_server.client() as client:
        response = client.get("/raise")
        assert response.status_code == 500
        assert client.get("/").status_code == 200  # the connection and the server carry on
    wsgi_server.wait_for_line(r"wsgi-kaboom-before-start", start=mark)


def test_exception_after_output_aborts_the_connection(wsgi_server: Server) -> None:
    mark = wsgi_server.mark()
    with wsgi_server.client() as client, pytest.raises(httpx.HTTPError):
        response = client.get("/raise-late")
        response.raise_for_status()
    wsgi_server.wait_for_line(r"APP closed late", start=mark)
    wsgi_server.wait_for_line(r"wsgi-kaboom-after-start", start=mark)


def test_wsgi_errors_reach_the_log(wsgi_server: Server) -> None:
    mark = wsgi_server.mark()
    with wsgi_server.client() as client:
        assert client.get("/errors").text == "logged"
    wsgi_server.wait_for_line(r"ERROR APP-wsgi-errors-line", start=mark)


def test_websocket_upgrade_refused(wsgi_server: Server) -> None:
    """WSGI has no WebSockets: the adapter closes the handshake, which squall answers with 403."""
    request = (
        b"GET / HTTP/1.1\r\nHost: e2e.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection((wsgi_server.host, wsgi_server.port), timeout=10) as sock:
        sock.sendall(request)
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 403 ")


def test_404(wsgi_server: Server) -> None:
    with wsgi_server.client() as client:
        response = client.get("/nowhere")
    assert response.status_code == 404


# --- auto-detection and root_path -----------------------------------------------------------------


def test_auto_detected_with_root_path(start_server: StartServer) -> None:
    server = start_server("--root-path", "/mount", app="tests.e2e.test_wsgi:wsgi_app")
    with server.client() as client:
        assert client.get("/").text == "hello from wsgi"
        # squall's root_path follows uvicorn: the proxy strips the prefix, the scope puts it back.
        environ = client.get("/environ").json()
    assert environ["SCRIPT_NAME"] == "/mount"
    assert environ["PATH_INFO"] == "/environ"


def test_call_stuck_in_app_code_does_not_hold_up_shutdown(start_server: StartServer) -> None:
    """After the graceful timeout the worker exits although a WSGI thread is still busy."""
    server = start_server(
        "--interface", "wsgi", "--timeout-graceful-shutdown", "1", app="tests.e2e.test_wsgi:wsgi_app"
    )
    outcome: list[str] = []

    def request() -> None:
        try:
            httpx.get(server.url + "/hang", timeout=30)
        except httpx.HTTPError as exc:
            outcome.append(type(exc).__name__)

    client = threading.Thread(target=request)
    client.start()
    server.wait_for_line(r"APP hanging")
    assert server.stop(timeout=8) == 0
    client.join(10)
    assert outcome == ["RemoteProtocolError"]
    assert "did not stop in time" not in server.log()


# --- Flask ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flask_server() -> Iterator[Server]:
    if flask is None:
        pytest.skip("flask is not installed")
    running = Server(app="tests.e2e.test_wsgi:flask_app").start()
    try:
        yield running
    finally:
        running.stop()
        running.kill()


def test_flask_routes(flask_server: Server) -> None:
    with flask_server.client() as client:
        assert client.get("/hello/squall").text == "hello squall from flask at /hello/squall"
        response = client.post("/json", json={"a": [1, 2], "é": None})
        assert response.json() == {"received": {"a": [1, 2], "é": None}, "method": "POST"}
        assert client.get("/missing").status_code == 404
        assert client.post("/hello/x").status_code == 405


def test_flask_multipart_upload(flask_server: Server) -> None:
    content = b"\x00\x01" * 300_000
    with flask_server.client() as client:
        response = client.post("/form", data={"field": "value"}, files={"file": ("data.bin", content)})
    assert response.json() == {"field": "value", "size": len(content), "name": "data.bin"}


def test_flask_streaming_response(flask_server: Server) -> None:
    with flask_server.client() as client:
        response = client.get("/stream")
    assert response.text == "".join(f"line {n}\n" for n in range(5))
    assert response.headers["transfer-encoding"] == "chunked"


def test_flask_error_and_cookies(flask_server: Server) -> None:
    mark = flask_server.mark()
    with flask_server.client() as client:
        assert client.get("/boom").status_code == 500
        client.cookies.set("a", "1")
        client.cookies.set("b", "2")
        response = client.get("/cookies")
    assert response.json() == {"a": "1", "b": "2"}
    assert response.cookies["set-by"] == "flask"
    # Flask logs the exception through wsgi.errors, which goes to squall's error log.
    flask_server.wait_for_line(r"flask-kaboom", start=mark)
