"""An app may answer before reading a large upload: the client must still get that answer.

Closing a socket with unread input makes the kernel send RST, which can destroy the response before
the client reads it; squall half-closes and keeps draining input for a moment (lingering close).
"""

from __future__ import annotations

from . import rawhttp
from .harness import Server


def test_response_to_an_unread_upload_reaches_the_client(server: Server) -> None:
    body = b"x" * (16 * 1024 * 1024)
    with server.client() as client:
        for _ in range(3):
            response = client.post("/no-read", content=body)
            assert response.status_code == 200
            assert response.text == "answered without reading"


def test_server_keeps_draining_the_upload_after_answering(server: Server) -> None:
    with rawhttp.RawConnection.tcp(server.host, server.port) as conn:
        conn.send(b"POST /no-read HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n" + b"x" * 1000)
        response = conn.read_response()
        assert response.status == 200
        # The client is still uploading. Without a lingering close these sends hit a closed
        # socket: the first draws an RST and a later one fails with EPIPE/ECONNRESET.
        for _ in range(16):
            conn.send(b"x" * 65536)
        assert conn.read_to_eof() == b""  # then a clean EOF (FIN), not a reset
