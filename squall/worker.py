"""One serving process: event loop, listener, lifespan, serve until told to stop, drain.

How it works
------------
``serve()`` runs lifespan startup, starts the asyncio server on the already-bound socket, logs the
URL and waits for SIGINT/SIGTERM (signal handlers only set a flag). Shutdown is graceful: stop
accepting, close idle connections, let in-flight requests finish for up to
``--timeout-graceful-shutdown`` (a second signal cuts the wait short), then cancel what is left
and run lifespan shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Callable
from email.utils import formatdate

from squall import __version__
from squall.asgi.lifespan import Lifespan, LifespanFailed
from squall.asgi.types import ASGIApp
from squall.config import Config
from squall.connection import HTTP1Connection, ServerState
from squall.listeners import describe

logger = logging.getLogger("squall.error")


class DefaultHeaders:
    """The header block every response starts with; the Date refreshes once a second."""

    def __init__(self, server: bool, date: bool, extra: list[tuple[str, str]]) -> None:
        static = b"server: squall\r\n" if server else b""
        for name, value in extra:
            static += name.encode("latin-1") + b": " + value.encode("latin-1") + b"\r\n"
        self._static = static
        self._date = date
        self.block = static
        self.refresh()

    def refresh(self) -> None:
        if self._date:
            self.block = b"date: " + formatdate(usegmt=True).encode("ascii") + b"\r\n" + self._static

    def get(self) -> bytes:
        return self.block


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """An event loop of the configured kind (``auto`` prefers uvloop)."""
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class Worker:
    """Serve ``app`` on ``sock`` until a signal says stop."""

    def __init__(self, config: Config, app: ASGIApp, sock: socket.socket) -> None:
        self.config = config
        self.app = app
        self.sock = sock
        self.lifespan = Lifespan(app, config.app.lifespan)
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._signals = 0

    def handle_signal(self) -> None:
        """SIGINT/SIGTERM: the first asks for a graceful stop, the next for an immediate one."""
        self._signals += 1
        self._stop.set()
        if self._signals > 1:
            self._force.set()

    async def serve(self) -> int:
        """Run until stopped; return the process exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.handle_signal)
        try:
            await self.lifespan.startup()
        except LifespanFailed as exc:
            logger.error("Application startup failed: %s", exc)
            return 3
        headers = DefaultHeaders(
            self.config.http.server_header, self.config.http.date_header, self.config.http.header
        )
        state = ServerState(
            self.config,
            self.app,
            loop,
            headers.get,
            self.lifespan.state if self.lifespan.supported else {},
        )
        ticker = _every_second(loop, headers.refresh)
        server = await loop.create_server(
            lambda: HTTP1Connection(state), sock=self.sock, backlog=self.config.socket.backlog
        )
        logger.info("Squall %s running on %s (press CTRL+C to quit)", __version__, describe(self.sock))
        await self._stop.wait()
        logger.info("Shutting down")
        await self._drain(server, state)
        ticker.cancel()
        try:
            await self.lifespan.shutdown()
        except LifespanFailed as exc:
            logger.error("Application shutdown failed: %s", exc)
            return 3
        logger.info("Finished server process")
        return 0

    async def _drain(self, server: asyncio.Server, state: ServerState) -> None:
        state.shutting_down = True
        server.close()
        for connection in list(state.connections):
            connection.shutdown()
        timeout = self.config.runtime.timeout_graceful_shutdown
        deadline = None if timeout is None else time.monotonic() + timeout
        while (state.connections or state.active_requests) and not self._force.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                logger.warning(
                    "Graceful shutdown timed out; closing %d connection(s)", len(state.connections)
                )
                break
            await asyncio.sleep(0.05)
        for connection in list(state.connections):
            if connection.transport is not None:
                connection.transport.abort()
        pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        lifespan_task = getattr(self.lifespan, "_task", None)
        pending = [task for task in pending if task is not lifespan_task]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)


def _every_second(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> asyncio.TimerHandle:
    """Call ``callback`` at the start of every wall-clock second; returns a cancellable handle."""

    class Ticker:
        handle: asyncio.TimerHandle

        def tick(self) -> None:
            callback()
            self.handle = loop.call_later(1.0 - (time.time() % 1.0), self.tick)

        def cancel(self) -> None:
            self.handle.cancel()

    ticker = Ticker()
    ticker.handle = loop.call_later(1.0 - (time.time() % 1.0), ticker.tick)
    return ticker  # type: ignore[return-value]


def run(config: Config, app: ASGIApp, sock: socket.socket) -> int:
    """Serve in this process on a fresh event loop; return the exit code."""
    loop = new_event_loop(config.runtime.loop)
    with asyncio.Runner(loop_factory=lambda: loop) as runner:
        return runner.run(Worker(config, app, sock).serve())
