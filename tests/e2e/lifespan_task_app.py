"""An app with the common lifespan pattern: startup starts a background task, shutdown stops it.

It says on stderr how the task ended (``APP task <pid> stopped by shutdown`` or ``... cancelled
before shutdown``), and ``/hang`` is a request that never finishes by itself (``APP request
<pid> cancelled`` when squall gives up on it after the grace period); ``/slow`` takes half a
second, ``/block`` blocks the event loop. Other paths answer with the worker's pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from typing import Any


def note(text: str) -> None:
    print(f"APP {text}", file=sys.stderr, flush=True)


async def lifespan(receive: Any, send: Any) -> None:
    await receive()  # lifespan.startup
    stop = asyncio.Event()

    async def heartbeat() -> str:
        try:
            await stop.wait()
        except asyncio.CancelledError:
            note(f"task {os.getpid()} cancelled before shutdown")
            raise
        return "stopped by shutdown"

    task = asyncio.create_task(heartbeat())
    await send({"type": "lifespan.startup.complete"})
    await receive()  # lifespan.shutdown
    stop.set()
    with contextlib.suppress(asyncio.CancelledError):
        note(f"task {os.getpid()} {await task}")
    await send({"type": "lifespan.shutdown.complete"})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["path"] == "/hang":
        note(f"request {os.getpid()} hanging")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            note(f"request {os.getpid()} cancelled")
            raise
    if scope["path"] == "/slow":
        note(f"request {os.getpid()} slow")
        await asyncio.sleep(0.5)
    if scope["path"] == "/block":
        note(f"request {os.getpid()} blocking the event loop")
        time.sleep(30)  # a blocked loop: a supervisor's health check must notice
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
