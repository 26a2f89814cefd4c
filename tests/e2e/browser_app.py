"""The app headless Chromium exercises in ``test_browser.py``.

``/`` is a blank page (the test drives it with scripts); ``/json`` answers how the request came
(HTTP version, scheme); ``/ws`` says the same as its first message, then echoes; ``/events`` is an
EventSource stream (``n`` events, then it ends; ``n=0``: until the client leaves); ``/stream``
sends chunks that a ReadableStream reads; ``/upload`` answers the body's length and CRC-32;
``/download`` streams ``mib`` MiB of a fixed pattern (``x-crc32`` says its CRC; ``forever=1``
never ends). When a client goes away mid-stream the app says so on stderr (``APP ... gone``).
"""

from __future__ import annotations

import asyncio
import json
import zlib
from typing import Any
from urllib.parse import parse_qsl

from .apps import Receive, Scope, Send, note

CHUNK = 256 * 1024
PAGE = b"<!doctype html><meta charset=utf-8><link rel=icon href='data:,'><title>squall browser test</title>"


def pattern_chunk(index: int) -> bytes:
    """Chunk ``index`` of the download: different bytes per chunk, the same every time."""
    return bytes((index * 7 + n) % 251 for n in range(251)) * (CHUNK // 251) + bytes(CHUNK % 251)


def download_crc(mib: int) -> int:
    crc = 0
    for index in range(mib * 1024 * 1024 // CHUNK):
        crc = zlib.crc32(pattern_chunk(index), crc)
    return crc


def _how(scope: Scope) -> dict[str, Any]:
    return {"http_version": scope["http_version"], "scheme": scope["scheme"]}


async def _respond(send: Send, body: bytes, content_type: bytes, status: int = 200) -> None:
    headers = [(b"content-type", content_type), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _upload(receive: Receive, send: Send) -> None:
    size = crc = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        size += len(body)
        crc = zlib.crc32(body, crc)
        if not message.get("more_body"):
            break
    await _respond(send, json.dumps({"length": size, "crc32": crc}).encode(), b"application/json")


async def _events(receive: Receive, send: Send, count: int) -> None:
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    n = 0
    try:
        while count == 0 or n < count:
            await send({"type": "http.response.body", "body": b"data: event %d\n\n" % n, "more_body": True})
            n += 1
            await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b"event: end\ndata: done\n\n"})
    except OSError:
        note(f"events gone after {n}")


async def _stream(send: Send, count: int) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for n in range(count):
        await send({"type": "http.response.body", "body": b"part %d;" % n, "more_body": True})
        await asyncio.sleep(0.02)
    await send({"type": "http.response.body", "body": b""})


async def _download(send: Send, mib: int, forever: bool) -> None:
    headers = [(b"content-type", b"application/octet-stream"), (b"x-crc32", b"%d" % download_crc(mib))]
    if not forever:
        headers.append((b"content-length", b"%d" % (mib * 1024 * 1024)))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    index = 0
    try:
        while forever or index < mib * 1024 * 1024 // CHUNK:
            await send({"type": "http.response.body", "body": pattern_chunk(index), "more_body": True})
            index += 1
            if forever:
                await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
    except OSError:
        note("download gone")


async def _websocket(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": json.dumps(_how(scope))})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            note(f"websocket gone {message.get('code')}")
            return
        await send({"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "websocket":
        await _websocket(scope, receive, send)
        return
    params = dict(parse_qsl(scope["query_string"].decode()))
    path = scope["path"]
    if path == "/json":
        await _respond(send, json.dumps(_how(scope)).encode(), b"application/json")
    elif path == "/upload":
        await _upload(receive, send)
    elif path == "/events":
        await _events(receive, send, int(params.get("n", "0")))
    elif path == "/stream":
        await _stream(send, int(params.get("n", "10")))
    elif path == "/download":
        await _download(send, int(params.get("mib", "16")), params.get("forever") == "1")
    else:
        await _respond(send, PAGE, b"text/html; charset=utf-8", 200 if path == "/" else 404)
