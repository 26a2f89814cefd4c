"""The parent process: bind once, start workers that inherit the sockets, watch, recycle, reload.

Theory of operation
-------------------
One thread runs one loop (``Supervisor.run``). Signal handlers and the ``--reload`` file-watcher
thread only *post* an event (a queue put plus a byte on a wakeup socket). The loop blocks in
``multiprocessing.connection.wait`` on the wakeup socket, every worker's pipe and every worker's
sentinel (see :mod:`squall.process.spawn`), then handles what is ready:

=================  ================================================================================
posted events      stop, force, reload (SIGHUP), more/fewer (SIGTTIN/SIGTTOU), changed (--reload)
pipe messages      ``("ready",)``, ``("pong", requests_served, rss_bytes, metrics)``, ``("failed", reason)``,
                   ``("limit", n)`` (the worker reached --limit-max-requests and drains itself),
                   ``("metrics", snapshot[, scrape])`` (an answer to a scrape; a worker's last counts)
sentinels          a worker exited: log how; the next reconcile replaces it
timers             health pings; an unanswered ping older than --timeout-worker-healthcheck → SIGKILL;
                   a worker not ready within --timeout-worker-startup → SIGKILL, a failed start;
                   a stopping worker past its deadline → SIGKILL; the systemd watchdog
=================  ================================================================================

and finally ``_reconcile()`` moves the worker set towards the wanted shape. A worker is
``starting`` → ``ready`` → ``stopping``, and may be marked ``obsolete`` (to be replaced: SIGHUP,
--limit-max-memory). A worker knows its own --limit-max-requests: the request that reaches it is
the last it admits; it says ``limit``, stops accepting and drains, and is ``stopping`` from then
on, so a replacement starts at once (connections wait in the backlog meanwhile, with one worker).
Reconcile keeps ``wanted`` non-obsolete workers alive and retires an obsolete *ready* worker only
while the ready workers stay at least ``wanted`` without it: a replacement has finished lifespan
startup and is accepting before the worker it replaces is told to drain (SIGTERM). Because the
parent keeps the listening sockets open, a connection that arrives while no worker accepts waits in
the kernel backlog; it is never refused.

With --reuse-port the parent keeps only a *holder* (bound, never listening: see
:mod:`squall.process.listeners`) and each worker listens on its own SO_REUSEPORT socket, bound once
its app is ready. The rolling order above is what keeps a reload whole: the replacement's socket
has joined the port's group before the old worker drains (accepts what is queued on its socket,
then closes it). A worker at its --limit-max-requests is then marked ``obsolete`` instead of
draining at once, so it serves on until its replacement is ready. While no worker listens (the
only worker crashed) a connection is refused, not queued.

Startup failures (import error, lifespan startup failed) are reported over the pipe. When no
worker is serving and none is still starting, the supervisor exits with code 3 and the reason
instead of respawning in a loop; with --reload it waits for the next file change; when other
workers are serving (a SIGHUP with broken code) the replacement is abandoned, the running workers
are kept, and further attempts back off exponentially.

Metrics (``--metrics``). Each pong carries the worker's snapshot (plain counters, see
:mod:`squall.observe.metrics`); the worker's request path only adds integers. A scrape of the
metrics listener (a thread: ``_serve_metrics``) posts ``scrape``: the loop pings every ready
worker, the thread waits (at most ``SCRAPE_WAIT``) for their pongs and writes the merged figures.
When a worker exits, its last snapshot joins ``_retired``, so the counters never go back while
the supervisor lives (a worker killed outright loses what it counted since its last pong). Why a
pipe rather than shared memory: it is the health-check pipe already there, the request path pays
nothing for it, and a scrape is a few small pickles.

Why fork+exec of a fresh interpreter (:mod:`squall.process.spawn`): the app is imported only in workers,
so SIGHUP and --reload load new code and a syntax error cannot take the parent down; and no
thread or lock state of the parent (the watcher thread) leaks into a child. The parent never
imports asyncio (nor the worker module): the default target imports it in the child.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import queue
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import PurePath
from typing import Any

from squall import __version__
from squall.config import Config
from squall.observe.metrics import COUNTERS, MAX_HEAD, add, bind_metrics, http_response, merge, render
from squall.process import malloc
from squall.process.listeners import describe, owned, refuse_new
from squall.process.pidfile import pid_file
from squall.process.spawn import STARTUP_FAILURE, Child, Target, WorkerSpec, start
from squall.process.systemd import Notifier

logger = logging.getLogger("squall.error")

MIB = 1024 * 1024
PING_INTERVAL = 1.0  # seconds between health pings (shorter when the health-check timeout is tiny)
FORCE_KILL_AFTER = 5.0  # a worker told to stop *now* (second SIGINT) gets this long before SIGKILL
STOP_MARGIN = 10.0  # on top of --timeout-graceful-shutdown, for lifespan shutdown, before SIGKILL
MAX_BACKOFF = 30.0  # longest wait between attempts to start a worker that keeps failing
TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU)
SCRAPE_WAIT = 2.0  # a scrape waits at most this long for the workers' fresh figures


def serve_worker(spec: WorkerSpec) -> None:
    """The default worker target (runs in the child): import the app and serve until told to stop."""
    # Imported in the child only, on purpose: the supervisor never imports asyncio or the app.
    from squall.process.worker import run_supervised

    sys.exit(run_supervised(spec))


@dataclass(eq=False)
class WorkerProcess:
    """The parent's view of one worker."""

    process: Child
    channel: Connection
    max_requests: int | None
    state: str = "starting"  # starting → ready → stopping
    obsolete: bool = False  # to be replaced (rolling): SIGHUP or recycling
    failure: str | None = None  # the startup failure the worker reported
    ping_sent: float | None = None  # when the unanswered ping was sent
    last_pong: float = field(default_factory=time.monotonic)
    stop_deadline: float | None = None
    metrics: dict[str, Any] | None = None  # the last snapshot it sent (--metrics)
    scrape_seen: int = 0  # the last scrape number it answered
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.process.pid


class Supervisor:
    """Run ``config.process.workers`` copies of ``target`` on ``sockets``; see the module docstring."""

    def __init__(
        self,
        config: Config,
        sockets: Sequence[socket.socket],
        target: Target = serve_worker,
        *,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        self.sockets = list(sockets)
        self.target = target
        self.notifier = notifier if notifier is not None else Notifier()
        self.wanted = config.process.workers
        self.workers: list[WorkerProcess] = []
        self.failure: str | None = None  # why the supervisor gave up, when it did
        self.exit_code = 0
        self._events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stopping = False
        self._drain_at: float | None = None  # when --drain-delay is over
        self._started = False
        self._reloading = False
        self._hold_spawn = False  # a worker failed to start while siblings are still starting
        self._waiting_for_change = False  # --reload: the app is broken until the next save
        self._failures = 0  # consecutive startup failures
        self._spawn_after = 0.0
        self._next_watchdog = 0.0
        self._changed = threading.Condition()
        self._watch_stop = threading.Event()
        self._retired: dict[str, Any] = {}  # exited workers' counters (--metrics)
        self.restarts: dict[str, int] = {}  # workers replaced, by cause
        self.metrics_socket: socket.socket | None = None
        self._scrapes = 0
        self._metrics_lock = threading.Lock()

    # ------------------------------------------------------------------ outside API

    def post(self, event: str, detail: Any = None) -> None:
        """Ask the loop to act. Safe from signal handlers and other threads.

        Events: ``stop``, ``force``, ``reload``, ``more``, ``fewer``, ``changed`` (detail: paths).
        """
        self._events.put((event, detail))
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until ``predicate()`` holds after a loop pass (for tests and embedding)."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def pids(self, state: str | None = None) -> list[int]:
        """PIDs of the current workers, optionally only those in ``state``."""
        return [w.pid for w in list(self.workers) if state is None or w.state == state]

    def run(self, install_signals: bool = True) -> int:
        """Start the workers and supervise them until stopped; return the exit code.

        When no worker could start, the exit code is 3 (``STARTUP_FAILURE``, as uvicorn) and
        ``failure`` holds the reason, for the caller to report.
        """
        previous = self._install_signals() if install_signals else {}
        logger.debug("Started supervisor process [%d]", os.getpid())
        try:
            with pid_file(self.config.process.pid_file):
                if self.config.process.reload and not self._start_watcher():
                    return STARTUP_FAILURE
                if self.config.observe.metrics and not self._start_metrics():
                    return STARTUP_FAILURE
                self._loop()
        finally:
            self._watch_stop.set()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self._kill_leftovers()
            self._wake_r.close()
            self._wake_w.close()
            if self.metrics_socket is not None:
                self.metrics_socket.close()
            with self._changed:
                self._changed.notify_all()
        return self.exit_code

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        while True:
            self._reconcile()
            with self._changed:
                self._changed.notify_all()
            if self._stopping and not self.workers:
                return
            waitables: list[Any] = [self._wake_r]
            for w in self.workers:
                waitables += [w.channel, w.process.sentinel]
            wait(waitables, timeout=self._timeout())
            with contextlib.suppress(OSError):
                while self._wake_r.recv(4096):
                    pass
            self._handle_events()
            self._read_messages()
            self._reap()
            self._check_health()
            self._watchdog()

    def _timeout(self) -> float:
        timeout = self._ping_interval() or PING_INTERVAL
        if self._spawn_after:
            timeout = min(timeout, max(0.0, self._spawn_after - time.monotonic()))
        if self._drain_at is not None:
            timeout = min(timeout, max(0.0, self._drain_at - time.monotonic()))
        return timeout / 2 if self.notifier.watchdog_interval else timeout

    def _ping_interval(self) -> float | None:
        timeout = self.config.process.timeout_worker_healthcheck
        return min(PING_INTERVAL, timeout / 2) if timeout > 0 else None

    # ------------------------------------------------------------------ events

    def _install_signals(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM, *TERMINAL_SIGNALS[1:]):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.post("signal", signum)

    def _handle_events(self) -> None:
        while True:
            try:
                event, detail = self._events.get_nowait()
            except queue.Empty:
                return
            if event == "signal":
                logger.info("Received %s", signal.Signals(detail).name)
                event = _SIGNAL_EVENTS[detail]
                if event == "stop" and self._stopping:
                    event = "force"
            getattr(self, "_on_" + event)(detail)

    def _on_stop(self, signum: int | None = None) -> None:
        if self._stopping:
            return
        self._stopping = True
        self.notifier.notify("STOPPING=1")
        delay = self.config.runtime.drain_delay
        if delay > 0 and any(w.state == "ready" for w in self.workers):
            logger.info("Draining in %g s (--drain-delay); serving until then", delay)
            for w in self.workers:
                with contextlib.suppress(OSError):
                    w.channel.send("draining")  # --health-path answers 503 from now on
            self._drain_at = time.monotonic() + delay
        else:
            self._drain()

    def _drain(self) -> None:
        """Tell every worker to drain, and close this process's copies of the listening sockets:
        once the workers have closed theirs, a new connection is refused at once (a balancer
        tries another node) instead of waiting in a queue nobody accepts from, to be reset when
        the supervisor exits."""
        self._drain_at = None
        # Closed before any worker is told: a worker reports "Stopped accepting" once its own copy
        # is closed, and from then on a connect must be refused, whenever this process next runs.
        # New handshakes are refused first, on the sockets this process bound (shared with every
        # worker): the workers still accept what is queued, then close (``refuse_new``).
        for sock in self.sockets:
            if owned(sock):
                refuse_new(sock)
            sock.close()
        if self.workers:
            logger.info("Stopping %d worker(s) gracefully", len(self.workers))
        for w in self.workers:
            self._retire(w)

    def _on_force(self, signum: int | None = None) -> None:
        self._on_stop()
        if self._drain_at is not None:
            self._drain()
        self.exit_code = 128 + (signum or signal.SIGINT)
        logger.warning("Stopping now: %d worker(s) told to quit at once", len(self.workers))
        deadline = time.monotonic() + FORCE_KILL_AFTER
        for w in self.workers:
            _kill(w, signal.SIGQUIT)
            w.stop_deadline = min(w.stop_deadline or deadline, deadline)

    def _on_scrape(self, number: int) -> None:
        """Scrape ``number``: ask every worker serving or draining for fresh figures."""
        for w in self.workers:
            if w.state != "starting":
                with contextlib.suppress(OSError):
                    w.channel.send(("scrape", number))

    def _on_reload(self, detail: Any = None) -> None:
        if self._stopping:
            return
        logger.info("Reloading: starting %d new worker(s) before retiring the old ones", self.wanted)
        self.notifier.notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
        self._reloading = True
        self._waiting_for_change = self._hold_spawn = False
        self._failures, self._spawn_after = 0, 0.0
        for w in self.workers:
            if w.state != "stopping":
                w.obsolete = True
                self._restarted("reload")

    def _on_more(self, detail: Any = None) -> None:
        self.wanted += 1
        logger.info("Increasing to %d worker(s)", self.wanted)

    def _on_fewer(self, detail: Any = None) -> None:
        if self.wanted <= 1:
            logger.info("Already at one worker; SIGTTOU ignored")
            return
        self.wanted -= 1
        logger.info("Decreasing to %d worker(s)", self.wanted)

    def _on_changed(self, paths: list[str]) -> None:
        if self._stopping:
            return
        shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        logger.warning("Detected changes in %s; restarting", shown)
        self._waiting_for_change = self._hold_spawn = False
        self._failures, self._spawn_after = 0, 0.0
        for w in self.workers:
            if w.state != "stopping":
                self._retire(w)
                self._restarted("reload")

    def _restarted(self, cause: str) -> None:
        self.restarts[cause] = self.restarts.get(cause, 0) + 1

    # ------------------------------------------------------------------ worker messages and exits

    def _read_messages(self) -> None:
        for w in list(self.workers):
            try:
                while w.channel.poll():
                    self._on_message(w, w.channel.recv())
            except (EOFError, OSError):
                pass  # the worker is exiting; its sentinel says how

    def _on_message(self, w: WorkerProcess, message: Any) -> None:
        kind = message[0]
        if kind == "ready" and w.state == "starting":
            w.state = "ready"
            w.last_pong = time.monotonic()
            self._failures, self._spawn_after, self._hold_spawn = 0, 0.0, False
            logger.info("Worker [%d] ready", w.pid)
        elif kind == "pong":
            w.ping_sent = None
            w.last_pong = time.monotonic()
            if len(message) > 3 and message[3] is not None:
                w.metrics = message[3]
            self._check_limits(w, requests=message[1], rss=message[2])
        elif kind == "failed":
            w.failure = str(message[1])
        elif kind == "metrics":
            w.metrics = message[1]
            if len(message) > 2:
                w.scrape_seen = message[2]
        elif kind == "limit" and w.state == "ready":  # it stops taking requests and drains itself
            logger.info(
                "Worker [%d] served %d requests (limit %d); recycling it", w.pid, message[1], message[1]
            )
            if not w.obsolete:  # (not counted already by _check_limits)
                self._restarted("max_requests")
            if self.config.socket.reuse_port:  # it serves on until its replacement is ready
                w.obsolete = True
                return
            w.state = "stopping"
            graceful = self.config.runtime.timeout_graceful_shutdown
            if graceful is not None:
                w.stop_deadline = time.monotonic() + graceful + STOP_MARGIN

    def _check_limits(self, w: WorkerProcess, requests: int, rss: int) -> None:
        if w.obsolete or w.state != "ready" or self._stopping:
            return
        memory = self.config.process.limit_max_memory
        if w.max_requests is not None and requests >= w.max_requests:
            reason = f"served {requests} requests (limit {w.max_requests})"
            self._restarted("max_requests")
        elif memory is not None and rss > memory * MIB:
            reason = f"uses {rss / MIB:.0f} MiB (limit {memory} MiB)"
            self._restarted("max_memory")
        else:
            return
        logger.info("Worker [%d] %s; recycling it", w.pid, reason)
        w.obsolete = True

    def _reap(self) -> None:
        for w in list(self.workers):
            if w.process.is_alive():
                continue
            code = w.process.exitcode
            with contextlib.suppress(EOFError, OSError):
                while w.channel.poll():  # what it said last (its final metrics)
                    self._on_message(w, w.channel.recv())
            with self._metrics_lock:  # a scrape sees it live or retired, never both
                self.workers.remove(w)
                if w.metrics is not None:
                    add(self._retired, w.metrics, COUNTERS)
            w.channel.close()
            how = _describe_exit(code)
            if w.state == "stopping":
                logger.info("Worker [%d] stopped (%s)", w.pid, how)
            elif w.state == "starting":
                self._on_startup_failure(w, code, how)
            else:
                logger.error("Worker [%d] died unexpectedly (%s); replacing it", w.pid, how)
                self._restarted("crash")
            w.process.close()

    def _on_startup_failure(self, w: WorkerProcess, code: int | None, how: str) -> None:
        reason = w.failure or f"the worker exited before it was ready ({how})"
        if self._stopping:
            logger.debug("Worker [%d] exited before it was ready (%s)", w.pid, how)
            return
        self._failures += 1
        serving = any(x.state == "ready" for x in self.workers)
        if not serving and not self.config.process.reload:
            # Quiet here: when this is fatal the reason becomes the caller's one-line error.
            logger.debug("Worker [%d] failed to start (%s): %s", w.pid, how, reason)
            if any(x.state == "starting" for x in self.workers):
                self._hold_spawn = True  # a sibling may still make it; start no more meanwhile
                return
            self.failure = reason
            self.exit_code = STARTUP_FAILURE
            self._on_stop()
            return
        logger.error("Worker [%d] failed to start (%s): %s", w.pid, how, reason)
        if self.config.process.reload:
            if not self._waiting_for_change:
                logger.error("Waiting for a file change before restarting")
            self._waiting_for_change = True
            return
        if any(x.obsolete for x in self.workers):
            logger.error("Replacement failed; keeping the running worker(s)")
            for x in self.workers:
                x.obsolete = False
            self._reloading = False
        delay = min(MAX_BACKOFF, 0.5 * 2 ** (self._failures - 1))
        logger.info("Trying again in %.1f s", delay)
        self._spawn_after = time.monotonic() + delay

    # ------------------------------------------------------------------ timers

    def _check_health(self) -> None:
        now = time.monotonic()
        if self._drain_at is not None and now >= self._drain_at:
            self._drain()
        interval = self._ping_interval()
        timeout = self.config.process.timeout_worker_healthcheck
        startup = self.config.process.timeout_worker_startup
        for w in self.workers:
            if w.state == "starting" and startup is not None and now - w.started >= startup:
                # A failed start like any other (an import or a lifespan startup that hangs would
                # hold a rolling reload forever): killed, then reported by _reap.
                w.failure = f"not ready within {startup:g} s (--timeout-worker-startup): killed"
                w.started = float("inf")
                _kill(w, signal.SIGKILL)
            elif w.state == "stopping":
                if w.stop_deadline is not None and now >= w.stop_deadline:
                    logger.warning("Worker [%d] did not stop in time; killing it", w.pid)
                    _kill(w, signal.SIGKILL)
                    w.stop_deadline = None
            elif w.state == "ready" and interval is not None:
                if w.ping_sent is not None:
                    if now - w.ping_sent >= timeout:
                        logger.error(
                            "Worker [%d] did not answer the health check within %g s; killing it",
                            w.pid,
                            timeout,
                        )
                        w.state = "stopping"
                        self._restarted("health_check")
                        _kill(w, signal.SIGKILL)
                elif now - w.last_pong >= interval:
                    with contextlib.suppress(OSError):
                        w.channel.send("ping")
                    w.ping_sent = now

    def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval
        if interval and time.monotonic() >= self._next_watchdog:
            self.notifier.notify("WATCHDOG=1")
            self._next_watchdog = time.monotonic() + interval

    # ------------------------------------------------------------------ shaping the worker set

    def _reconcile(self) -> None:
        if self._stopping:
            return
        fresh = [w for w in self.workers if w.state != "stopping" and not w.obsolete]
        excess = len(fresh) - self.wanted
        if excess > 0:  # SIGTTOU: retire workers still starting first, then the oldest
            for w in sorted(fresh, key=lambda w: w.state == "ready")[:excess]:
                self._retire(w)
            fresh = [w for w in fresh if w.state != "stopping"]
        if len(fresh) < self.wanted and self._may_spawn():
            fresh += [self._spawn() for _ in range(self.wanted - len(fresh))]
        ready_fresh = sum(w.state == "ready" for w in fresh)
        obsolete = [w for w in self.workers if w.obsolete and w.state != "stopping"]
        ready_obsolete = sum(w.state == "ready" for w in obsolete)
        for w in obsolete:
            if w.state != "ready":
                self._retire(w)
            elif ready_fresh + ready_obsolete - 1 >= self.wanted:
                self._retire(w)
                ready_obsolete -= 1
        if ready_fresh >= self.wanted and not self._started:
            self._started = True
            self._announce()
        if self._reloading and ready_fresh >= self.wanted and not any(w.obsolete for w in self.workers):
            self._reloading = False
            logger.info("Reload complete: %d new worker(s) ready", ready_fresh)
            self.notifier.notify("READY=1")

    def _may_spawn(self) -> bool:
        if self._hold_spawn or self._waiting_for_change:
            return False
        return time.monotonic() >= self._spawn_after

    def _spawn(self) -> WorkerProcess:
        malloc.tune_children()
        process = self.config.process
        max_requests = process.limit_max_requests
        if max_requests is not None:
            max_requests += random.randint(0, process.limit_max_requests_jitter)
        with _terminal_signals_ignored():
            child, channel = start(self.target, self.config, self.sockets, max_requests)
        self._spawn_after = 0.0
        w = WorkerProcess(child, channel, max_requests)
        self.workers.append(w)
        logger.debug("Started worker [%d]", w.pid)
        return w

    def _retire(self, w: WorkerProcess) -> None:
        """Tell ``w`` to finish its in-flight work and exit (SIGTERM)."""
        if w.state == "stopping":
            return
        w.state = "stopping"
        logger.info("Stopping worker [%d]", w.pid)
        _kill(w, signal.SIGTERM)
        graceful = self.config.runtime.timeout_graceful_shutdown
        if graceful is not None:
            w.stop_deadline = time.monotonic() + graceful + STOP_MARGIN

    def _announce(self) -> None:
        scheme = "https" if self.config.tls.ssl_certfile else "http"
        urls = " and ".join(describe(sock, scheme) for sock in self.sockets)
        pids = ", ".join(str(w.pid) for w in self.workers if w.state == "ready")
        logger.info("Supervisor [%d]: %d worker(s) ready (%s)", os.getpid(), self.wanted, pids)
        logger.info("Squall %s running on %s (press CTRL+C to quit)", __version__, urls)
        self.notifier.notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS=serving on {urls}")

    def _kill_leftovers(self) -> None:
        """Only after an unexpected error in the loop: leave no orphan behind."""
        for w in self.workers:
            _kill(w, signal.SIGKILL)
            w.process.join(5)
        self.workers.clear()

    # ------------------------------------------------------------------ --metrics

    def _start_metrics(self) -> bool:
        settings = self.config.observe
        try:
            self.metrics_socket = bind_metrics(settings.metrics_host, settings.metrics_port)
        except OSError as exc:
            where = f"{settings.metrics_host}:{settings.metrics_port}"
            self.failure = f"--metrics-port: cannot listen on {where}: {exc.strerror}"
            self.exit_code = STARTUP_FAILURE
            return False
        host, port = self.metrics_socket.getsockname()[:2]
        logger.info("Metrics on http://%s:%d/metrics", host, port)
        threading.Thread(target=self._serve_metrics, name="squall-metrics", daemon=True).start()
        return True

    def _serve_metrics(self) -> None:
        """The metrics listener: one scrape at a time, each answered with ``scrape()``."""
        assert self.metrics_socket is not None
        while True:
            try:
                conn, _ = self.metrics_socket.accept()
            except OSError:
                return  # closed: the supervisor is done
            with conn:
                conn.settimeout(SCRAPE_WAIT * 5)
                head = b""
                with contextlib.suppress(OSError):
                    while b"\r\n\r\n" not in head and len(head) <= MAX_HEAD:
                        data = conn.recv(4096)
                        if not data:
                            break
                        head += data
                    conn.sendall(http_response(head, self.scrape()))

    def scrape(self) -> str:
        """The exposition of the whole server: fresh figures from every ready worker (waiting at
        most ``SCRAPE_WAIT``), plus the counters of the workers that exited."""
        self._scrapes += 1
        number = self._scrapes
        self.post("scrape", number)

        def fresh() -> bool:
            return all(w.scrape_seen >= number for w in list(self.workers) if w.state != "starting")

        self.wait_for(fresh, SCRAPE_WAIT)
        with self._metrics_lock:
            workers = list(self.workers)
            live = [w.metrics for w in workers if w.metrics is not None]
            total = merge(live, self._retired)
        alive = sum(w.state == "ready" for w in workers)
        return render(total, live, {"workers": alive, "restarts": dict(self.restarts)})

    # ------------------------------------------------------------------ --reload

    def _start_watcher(self) -> bool:
        try:
            import watchfiles  # noqa: F401
        except ImportError:
            logger.error("--reload needs the watchfiles package: pip install watchfiles")
            self.exit_code = STARTUP_FAILURE
            return False
        threading.Thread(target=self._watch_files, name="squall-reload", daemon=True).start()
        return True

    def _watch_files(self) -> None:
        import watchfiles

        settings = self.config.process
        dirs = [os.path.abspath(d) for d in settings.reload_dir or [self.config.app.app_dir or "."]]
        accept = ReloadFilter(settings.reload_include or ["*.py"], settings.reload_exclude)
        quiet_ms = max(1, round(settings.reload_delay * 1000))
        announced = False
        for changes in watchfiles.watch(
            *dirs,
            watch_filter=accept,
            stop_event=self._watch_stop,
            rust_timeout=500,
            yield_on_timeout=True,
            raise_interrupt=False,
            step=quiet_ms,  # --reload-delay: no further change for this long, then restart
            debounce=max(400, 2 * quiet_ms),
        ):
            if not announced:  # the first yield proves the watcher is set up
                logger.info("Watching for file changes in %s", ", ".join(dirs))
                announced = True
            if changes:
                self.post("changed", sorted(os.path.relpath(path) for _, path in changes))


class ReloadFilter:
    """Which changed paths trigger a reload: ``include`` globs minus ``exclude`` globs and VCS/cache dirs."""

    IGNORED_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".mypy_cache", ".pytest_cache", ".venv"})

    def __init__(self, include: Sequence[str], exclude: Sequence[str]) -> None:
        self.include = list(include)
        self.exclude = list(exclude)

    def __call__(self, change: Any, path: str) -> bool:
        pure = PurePath(path)
        if self.IGNORED_DIRS.intersection(pure.parts):
            return False
        return self._matches(pure, self.include) and not self._matches(pure, self.exclude)

    @staticmethod
    def _matches(path: PurePath, globs: Sequence[str]) -> bool:
        return any(fnmatch.fnmatch(path.name, glob) or path.match(glob) for glob in globs)


# ---------------------------------------------------------------------- helpers

_SIGNAL_EVENTS = {
    signal.SIGINT: "stop",
    signal.SIGTERM: "stop",
    signal.SIGHUP: "reload",
    signal.SIGTTIN: "more",
    signal.SIGTTOU: "fewer",
}


@contextlib.contextmanager
def _terminal_signals_ignored() -> Iterator[None]:
    """Start a child with SIGINT/SIGHUP/SIGTTIN/SIGTTOU ignored (ignored dispositions survive exec).

    A terminal's Ctrl+C or hang-up reaches the whole process group; the parent alone decides what
    it means. The signals stay blocked while the handlers are swapped, so none is lost.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # embedded/test use from a thread: the worker ignores them itself once it runs
        return
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, TERMINAL_SIGNALS)
    old = {signum: signal.signal(signum, signal.SIG_IGN) for signum in TERMINAL_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in old.items():
            signal.signal(signum, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def _kill(w: WorkerProcess, signum: int) -> None:
    if w.pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(w.pid, signum)


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
