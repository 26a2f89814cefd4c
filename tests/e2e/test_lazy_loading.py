"""A worker loads websocket support (the ``websockets`` library) and HTTP/2 on first use, not at
startup: an app that only serves HTTP/1.1 never pays their memory (~3.6 MiB) or import time."""

from __future__ import annotations

import json
import sys
from typing import Any

from .conftest import StartServer
from .h2util import H2Client

LATE = ["websockets", "squall.server.websocket", "squall.server.h2websocket", "squall.server.http2"]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """HTTP: which of ``LATE`` the worker has loaded, as JSON. Websocket: accept, then close."""
    if scope["type"] == "http":
        body = json.dumps({name: name in sys.modules for name in LATE}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
    elif scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close"})


def test_websockets_and_http2_load_on_first_use(start_server: StartServer) -> None:
    # Imported here: the server imports this module for its app, which must not load websockets.
    from websockets.sync.client import connect

    server = start_server(app="tests.e2e.test_lazy_loading:app")
    with server.client() as client:
        assert client.get("/").json() == dict.fromkeys(LATE, False)
        with connect(f"ws://{server.host}:{server.port}/"):
            pass
        loaded = client.get("/").json()
    assert loaded["websockets"] and loaded["squall.server.websocket"]
    assert not loaded["squall.server.http2"]
    h2 = H2Client(server.port)
    reply = h2.wait(h2.request("/"))
    h2.close()
    assert json.loads(reply.body)["squall.server.http2"]
