"""The ASGI HTTP extensions over HTTP/1.1: early hints (103), trailers, pathsend (and Starlette's
FileResponse, which uses pathsend when the server advertises it)."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Route

from . import rawhttp
from .conftest import StartServer
from .harness import Server

PAYLOAD = bytes(range(256)) * 2048  # 512 KiB


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The extension routes; the path of the file to send comes in the query string."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/extensions":
        body = ",".join(sorted(scope.get("extensions", {}))).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
    elif path == "/hint":
        await send({"type": "http.response.early_hint", "links": [b"</style.css>; rel=preload; as=style"]})
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"hinted"})
    elif path == "/trailers":
        headers = [(b"trailer", b"x-checksum")]
        await send({"type": "http.response.start", "status": 200, "headers": headers, "trailers": True})
        await send({"type": "http.response.body", "body": b"part one, ", "more_body": True})
        await send({"type": "http.response.body", "body": b"part two"})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc123")]})
    elif path == "/push":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if "http.response.push" in scope.get("extensions", {}):
            await send(
                {"type": "http.response.push", "path": "/pushed", "headers": [(b"accept", b"text/plain")]}
            )
        await send({"type": "http.response.body", "body": b"parent"})
    elif path == "/pushed":
        accept = dict(scope["headers"]).get(b"accept", b"")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"pushed, accept=" + accept})
    elif path == "/file":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": scope["query_string"].decode()})


def _file_endpoint(request: Any) -> FileResponse:
    return FileResponse(request.query_params["path"])


starlette_app = Starlette(routes=[Route("/download", _file_endpoint)])


@pytest.fixture(scope="module")
def ext_server() -> Any:
    server = Server([], app="tests.e2e.test_extensions:app").start()
    yield server
    server.stop()
    server.kill()


def test_extensions_are_advertised(ext_server: Server) -> None:
    with ext_server.client() as client:
        names = client.get("/extensions").text.split(",")
    assert {"http.response.early_hint", "http.response.trailers", "http.response.pathsend"} <= set(names)


def test_early_hint_arrives_before_the_response(ext_server: Server) -> None:
    with rawhttp.RawConnection.tcp(ext_server.host, ext_server.port) as conn:
        conn.send(b"GET /hint HTTP/1.1\r\nHost: t\r\n\r\n")
        hint = conn.read_response()
        final = conn.read_response()
    assert hint.status == 103 and hint.header("link") == "</style.css>; rel=preload; as=style"
    assert final.status == 200 and final.body == b"hinted"


@pytest.mark.parametrize("te", [True, False])
def test_trailers_follow_the_chunked_body(ext_server: Server, te: bool) -> None:
    te_header = b"TE: trailers\r\n" if te else b""
    with rawhttp.RawConnection.tcp(ext_server.host, ext_server.port) as conn:
        conn.send(b"GET /trailers HTTP/1.1\r\nHost: t\r\n" + te_header + b"\r\n")
        response = conn.read_response()
    assert response.body == b"part one, part two"
    assert (("x-checksum", "abc123") in response.trailers) is te


def test_pathsend_serves_the_file(ext_server: Server, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "payload.bin"
    path.write_bytes(PAYLOAD)
    with ext_server.client() as client:
        response = client.get(f"/file?{path}")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(PAYLOAD))
    assert response.content == PAYLOAD


def test_starlette_file_response(start_server: StartServer, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "page.txt"
    path.write_bytes(b"served by pathsend\n" * 1000)
    server = start_server(app="tests.e2e.test_extensions:starlette_app")
    with server.client() as client:
        response = client.get("/download", params={"path": str(path)})
    assert response.status_code == 200
    assert response.content == path.read_bytes()


def test_trailers_and_early_hints_over_http2(ext_server: Server) -> None:
    from .h2util import H2Client

    client = H2Client(ext_server.port)
    trailers_sid = client.request("/trailers", headers=[(b"te", b"trailers")])
    hint_sid = client.request("/hint")
    trailers, hint = client.wait(trailers_sid), client.wait(hint_sid)
    client.close()
    assert trailers.body == b"part one, part two"
    assert (b"x-checksum", b"abc123") in trailers.trailers
    assert hint.informational and (b"link", b"</style.css>; rel=preload; as=style") in hint.informational[0]
    assert hint.status == 200 and hint.body == b"hinted"


@pytest.mark.parametrize("client_allows_push", [True, False])
def test_server_push_over_http2(ext_server: Server, client_allows_push: bool) -> None:
    import h2.events
    import h2.settings

    from .h2util import H2Client

    client = H2Client(ext_server.port)
    client.conn.update_settings({h2.settings.SettingCodes.ENABLE_PUSH: int(client_allows_push)})
    client.flush()
    parent = client.wait(client.request("/push"))
    assert parent.status == 200 and parent.body == b"parent"
    promised = [e for e in client.events if isinstance(e, h2.events.PushedStreamReceived)]
    if not client_allows_push:
        assert not promised
        client.close()
        return
    assert len(promised) == 1 and (b":path", b"/pushed") in promised[0].headers
    pushed = client.wait(promised[0].pushed_stream_id)
    client.close()
    assert pushed.status == 200 and pushed.body == b"pushed, accept=text/plain"
