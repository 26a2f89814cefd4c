"""The lifespan protocol driven with a fake app: the scope it is given and the handshake."""

from __future__ import annotations

import asyncio
from typing import Any

from squall.asgi.lifespan import Lifespan


def test_the_lifespan_scope_names_the_lifespan_spec() -> None:
    """The lifespan spec is at 2.0; "2.5" is the www (http, websocket) spec's version."""
    scopes: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scopes.append(scope)
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return

    async def run() -> None:
        lifespan = Lifespan(app, "on")
        await lifespan.startup()
        await lifespan.shutdown()

    asyncio.run(run())
    (scope,) = scopes
    assert scope["type"] == "lifespan"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.0"}
