"""Single-process mode: with one worker and nothing that needs a supervisor, squall serves in the
process it was started in (see ``ProcessSettings.supervised`` for what needs one).

Theory of operation
-------------------
``run`` is the worker of :mod:`squall.process.worker` plus what the supervisor would otherwise do for it:
``--pid-file``, ``sd_notify`` (READY/STOPPING/RELOADING, and WATCHDOG from the event loop, so a
blocked loop misses it), startup failures as exit code 3 (the app does not import, its lifespan
startup failed: uvicorn's code) and the signals a terminal or a service manager sends:

=================  ================================================================================
SIGTERM, SIGINT    graceful stop (the worker's drain); a second one stops at once, exit 128+signal
SIGHUP             reload in place (below)
SIGTTIN, SIGTTOU   logged and ignored: scaling needs the supervisor
=================  ================================================================================

A SIGHUP reload first imports the app in a fresh interpreter started with this process's command
line (``CHECK_ONLY_ENV`` makes it import and exit): when that fails the reload is refused and the
running code keeps serving. Otherwise the worker keeps a duplicate of each listening socket, drains
as for a stop (in-flight requests finish, bounded by --timeout-graceful-shutdown), runs lifespan
shutdown, and ``exec``s the same command line with the sockets at fds 3, 4... and LISTEN_FDS /
LISTEN_PID set, as systemd's socket activation would. The PID stays the same (the pid file,
systemd's MAINPID and a container's PID 1 stay right) and the listening sockets are never closed:
a connection arriving while the new image starts waits in the kernel backlog and is served by the
new code. The price, compared with the supervisor's rolling reload, is that pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from squall.asgi.types import ASGIApp
from squall.config import CHECK_ONLY_ENV, Config
from squall.loader import LoadError
from squall.process import malloc, systemd
from squall.process.listeners import duplicate, owned
from squall.process.pidfile import pid_file
from squall.process.spawn import STARTUP_FAILURE
from squall.process.worker import Worker, import_app, loop_factory, repeat
from squall.process.worker import run as run_worker

logger = logging.getLogger("squall.error")

CHECK_TIMEOUT = 120.0  # seconds the reload check may take to import the app
# Ignored until the event loop handles them: by default SIGHUP would end a process that is still
# importing the app (a second ``systemctl reload`` during a reload), SIGTTIN/SIGTTOU suspend it.
# An ignored disposition survives exec, so the new image starts with them ignored too.
UNTIL_SERVING = (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU)


class SingleProcess(Worker):
    """The worker as the whole server: signals, sd_notify and the SIGHUP reload of this module."""

    def __init__(
        self, config: Config, app: ASGIApp, sockets: Sequence[socket.socket], notifier: systemd.Notifier
    ) -> None:
        super().__init__(config, app, sockets)
        self.notifier = notifier
        self.successor: list[socket.socket] | None = None  # the sockets to exec with, on a reload
        self._check: asyncio.Task[None] | None = None

    async def serve(self) -> int:
        """Serve until stopped or reloading; return the exit code (128+signal when forced)."""
        interval = self.notifier.watchdog_interval
        watchdog = None
        if interval:
            ping = lambda: self.notifier.notify("WATCHDOG=1")  # noqa: E731
            watchdog = repeat(asyncio.get_running_loop(), ping, lambda: interval)
        try:
            code = await super().serve()
        finally:
            if watchdog is not None:
                watchdog.cancel()
        return 128 + self.forced_by if code == 0 and self.forced_by else code

    def _signal_handlers(self) -> dict[int, Callable[[int], None]]:
        handlers = super()._signal_handlers()
        handlers[signal.SIGHUP] = self.handle_reload
        handlers[signal.SIGTTIN] = handlers[signal.SIGTTOU] = self.handle_scaling
        return handlers

    def handle_signal(self, signum: int = signal.SIGTERM) -> None:
        """SIGINT/SIGTERM: as in the worker; a stop also cancels a reload under way."""
        logger.info("Received %s", signal.Signals(signum).name)
        if self.successor is not None:
            logger.info("The reload is cancelled: stopping")
            self.notifier.notify("STOPPING=1")
        self._cancel_reload()
        super().handle_signal(signum)

    def handle_scaling(self, signum: int) -> None:
        """SIGTTIN/SIGTTOU: nothing to scale without a supervisor."""
        logger.warning(
            "Received %s: ignored, one process serves; scale with --workers N or --supervisor",
            signal.Signals(signum).name,
        )

    def handle_reload(self, signum: int = signal.SIGHUP) -> None:
        """SIGHUP: check the new code, then drain and exec (see the module docstring)."""
        if self._stop.is_set() or self._check is not None:
            logger.info("Received SIGHUP: ignored, a reload or a stop is under way")
            return
        logger.info("Received SIGHUP: checking that the app imports before reloading")
        self._check = asyncio.get_running_loop().create_task(self._reload())

    async def _reload(self) -> None:
        try:
            failure = await check_app()
        finally:
            self._check = None
        if self._stop.is_set():
            return
        if failure is not None:
            logger.error("Reload refused, the running code keeps serving: %s", failure)
            return
        self.notifier.notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
        self.successor = [duplicate(sock) for sock in self.sockets]
        self._stop.set()

    def _cancel_reload(self) -> None:
        if self._check is not None:
            self._check.cancel()
        for sock in self.successor or ():
            sock.close()
        self.successor = None

    def _last_holder(self, sock: socket.socket) -> bool:
        """A reload hands the sockets to the next image, which goes on accepting on them."""
        return self.successor is None and super()._last_holder(sock)

    def _drain_delay(self) -> float:
        """A reload keeps the listening sockets (nothing is refused): no reason to wait."""
        return 0.0 if self.successor is not None else super()._drain_delay()

    def _on_ready(self, urls: str) -> None:
        super()._on_ready(urls)
        self.notifier.notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS=serving on {urls}")

    def _on_stop(self) -> None:
        if self.successor is None:
            self.notifier.notify("STOPPING=1")
            super()._on_stop()
        else:
            logger.info("Reloading: finishing in-flight requests, then restarting this process in place")


async def check_app() -> str | None:
    """Import the app in a fresh interpreter with this command line: None if it imports, else why not."""
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *sys.orig_argv[1:],
            env={**os.environ, CHECK_ONLY_ENV: "1"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        return f"cannot start {sys.executable}: {exc}"
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), CHECK_TIMEOUT)
    except BaseException as exc:  # timed out, or cancelled by a stop
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        if isinstance(exc, TimeoutError):
            return f"importing the app took more than {CHECK_TIMEOUT:g} s"
        raise
    if process.returncode == 0:
        return None
    errors = [line for line in stderr.decode(errors="replace").splitlines() if line.startswith("squall: ")]
    return errors[-1].removeprefix("squall: error: ") if errors else f"exit code {process.returncode}"


def check_only(config: Config) -> tuple[int, str | None]:
    """What the reload check runs: import the app and exit (0, or 1 with the reason)."""
    try:
        import_app(config)
        loop_factory(config.runtime.loop)  # after --app-dir is on sys.path
    except LoadError as exc:
        return STARTUP_FAILURE, str(exc)
    return 0, None


def run(
    config: Config, sockets: Sequence[socket.socket], app: ASGIApp | None = None
) -> tuple[int, str | None]:
    """Serve in this process until stopped; return the exit code and the failure, if any.

    ``app`` is the app to serve when the caller has it (``squall.run(app)``); by default the
    configured one is imported. On a SIGHUP reload this does not return: the process execs its
    own command line.
    """
    _ignore(UNTIL_SERVING)
    notifier = systemd.Notifier()
    malloc.tune_self()
    with pid_file(config.process.pid_file):
        try:
            app = import_app(config) if app is None else app
            loop_factory(config.runtime.loop)  # after --app-dir is on sys.path
        except LoadError as exc:
            return STARTUP_FAILURE, str(exc)
        server = SingleProcess(config, app, sockets, notifier)
        code = run_worker(server)
        if server.successor is not None:
            _exec(server.successor, notifier)
            return 1, "the reload could not restart the process"
        return code, server.failure


def _exec(sockets: Sequence[socket.socket], notifier: systemd.Notifier) -> None:
    """Replace this process with a fresh run of its command line, handing it ``sockets``."""
    _ignore(UNTIL_SERVING)
    handed = systemd.hand_over(sockets, own=[owned(sock) for sock in sockets])
    env = {**os.environ, **notifier.environ, **handed}
    logger.info("Restarting: the same command line, the same PID, the listening sockets kept")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, sys.orig_argv, env)
    except OSError as exc:
        logger.error("Cannot restart %s: %s", sys.executable, exc)


def _ignore(signals: Sequence[int]) -> None:
    for signum in signals:
        with contextlib.suppress(ValueError):  # not the main thread (embedded): leave them be
            signal.signal(signum, signal.SIG_IGN)
