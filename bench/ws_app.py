"""The websocket echo app served by every server in ``bench/ws_run.sh`` (plain ASGI 3).

It accepts, then sends every message back as it came (text as text, bytes as bytes); it answers
the lifespan protocol and ignores HTTP.
"""

from __future__ import annotations

from bench.apps import Receive, Scope, Send, _lifespan


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Accept and echo every message until the client disconnects."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
