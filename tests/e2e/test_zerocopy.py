"""``http.response.zerocopysend`` and ``http.response.pathsend`` downloads, byte-exact: sendfile(2)
on plain HTTP/1.1, the read loop over TLS and HTTP/2, ranges, ``more_body``, HEAD, bad messages, and
a client that stops reading."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pathlib
import re
import socket
import struct
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Route

from .conftest import StartServer
from .h2util import Certs, H2Client, certs, https_client
from .harness import Server

__all__ = ["certs"]  # the fixture, for the TLS test

MIB = 1024 * 1024


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/send?path=P[&offset=O][&count=C][&seek=S][&parts=N][&length=L]``: the file at P through
    zerocopysend — ``parts`` messages of ``count`` bytes each from the file's position (after a seek
    to S) when ``parts`` is given, else one message with ``offset``/``count`` as given — then an
    empty final body when ``parts`` is given; ``block=S`` first blocks the event loop S seconds,
    then lets one pass of it run.
    ``/bad``: a file object without a descriptor."""
    if scope["type"] != "http":
        return
    query = {key: values[0] for key, values in parse_qs(scope["query_string"].decode()).items()}
    if "block" in query:  # block the event loop (the client can leave meanwhile unnoticed)
        print("zerocopy app: blocking", file=sys.stderr, flush=True)
        time.sleep(float(query["block"]))
        await asyncio.sleep(0)  # one pass: the loop reads the reset, closes, queues connection_lost
    headers = [(b"content-length", query["length"].encode())] if "length" in query else []
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if scope["path"] == "/bad":
        await send({"type": "http.response.zerocopysend", "file": object()})
        return
    if scope["path"] == "/extensions":
        await send({"type": "http.response.body", "body": ",".join(scope["extensions"]).encode()})
        return
    with open(query["path"], "rb") as file:
        try:
            if "parts" in query:
                file.seek(int(query.get("seek", "0")))
                for _ in range(int(query["parts"])):
                    message = {"type": "http.response.zerocopysend", "file": file, "more_body": True}
                    await send({**message, "count": int(query["count"])})
                await send({"type": "http.response.body", "body": b""})
            else:
                message = {"type": "http.response.zerocopysend", "file": file}
                for key in ("offset", "count"):
                    if key in query:
                        message[key] = int(query[key])
                await send(message)
        except OSError as exc:  # ClientDisconnected is an OSError
            print(f"zerocopy app: {type(exc).__name__}", file=sys.stderr, flush=True)
            raise


def _file_endpoint(request: Any) -> FileResponse:
    return FileResponse(request.query_params["path"])


starlette_app = Starlette(routes=[Route("/download", _file_endpoint)])
APP = "tests.e2e.test_zerocopy:app"


@pytest.fixture(scope="module")
def zc_server() -> Iterator[Server]:
    server = Server(["--http2", "--sendfile", "on"], app=APP).start()  # sendfile(2) on loopback too
    yield server
    server.stop()
    server.kill()


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("zerocopy") / "payload.bin"
    path.write_bytes(os.urandom(MIB))
    return path


def download_digest(client: httpx.Client, url: str, **kwargs: Any) -> tuple[httpx.Response, str, int]:
    digest, size = hashlib.sha256(), 0
    with client.stream("GET", url, **kwargs) as response:
        for chunk in response.iter_bytes():
            digest.update(chunk)
            size += len(chunk)
    return response, digest.hexdigest(), size


def test_zerocopysend_is_advertised(zc_server: Server) -> None:
    with zc_server.client() as client:
        names = client.get("/extensions").text.split(",")
    assert "http.response.zerocopysend" in names and "http.response.pathsend" in names


def test_a_1_mib_file_is_sent_whole_with_its_length(zc_server: Server, payload: pathlib.Path) -> None:
    with zc_server.client() as client:
        response = client.get("/send", params={"path": str(payload)})
    assert response.headers["content-length"] == str(MIB)
    assert "transfer-encoding" not in response.headers
    assert response.content == payload.read_bytes()


def test_a_100_mib_file_arrives_byte_exact(zc_server: Server, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(100):
            block = os.urandom(MIB)
            digest.update(block)
            out.write(block)
    with httpx.Client(base_url=zc_server.url, timeout=60) as client:
        response, got, size = download_digest(client, "/send", params={"path": str(path)})
    assert response.status_code == 200 and response.headers["content-length"] == str(100 * MIB)
    assert size == 100 * MIB and got == digest.hexdigest()


def test_offset_and_count_select_a_range(zc_server: Server, payload: pathlib.Path) -> None:
    with zc_server.client() as client:
        response = client.get("/send", params={"path": str(payload), "offset": 1000, "count": 70000})
    assert response.headers["content-length"] == "70000"
    assert response.content == payload.read_bytes()[1000:71000]


def test_without_offset_the_file_position_is_used_and_advanced(
    zc_server: Server, payload: pathlib.Path
) -> None:
    """Three ``more_body`` messages of 5000 bytes from position 123: one chunked body of the next
    15000 bytes, in order (each message starts where the last one left the file)."""
    with zc_server.client() as client:
        params = {"path": str(payload), "seek": 123, "parts": 3, "count": 5000}
        response = client.get("/send", params=params)
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.content == payload.read_bytes()[123:15123]


def test_more_body_with_the_apps_content_length(zc_server: Server, payload: pathlib.Path) -> None:
    with zc_server.client() as client:
        params = {"path": str(payload), "parts": 2, "count": 4096, "length": 8192}
        response = client.get("/send", params=params)
    assert response.headers["content-length"] == "8192" and "transfer-encoding" not in response.headers
    assert response.content == payload.read_bytes()[:8192]


def test_a_count_past_the_end_of_the_file_closes_the_connection(
    zc_server: Server, payload: pathlib.Path
) -> None:
    """The head promised more than the file holds: the client sees a truncated response, never a
    wrong one, and the error log says why."""
    mark = zc_server.mark()
    with pytest.raises(httpx.RemoteProtocolError), zc_server.client() as client:
        client.get("/send", params={"path": str(payload), "offset": MIB - 10, "count": 100})
    zc_server.wait_for_line(re.compile(r"file ended 90 bytes before the end of the body"), 5, start=mark)


def test_head_gets_the_length_and_no_body(zc_server: Server, payload: pathlib.Path) -> None:
    with zc_server.client() as client:
        response = client.head("/send", params={"path": str(payload)})
        after = client.get("/send", params={"path": str(payload), "count": 10})  # same connection
    assert response.headers["content-length"] == str(MIB) and response.content == b""
    assert after.content == payload.read_bytes()[:10]


def test_a_file_without_descriptor_is_a_500_naming_the_problem(zc_server: Server) -> None:
    mark = zc_server.mark()
    with zc_server.client() as client:
        response = client.get("/bad")
    assert response.status_code == 500
    zc_server.wait_for_line(re.compile(r"'file' of http.response.zerocopysend must be a file"), 5, start=mark)


def test_over_http2(zc_server: Server, payload: pathlib.Path) -> None:
    client = H2Client(zc_server.port)
    whole = client.wait(client.request(f"/send?path={payload}"))
    part = client.wait(client.request(f"/send?path={payload}&offset=5&count=100000"))
    client.close()
    assert whole.status == 200 and whole.header(b"content-length") == str(MIB).encode()
    assert whole.body == payload.read_bytes()
    assert part.body == payload.read_bytes()[5:100005]


def test_over_tls(start_server: StartServer, certs: Certs, payload: pathlib.Path) -> None:
    server = start_server(*certs.args(), app=APP)
    with https_client(server, certs) as client:
        response = client.get("/send", params={"path": str(payload), "offset": 7})
    assert response.content == payload.read_bytes()[7:]


@pytest.mark.parametrize("size", [MIB, 100 * MIB])
def test_starlette_file_response_via_pathsend(
    start_server: StartServer, tmp_path: pathlib.Path, size: int
) -> None:
    path = tmp_path / "download.bin"
    with path.open("wb") as out:
        out.truncate(size)  # sparse: zeros, cheap to make
        out.seek(size // 2)
        out.write(b"middle")
    expected = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(MIB):
            expected.update(block)
    server = start_server(app="tests.e2e.test_zerocopy:starlette_app")
    with httpx.Client(base_url=server.url, timeout=60) as client:
        response, got, received = download_digest(client, "/download", params={"path": str(path)})
    assert response.headers["content-length"] == str(size)
    assert received == size and got == expected.hexdigest()


@pytest.mark.parametrize(
    ("args", "size", "how"),
    [
        ([], 8 * MIB, "by reads"),  # auto: a large file to a client on this host (loopback here)
        ([], 2 * MIB, "with sendfile"),  # auto: a small one, one sendfile call
        (["--sendfile", "off"], 2 * MIB, "by reads"),
        (["--sendfile", "on"], 8 * MIB, "with sendfile"),
    ],
)
def test_sendfile_mode_decides_how_a_file_is_sent(
    start_server: StartServer, tmp_path: pathlib.Path, args: list[str], size: int, how: str
) -> None:
    """Either way the bytes arrive exact; the debug log says which way they went."""
    path = tmp_path / "file.bin"
    data = os.urandom(size)
    path.write_bytes(data)
    server = start_server(*args, "--log-level", "debug", app=APP)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        response, got, received = download_digest(client, "/send", params={"path": str(path)})
    assert response.status_code == 200 and received == size
    assert got == hashlib.sha256(data).hexdigest()
    server.wait_for_line(re.compile(f"sending {size} bytes of a file {how}"), 10)


def test_a_client_gone_before_the_head_is_written_is_no_app_error(
    start_server: StartServer, payload: pathlib.Path
) -> None:
    """The app blocks the loop while the client resets the connection, so writing the head is
    what finds the client gone: the app's send raises ClientDisconnected, nothing is logged as an
    application error, and the server goes on serving."""
    server = start_server("--sendfile", "on", app=APP)
    with socket.socket() as sock:
        sock.connect((server.host, server.port))
        sock.sendall(f"GET /send?path={payload}&block=0.5 HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        server.wait_for_line(re.compile(r"zerocopy app: blocking"), 10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
    server.wait_for_line(re.compile(r"zerocopy app: ClientDisconnected"), 10)
    with server.client() as client:
        assert client.get("/extensions").status_code == 200
    assert not [line for line in server.stderr_lines if "Exception in ASGI application" in line]


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_a_client_that_stops_reading_is_dropped(
    start_server: StartServer, tmp_path: pathlib.Path, mode: str
) -> None:
    """The socket fills and stays full: after --timeout-request-body the connection is aborted,
    the app's send raises ClientDisconnected, and the server goes on serving (sendfile(2) and the
    read loop alike)."""
    path = tmp_path / "big.bin"
    with path.open("wb") as out:
        out.truncate(100 * MIB)
    server = start_server("--timeout-request-body", "0.5", "--sendfile", mode, app=APP)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((server.host, server.port))
        sock.sendall(f"GET /send?path={path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        assert sock.recv(100).startswith(b"HTTP/1.1 200 OK")
        server.wait_for_line(re.compile(r"client stopped reading"), 10)
        server.wait_for_line(re.compile(r"zerocopy app: ClientDisconnected"), 10)
    with server.client() as client:
        assert client.get("/extensions").status_code == 200
