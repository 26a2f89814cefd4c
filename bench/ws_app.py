"""The websocket echo app served by every server in ``bench/ws_run.sh`` (plain ASGI 3).

It accepts, then sends every message back as it came (text as text, bytes as bytes); it answers
the lifespan protocol, and HTTP with hello world.
"""

from __future__ import annotations

from bench.apps import Receive, Scope, Send, _lifespan, hello


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Accept and echo every message until the client disconnects."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] == "http":  # the readiness probe of bench/suite.py
        await hello(scope, receive, send)
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


_clients: set[Send] = set()


async def hub(scope: Scope, receive: Receive, send: Send) -> None:
    """Websockets are held (accepted, then idle until they leave); ``GET /broadcast`` sends one
    message to every one of them (one ``send`` after the other, as an app would) and answers with
    their number; any other HTTP request gets ``hello``."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] == "http":
        if scope["path"] != "/broadcast":
            await hello(scope, receive, send)
            return
        for client in list(_clients):
            try:
                await client({"type": "websocket.send", "text": "broadcast"})
            except Exception:  # a client that left meanwhile
                _clients.discard(client)
        body = str(len(_clients)).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    _clients.add(send)
    try:
        while (await receive())["type"] == "websocket.receive":
            pass
    finally:
        _clients.discard(send)
