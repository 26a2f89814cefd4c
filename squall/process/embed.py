"""The Python API: ``squall.run(app, **options)``, ``squall.Config(app, **options)``, ``squall.Server``.

Options are the command line's, by their Python names (``port=8000``, ``log_level="debug"``,
``forwarded_allow_ips="10.0.0.0/8"``), plus ``uvicorn.run``'s spellings where they differ
(``reload_dirs``, ``reload_includes``, ``reload_excludes``, ``headers``). A value is given as
Python (``port=0``, ``access_log=False``, ``ws_ping_interval=None``) or as the text the flag takes;
a bad one raises ``squall.config.OptionError`` naming the option, an unknown name ``TypeError``.

``run`` is the ``squall`` command in a function: it blocks until the server stops, with the same
processes (one, or a supervisor and workers), signals and exit codes. ``Server`` serves inside an
event loop that the caller runs (a test fixture, a program that embeds a web server); stopping it
touches none of the caller's tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from squall import config
from squall.asgi.types import ASGIApp
from squall.config import CHECK_ONLY_ENV, OptionError
from squall.loader import LoadError, load_app, load_env_file, prepare_app
from squall.logs import LEVELS, LogConfigError, configure
from squall.process import single
from squall.process.listeners import BindError, bind, bind_all, reuse_port_conflict
from squall.process.spawn import STARTUP_FAILURE
from squall.process.supervisor import Supervisor
from squall.process.worker import Worker, new_event_loop
from squall.server.tls import TLSConfigError, create_context

logger = logging.getLogger("squall.error")

#: ``uvicorn.run`` / ``uvicorn.Config`` keyword names that squall spells differently.
ALIASES = {
    "reload_dirs": "reload_dir",
    "reload_includes": "reload_include",
    "reload_excludes": "reload_exclude",
    "headers": "header",
}
_OPTIONS = {option.name: option for option in config.options() if option.name != "app"}
_LEVEL_NAMES = {number: name for name, number in LEVELS.items()}


class StartupFailed(RuntimeError):
    """The server could not start serving (the app, a socket, TLS, lifespan startup); says why."""


class Config:
    """An app and its options, checked; ``settings`` is the frozen ``squall.config.Config`` tree.

    ``app`` is an import string (``"main:app"``) or the app object. Options not given keep the
    command line's defaults; as ``uvicorn.Config`` does, ``env_file`` is loaded first, then
    ``FORWARDED_ALLOW_IPS`` and ``WEB_CONCURRENCY`` are read from the environment for the options
    not given. Each option is also readable as an attribute (``config.port``).
    """

    def __init__(self, app: str | Any, **options: Any) -> None:
        self.app = app
        given: dict[str, Any] = {}
        for key, value in options.items():
            name = ALIASES.get(key, key)
            option = _OPTIONS.get(name)
            if option is None:
                hint = config.close_matches(key, [*_OPTIONS, *ALIASES], n=1)
                raise TypeError(
                    f"squall.Config() got an unknown option {key!r}"
                    + (f"; did you mean {hint[0]!r}?" if hint else "")
                )
            given[name] = _coerce(option, key, value)
        if given.get("env_file"):
            try:
                load_env_file(given["env_file"])
            except LoadError as exc:
                raise OptionError(str(exc)) from None
        values = config.from_uvicorn_environ(os.environ)
        if config.WEB_CONCURRENCY in os.environ and "workers" not in given:
            values["workers"] = _OPTIONS["workers"].parse(
                os.environ[config.WEB_CONCURRENCY], "WEB_CONCURRENCY"
            )
        values.update(given)
        if isinstance(app, str):
            values["app"] = app
        elif not callable(app):
            raise TypeError(f"app must be an import string ('module:app') or an ASGI app, got {app!r}")
        if values.get("uds") and values.get("fd") is not None:
            raise OptionError("fd: cannot be combined with uds")
        conflict = reuse_port_conflict(values)
        if conflict:
            raise OptionError(f"reuse_port: {conflict}")
        self.settings = config.build(values)

    def __getattr__(self, name: str) -> Any:
        option = _OPTIONS.get(ALIASES.get(name, name))
        if option is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(getattr(self.settings, option.group), option.name)

    @property
    def import_string(self) -> str | None:
        """The app as ``module:attribute`` when it was given so, else None."""
        return self.app if isinstance(self.app, str) else None

    def load(self) -> ASGIApp:
        """The ASGI 3 app: imported (an import string) or adapted (an object). Raises LoadError."""
        if isinstance(self.app, str):
            return load_app(self.settings.app)
        return prepare_app(self.app, self.settings.app, repr(self.app))


def _coerce(option: config.Option, key: str, value: Any) -> Any:
    """A Python value (or the flag's text) for ``option``, checked as the command line checks it."""
    if option.meta["kind"] == "append":
        items = [value] if isinstance(value, str | tuple) else list(value)
        return [_one(option, key, item) for item in items]
    if option.name == "forwarded_allow_ips" and isinstance(value, list | tuple | set):
        value = ",".join(value)
    if option.name == "log_level" and isinstance(value, int):
        value = _LEVEL_NAMES.get(value, str(value))
    return _one(option, key, value)


def _one(option: config.Option, key: str, value: Any) -> Any:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str):
        return option.parse(value, key)
    if option.meta["kind"] == "bool":
        if isinstance(value, bool):
            return value
        raise OptionError(f"{key}: expected True or False, got {value!r}")
    if value is None:
        if option.default() is None:
            return None
        with contextlib.suppress(OptionError):
            if option.parse("off", key) is None:  # the options whose flag takes 'off'
                return None
        raise OptionError(f"{key}: must not be None")
    if isinstance(value, tuple) and len(value) == 2 and option.name == "header":
        return option.parse(f"{value[0]}:{value[1]}", key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return option.parse(str(value if isinstance(value, float) else int(value)), key)
    raise OptionError(f"{key}: invalid value {value!r}")


# --- squall.run ----------------------------------------------------------------------------------


def run(app: str | Any, **options: Any) -> None:
    """Serve ``app`` until stopped, as the ``squall`` command would (blocking).

    ``app`` is ``"module:attribute"`` or the app object; the options are the command line's
    (``squall.run("main:app", port=8000, workers=4)``). ``workers``, ``reload``,
    ``limit_max_requests``, ``limit_max_memory`` and ``supervisor`` run worker processes that
    import the app, so they need an import string. Returns when the server stopped cleanly;
    otherwise prints why on stderr and raises SystemExit with the command's exit code.
    """
    cfg = Config(app, **options)
    settings = cfg.settings
    if cfg.import_string is None and settings.process.supervised:
        raise OptionError(
            f"{_supervising_option(settings)}: needs the app as an import string such as 'main:app' "
            "(each worker process imports it)"
        )
    try:
        configure(settings.runtime, hints=not os.environ.get(CHECK_ONLY_ENV))
    except LogConfigError as exc:
        raise OptionError(f"log_config: {exc}") from None
    if os.environ.pop(CHECK_ONLY_ENV, None):  # a one-process SIGHUP reload checks this very program
        _exit(*((0, None) if cfg.import_string is None else single.check_only(settings)))
        return
    try:
        create_context(settings.tls, settings.http2.http2)
        sockets = bind_all(settings.socket, hold=settings.process.supervised)
    except (TLSConfigError, BindError) as exc:
        raise _failed(STARTUP_FAILURE, str(exc)) from None
    try:
        if settings.process.supervised:
            supervisor = Supervisor(settings, sockets)
            _exit(supervisor.run(), supervisor.failure)
            return
        try:
            served = None if cfg.import_string is not None else cfg.load()
        except LoadError as exc:
            raise _failed(STARTUP_FAILURE, str(exc)) from None
        _exit(*single.run(settings, sockets, app=served))
    finally:
        for sock in sockets:
            sock.close()


def _supervising_option(settings: config.Config) -> str:
    process = settings.process
    for name, value in (
        ("workers", process.workers > 1),
        ("reload", process.reload),
        ("limit_max_requests", process.limit_max_requests is not None),
        ("limit_max_memory", process.limit_max_memory is not None),
    ):
        if value:
            return name
    return "supervisor"


def _exit(code: int, failure: str | None) -> None:
    """Return on a clean stop; else say why on stderr and exit with ``code``."""
    if code or failure:
        raise _failed(code, failure)


def _failed(code: int, failure: str | None) -> SystemExit:
    """Say why on stderr (one line, as the command does); the SystemExit to raise."""
    if failure:
        print(f"squall: error: {failure}", file=sys.stderr)
    return SystemExit(code)


# --- squall.Server -------------------------------------------------------------------------------


class Server:
    """Serve a ``Config`` inside the running event loop: ``await server.serve()``.

    ``serve()`` returns after a graceful stop: set ``should_exit = True`` (or send SIGINT/SIGTERM
    when ``handle_signals`` and this is the main thread: the handlers are put back afterwards;
    a second signal, or ``force_exit = True``, stops at once). ``await wait_started()`` returns
    once every socket accepts (``bound_addresses`` then says where: ``port=0`` picks a free port).
    A server that cannot start raises ``StartupFailed`` from ``serve()`` and ``wait_started()``.
    """

    def __init__(self, config: Config, *, handle_signals: bool = True) -> None:
        self.config = config
        self.handle_signals = handle_signals
        self.failure: str | None = None
        self._worker: _EmbeddedWorker | None = None
        self._should_exit = False
        self._force_exit = False
        self._started = False
        self._finished = False
        self._wakeups: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    # --- state ---------------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """True once lifespan startup is done and every socket accepts."""
        return self._started

    @property
    def should_exit(self) -> bool:
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        """Setting it asks for a graceful stop (from the loop's thread or any other)."""
        self._should_exit = bool(value)
        if value:
            self._call(lambda worker: worker.request_stop(force=False))

    @property
    def force_exit(self) -> bool:
        return self._force_exit

    @force_exit.setter
    def force_exit(self, value: bool) -> None:
        """Setting it stops at once: in-flight requests are cut."""
        self._force_exit = bool(value)
        if value:
            self._call(lambda worker: worker.request_stop(force=True))

    @property
    def servers(self) -> list[asyncio.Server]:
        """The asyncio servers, one per listening socket (empty until started)."""
        return list(self._worker.servers) if self._worker is not None else []

    @property
    def sockets(self) -> list[socket.socket]:
        """The listening sockets."""
        return list(self._worker.sockets) if self._worker is not None else []

    @property
    def bound_addresses(self) -> list[tuple[str, int] | str]:
        """Where it listens: ``(host, port)`` per TCP socket, the path of a Unix socket."""
        found: list[tuple[str, int] | str] = []
        for sock in self.sockets if self._started else []:
            address = sock.getsockname()
            found.append(address if isinstance(address, str) else (address[0], address[1]))
        return found

    @property
    def port(self) -> int | None:
        """The first TCP port it listens on (the one picked for ``port=0``), once started."""
        return next((address[1] for address in self.bound_addresses if isinstance(address, tuple)), None)

    # --- serving -------------------------------------------------------------------------------

    async def wait_started(self) -> None:
        """Return once serving; raise StartupFailed if it could not start (or stopped first)."""
        if not self._started and not self._finished:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            self._wakeups.append((loop, future))
            await future
        if not self._started:
            raise StartupFailed(self.failure or "the server stopped before it started")

    async def serve(self, sockets: Sequence[socket.socket] | None = None) -> None:
        """Serve until stopped (see the class docstring); ``sockets`` are bound ones to serve on."""
        settings = self.config.settings
        if not logging.getLogger("squall.error").handlers:
            try:
                configure(settings.runtime)
            except LogConfigError as exc:
                self._fail(f"log_config: {exc}")
        owned: list[socket.socket] = []
        try:
            try:
                app = self.config.load()
                if sockets is None:
                    owned = [bind(settings.socket)]
            except (LoadError, BindError) as exc:
                self._fail(str(exc))
            worker = self._worker = _EmbeddedWorker(self, settings, app, list(sockets or owned))
            if self._force_exit or self._should_exit:
                worker.request_stop(force=self._force_exit)
            try:
                await worker.serve()
            finally:
                worker.restore_signals()
            if worker.failure is not None:
                self._fail(worker.failure)
        finally:
            self._finished = True
            self._wake()
            for sock in owned:
                sock.close()

    def run(self, sockets: Sequence[socket.socket] | None = None) -> None:
        """``serve()`` on a fresh event loop of the configured kind (blocking)."""
        loop = new_event_loop(self.config.settings.runtime.loop)
        with asyncio.Runner(loop_factory=lambda: loop) as runner:
            runner.run(self.serve(sockets))

    # --- internals -----------------------------------------------------------------------------

    def _fail(self, reason: str) -> None:
        self.failure = reason
        logger.error("Cannot serve: %s", reason)
        raise StartupFailed(reason)

    def _on_started(self) -> None:
        self._started = True
        self._wake()

    def _wake(self) -> None:
        wakeups, self._wakeups = self._wakeups, []
        for loop, future in wakeups:
            loop.call_soon_threadsafe(_resolve, future)

    def _call(self, action: Callable[[_EmbeddedWorker], None]) -> None:
        worker = self._worker
        if worker is None:
            return  # not serving yet: serve() looks at the flags when it starts
        if _running_loop() is worker.loop:
            action(worker)
        else:
            worker.loop.call_soon_threadsafe(action, worker)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _EmbeddedWorker(Worker):
    """The serving loop of ``squall.process.worker``, reporting to a ``Server``."""

    tune_gc = False  # the embedding program's process: its collector is its own business

    def __init__(
        self, owner: Server, settings: config.Config, app: ASGIApp, sockets: list[socket.socket]
    ) -> None:
        super().__init__(settings, app, sockets)
        self.owner = owner
        self.loop = asyncio.get_running_loop()
        self._previous: dict[int, Any] = {}

    def request_stop(self, force: bool) -> None:
        self._stop.set()
        if force:
            self._force.set()

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self.owner.handle_signals or threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(signum)
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, self.handle_signal, signum)
                self._previous[signum] = previous

    def restore_signals(self) -> None:
        """Put back the signal handlers found before serving."""
        for signum, previous in self._previous.items():
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self.loop.remove_signal_handler(signum)
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def _on_ready(self, urls: str) -> None:
        logger.info("Squall serving on %s", urls)
        self.owner._on_started()
