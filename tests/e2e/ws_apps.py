"""ASGI apps for the websocket end-to-end tests (``tests/e2e/test_websocket.py``).

``app`` routes websocket sessions by path; HTTP requests get ``http <path>``. Apps tell the test
what they saw by printing ``APP ...`` lines on stderr, which the harness captures.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def note(text: str) -> None:
    print(f"APP {text}", file=sys.stderr, flush=True)


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            note(f"disconnect {message['code']} {message.get('reason', '')!r}")
            return
        if message.get("text") == "close-me":
            await send({"type": "websocket.close", "code": 4001, "reason": "bye now"})
            after = await receive()
            note(f"after close {after['type']} {after.get('code')}")
            try:
                await send({"type": "websocket.send", "text": "too late"})
            except OSError as exc:
                note(f"send after close raised {type(exc).__name__}")
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def info(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    offered = scope["subprotocols"]
    await send(
        {
            "type": "websocket.accept",
            "subprotocol": offered[0] if offered else None,
            "headers": [(b"x-squall-test", b"yes")],
        }
    )
    shown = {
        key: scope[key]
        for key in ("type", "scheme", "path", "root_path", "http_version", "subprotocols", "extensions")
    }
    shown["raw_path"] = scope["raw_path"].decode()
    shown["query_string"] = scope["query_string"].decode()
    shown["has_client"] = scope["client"] is not None and scope["server"] is not None
    shown["header_names"] = sorted({name.decode() for name, _ in scope["headers"]})
    shown["asgi"] = scope["asgi"]
    await send({"type": "websocket.send", "text": json.dumps(shown)})
    await receive()


async def deny(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send(
        {
            "type": "websocket.http.response.start",
            "status": 401,
            "headers": [(b"content-type", b"text/plain"), (b"x-denied", b"1")],
        }
    )
    await send({"type": "websocket.http.response.body", "body": b"go ", "more_body": True})
    await send({"type": "websocket.http.response.body", "body": b"away"})


async def reject(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.close", "code": 1000})


async def raise_before(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    raise RuntimeError("boom before accept")


async def raise_after(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await receive()
    raise RuntimeError("boom after accept")


async def hold(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    note("holding")
    message = await receive()
    note(f"hold ended {message['type']} {message.get('code')}")


ROUTES = {
    "/echo": echo,
    "/info": info,
    "/deny": deny,
    "/reject": reject,
    "/raise-before": raise_before,
    "/raise-after": raise_after,
    "/hold": hold,
}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "http":
        body = f"http {scope['path']}".encode()
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": body})
        return
    handler = ROUTES.get(scope["path"], echo)
    await handler(scope, receive, send)


async def starlette_endpoint(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol="v1" if "v1" in websocket.scope["subprotocols"] else None)
    name = websocket.path_params["name"]
    async for text in websocket.iter_text():
        await websocket.send_json({"hello": name, "got": text})


starlette_app = Starlette(routes=[WebSocketRoute("/ws/{name}", starlette_endpoint)])
