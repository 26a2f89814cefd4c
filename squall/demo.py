"""The demo app served by ``squall`` with no arguments: a page showing the request scope, and a
streaming endpoint (``/stream``) that sends a line every 100 ms."""

from __future__ import annotations

import asyncio
import html
import json

from squall.asgi.types import Receive, Scope, Send

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>squall demo</title></head>
<body><h1>Hello from squall</h1>
<p>This page shows the ASGI scope of your request. Try <a href="/stream">/stream</a>.</p>
<pre>{scope}</pre></body></html>
"""


def _scope_view(scope: Scope) -> str:
    shown = {key: value for key, value in scope.items() if key not in ("state",)}
    shown["headers"] = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
    for key in ("raw_path", "query_string"):
        shown[key] = scope[key].decode("latin-1")
    return json.dumps(shown, indent=2, default=str)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI entry point of the demo."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] != "http":
        return
    if scope["path"] == "/stream":
        await _stream(send)
        return
    body = _PAGE.format(scope=html.escape(_scope_view(scope))).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200 if scope["path"] == "/" else 404,
            "headers": [(b"content-type", b"text/html; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _stream(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for n in range(10):
        await send({"type": "http.response.body", "body": f"line {n}\n".encode(), "more_body": True})
        await asyncio.sleep(0.1)
    await send({"type": "http.response.body", "body": b""})
