"""The lifespan protocol 2.0: startup/shutdown handshake and the shared ``state`` dict.

How it works
------------
``startup()`` runs the application with a ``lifespan`` scope in its own task and sends
``lifespan.startup``; it returns once the app answers ``.complete`` or ``.failed`` or raises.
``shutdown()`` sends ``lifespan.shutdown`` and waits for the answer. In ``auto`` mode an app
that raises before answering startup is taken not to support lifespan and is served anyway.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from squall.asgi.types import LIFESPAN_ASGI_VERSION, ASGIApp, Message

logger = logging.getLogger("squall.error")


class LifespanFailed(Exception):
    """Startup or shutdown failed; the message is the application's own where it gave one."""


class Lifespan:
    """Drive one application's lifespan. ``mode`` is ``auto``, ``on`` or ``off``."""

    def __init__(self, app: ASGIApp, mode: str = "auto") -> None:
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] = {}
        self.supported = mode != "off"
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._answer: asyncio.Future[Message] | None = None
        self._task: asyncio.Task[None] | None = None
        self._phase = "startup"

    async def startup(self) -> None:
        """Run startup. Raises LifespanFailed if the app reports or raises a failure."""
        if not self.supported:
            return
        loop = asyncio.get_running_loop()
        self._answer = loop.create_future()
        self._task = loop.create_task(self._run())
        await self._inbox.put({"type": "lifespan.startup"})
        message = await self._answer
        self._check(message, "startup")

    async def shutdown(self) -> None:
        """Run shutdown. Raises LifespanFailed if the app reports or raises a failure."""
        if not self.supported or self._task is None or self._task.done():
            return
        self._phase = "shutdown"
        self._answer = asyncio.get_running_loop().create_future()
        await self._inbox.put({"type": "lifespan.shutdown"})
        message = await self._answer
        self._check(message, "shutdown")

    def _check(self, message: Message, phase: str) -> None:
        if message["type"] == f"lifespan.{phase}.failed":
            raise LifespanFailed(message.get("message") or f"lifespan {phase} failed")
        if message["type"] == "error":
            raise LifespanFailed(message["message"])

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": dict(LIFESPAN_ASGI_VERSION), "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            self._app_raised(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            # Returning without answering is how many apps say "no lifespan here" (uvicorn agrees).
            if self._phase == "startup" and self._answer is not None and not self._answer.done():
                log = logger.warning if self.mode == "on" else logger.info
                log("ASGI app returned during lifespan startup; serving without lifespan")
                self.supported = False
            self._answer_with({"type": f"lifespan.{self._phase}.complete"})

    def _app_raised(self, exc: BaseException) -> None:
        if self.mode == "auto" and self._phase == "startup":
            logger.info("ASGI 'lifespan' protocol appears unsupported (%s: %s)", type(exc).__name__, exc)
            self.supported = False
            self._answer_with({"type": "lifespan.startup.complete"})
            return
        logger.error("Exception in 'lifespan' protocol", exc_info=exc)
        self._answer_with({"type": "error", "message": f"{type(exc).__name__}: {exc}"})

    def _answer_with(self, message: Message) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(message)

    async def _receive(self) -> Message:
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        expected = (f"lifespan.{self._phase}.complete", f"lifespan.{self._phase}.failed")
        if message.get("type") not in expected:
            raise RuntimeError(f"unexpected lifespan message {message.get('type')!r} during {self._phase}")
        if message["type"].endswith(".failed"):
            logger.error("lifespan %s failed: %s", self._phase, message.get("message", ""))
        self._answer_with(message)
