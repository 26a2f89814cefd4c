"""ASGI apps shared by every server in the benchmark.

All apps speak plain ASGI 3 (no framework), so the numbers measure the
server, not a framework. Each app answers the lifespan protocol properly
(startup.complete / shutdown.complete) and ignores other non-HTTP scopes.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Size of the `big` response body and of the POST body in post_1mib.lua.
BIG_SIZE: int = 1024 * 1024
#: 1 MiB body for the `big` app, built once at import time.
BIG_BODY: bytes = bytes(range(256)) * (BIG_SIZE // 256)

HELLO_BODY: bytes = b"Hello, world!"


async def _lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge startup and shutdown; nothing to set up."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI docs hello world (no content-length header)."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": HELLO_BODY})


async def big(scope: Scope, receive: Receive, send: Send) -> None:
    """1 MiB response with content-length."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", str(len(BIG_BODY)).encode("ascii")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": BIG_BODY})


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Read the whole request body and send it back with content-length."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", str(len(body)).encode("ascii")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


#: The streamed response: ``STREAM_CHUNKS`` body messages of ``STREAM_CHUNK`` bytes each
#: (token streaming, server-sent events), no content-length.
STREAM_CHUNKS: int = 100
STREAM_CHUNK: bytes = b"x" * 63 + b"\n"


async def stream(scope: Scope, receive: Receive, send: Send) -> None:
    """100 body messages of 64 bytes, sent back to back (chunked over HTTP/1.1)."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for _ in range(STREAM_CHUNKS - 1):
        await send({"type": "http.response.body", "body": STREAM_CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": STREAM_CHUNK})


# ---------------------------------------------------------------- for bench/suite.py

_served = 0


async def counted(scope: Scope, receive: Receive, send: Send) -> None:
    """``hello`` that counts its requests; at lifespan shutdown each worker process writes
    ``<pid> <count>`` into ``$BENCH_COUNT_DIR`` (how evenly did the requests spread?)."""
    global _served
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        directory = os.environ.get("BENCH_COUNT_DIR")
        if directory:
            with open(os.path.join(directory, str(os.getpid())), "w") as out:
                out.write(f"{os.getpid()} {_served}\n")
        return
    _served += 1
    await hello(scope, receive, send)
