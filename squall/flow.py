"""Write back-pressure shared by the connection protocols: the coroutines waiting in ``drain()``."""

from __future__ import annotations

import asyncio


class DrainWaiters:
    """Coroutines waiting until the transport accepts more output (``resume_writing``)."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    async def wait(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait for the next ``wake()``; raises what ``wake`` was given."""
        waiter = loop.create_future()
        self._waiters.append(waiter)
        await waiter

    def wake(self, exc: Exception | None = None) -> None:
        """Release every waiter: normally, or with ``exc`` (the connection is gone)."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)
