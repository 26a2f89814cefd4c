"""The app two squall nodes serve behind nginx, in two code versions (``old`` and ``new``).

Every answer names the node (``SQUALL_TEST_NODE`` in its environment) and the code version in
headers, so the load generator can count which node and which code served each request.
``GET /`` is a small text; ``POST /`` reads the body and answers its length and CRC-32, so a
request that reached the app with a cut body is caught too. ``/scope`` shows what a proxied
request looks like to the app (client, scheme, headers); ``/stream`` sends a line, then the
last one once ``/release`` was asked (one worker); ``/ws`` is a websocket echo.
"""

from __future__ import annotations

import asyncio
import json
import os
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def _make(version: bytes) -> App:
    node = os.environ.get("SQUALL_TEST_NODE", "-").encode()
    names = [(b"x-node", node), (b"x-code", version), (b"content-type", b"text/plain")]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        elif scope["type"] == "websocket":
            await _echo_websocket(receive, send)
        elif scope["path"] == "/scope":
            await _answer(send, names, _scope_json(scope))
        elif scope["path"] == "/stream":
            await _stream(send, names)
        elif scope["path"] == "/release":
            _released.set()
            await _answer(send, names, b"released")
        elif scope["method"] == "POST":
            body = await _read(receive)
            await _answer(send, names, b"%d %08x" % (len(body), zlib.crc32(body)))
        else:
            await _answer(send, names, b"hello from " + node + b" " + version)

    return app


async def _read(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


async def _answer(send: Send, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _scope_json(scope: Scope) -> bytes:
    shown = {
        "client": scope.get("client"),
        "scheme": scope["scheme"],
        "http_version": scope["http_version"],
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
    }
    return json.dumps(shown).encode()


_released = asyncio.Event()


async def _stream(send: Send, headers: list[tuple[bytes, bytes]]) -> None:
    """A first line, then the last once ``/release`` is asked: a client can read the first only if
    nothing between it and squall holds the response back."""
    _released.clear()
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
    await _released.wait()
    await send({"type": "http.response.body", "body": b"last\n"})


async def _echo_websocket(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")})
        else:
            return


old = _make(b"old")
new = _make(b"new")
