"""Run squall's serving loop in gunicorn's worker processes:
``gunicorn main:app -k squall.workers.SquallWorker`` (``pip install 'squall[gunicorn]'``).

How it works
------------
gunicorn stays the process manager: it binds, forks the workers, watches their heartbeat and
restarts them. Each worker runs squall's ``Worker`` (``squall.process.worker``) on the sockets
gunicorn gives it, with these gunicorn settings carried over:

=======================  =========================================================================
bind, backlog            the sockets gunicorn bound (``--backlog`` for the listen queue)
timeout                  the worker notifies gunicorn from its event loop each second, so a
                         blocked loop misses the heartbeat and gunicorn replaces the worker
graceful_timeout         SIGTERM drains as ``squall`` does, for up to this many seconds
                         (SIGINT/SIGQUIT: stop at once)
max_requests (+jitter)   exactly that many requests: the last one admitted says Connection:
                         close, the worker drains and exits, gunicorn starts a replacement
keepalive                ``--timeout-keep-alive``
accesslog, loglevel      squall's ``squall.access`` / ``squall.error`` lines go to gunicorn's
                         handlers; no ``accesslog``, no access log
forwarded_allow_ips      squall's proxy headers trust the same peers
limit_request_line /     ``--limit-request-line`` / ``--limit-request-headers`` (0: no limit)
limit_request_fields
certfile, keyfile, ...   TLS (squall's ``--ssl-*``); HTTP/2 by ALPN as in ``squall``
=======================  =========================================================================

Subclasses may set ``SQUALL_OPTIONS`` (squall option names → values) for the rest.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

try:
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker as GunicornWorker
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError(
        "squall.workers.SquallWorker runs under gunicorn, which is not installed: "
        "pip install 'squall[gunicorn]'"
    ) from exc

from squall import config
from squall.loader import LoadError, prepare_app
from squall.process.worker import Worker, repeat
from squall.process.worker import run as run_worker

logger = logging.getLogger("squall.error")

HEARTBEAT = 1.0  # seconds between notifications to gunicorn's arbiter


class SquallWorker(GunicornWorker):  # type: ignore[misc]
    """A gunicorn worker that serves ASGI (and ASGI 2 / WSGI, adapted) with squall."""

    #: Extra squall options (by option name) for subclasses: ``{"http2": False}``.
    SQUALL_OPTIONS: dict[str, Any] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, source in (("squall.error", self.log.error_log), ("squall.access", self.log.access_log)):
            target = logging.getLogger(name)
            target.handlers = list(source.handlers)
            target.setLevel(source.level if name == "squall.error" else logging.INFO)
            target.propagate = False
        self.settings = config.build({**settings_from(self.cfg), **self.SQUALL_OPTIONS})

    def init_signals(self) -> None:
        """gunicorn's handlers would stop the loop mid-request; squall's worker installs its own
        on the event loop. SIGUSR1 (reopen log files) stays gunicorn's."""
        for signum in self.SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGUSR1, self.handle_usr1)
        signal.siginterrupt(signal.SIGUSR1, False)

    def run(self) -> None:
        """Serve until gunicorn says stop (or max_requests); exits the process."""
        try:
            name = repr(getattr(self.app, "app_uri", None) or "the app")
            app = prepare_app(self.wsgi, self.settings.app, name)
        except LoadError as exc:
            logger.error("%s", exc)
            sys.exit(Arbiter.APP_LOAD_ERROR)
        serving = _GunicornServing(self, app)
        code = run_worker(serving)
        if serving.failure is not None:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
        sys.exit(code)


def settings_from(cfg: Any) -> dict[str, Any]:
    """squall option values from gunicorn's settings (see the module docstring)."""
    values: dict[str, Any] = {
        "timeout_keep_alive": float(cfg.keepalive),
        "timeout_graceful_shutdown": float(cfg.graceful_timeout),
        "access_log": cfg.accesslog is not None,
        "limit_request_line": cfg.limit_request_line or None,
        "limit_request_headers": cfg.limit_request_fields or None,
        "backlog": cfg.backlog,
        "log_level": str(cfg.loglevel).lower(),
    }
    if values["log_level"] not in ("critical", "error", "warning", "info", "debug"):
        values["log_level"] = "info"
    allowed = cfg.forwarded_allow_ips
    values["forwarded_allow_ips"] = config.trusted_proxies(
        allowed if isinstance(allowed, str) else ",".join(allowed)
    )
    if cfg.is_ssl:
        ssl = cfg.ssl_options
        values.update(
            ssl_certfile=ssl.get("certfile"),
            ssl_keyfile=ssl.get("keyfile"),
            ssl_keyfile_password=ssl.get("password"),
            ssl_ca_certs=ssl.get("ca_certs"),
            ssl_cert_reqs=int(ssl.get("cert_reqs") or 0),
            ssl_ciphers=ssl.get("ciphers"),
        )
    return values


class _GunicornServing(Worker):
    """squall's worker with gunicorn's heartbeat, signals and max_requests."""

    def __init__(self, gunicorn: SquallWorker, app: Any) -> None:
        limit = gunicorn.max_requests if gunicorn.max_requests < sys.maxsize else None
        sockets = [listener.sock for listener in gunicorn.sockets]
        super().__init__(gunicorn.settings, app, sockets, max_requests=limit)
        self.gunicorn = gunicorn
        self._ticker: Any = None

    def _signal_handlers(self) -> dict[int, Callable[[int], None]]:
        quit_now = self.handle_quit
        return {signal.SIGTERM: self.handle_signal, signal.SIGINT: quit_now, signal.SIGQUIT: quit_now}

    def _on_ready(self, urls: str) -> None:
        logger.info("Squall worker serving %s", urls)
        # Until a worker's first notification its heartbeat file carries the wall-clock time, which
        # gunicorn's monotonic check takes for fresh forever: notify now, not a second from now.
        self.gunicorn.notify()
        # The heartbeat goes on while draining: the loop is alive.
        self._ticker = repeat(asyncio.get_running_loop(), self._heartbeat, lambda: HEARTBEAT)

    def _heartbeat(self) -> None:
        self.gunicorn.notify()
        if os.getppid() != self.gunicorn.ppid and not self._stop.is_set():
            logger.warning("The gunicorn arbiter went away; shutting down")
            self.handle_signal()
