"""One serving process: event loop, listeners, lifespan, serve until told to stop, drain.

How it works
------------
``serve()`` runs lifespan startup, starts an asyncio server on each already-bound socket, then
waits for a stop signal (signal handlers only set a flag). Shutdown is graceful: ``--health-path``
says 503 from the signal on, and squall keeps serving for ``--drain-delay`` seconds so that
balancers stop sending first; then the drain (``_drain``): stop accepting, let every connection
end at its own next boundary for up to ``--timeout-graceful-shutdown`` (a second signal cuts the
wait short), then cancel the request and websocket tasks that are left (squall's own, never the
app's other tasks) and run lifespan shutdown.

Under the supervisor (``run_supervised``) the worker also talks to the parent over a pipe: it
says ``("ready",)`` once lifespan startup is done and it is accepting, or ``("failed", reason)``
when the app cannot be imported or its startup fails; it answers each ``"ping"`` with
``("pong", requests_served, rss_bytes)`` from the event loop (so a blocked loop fails the health
check), plus its metrics snapshot with ``--metrics`` (and a last ``("metrics", snapshot)`` once
drained, so the supervisor's totals lose nothing); and it drains when the pipe reaches EOF (the
parent is gone). Signals there: SIGTERM
drains, SIGQUIT stops at once; SIGINT/SIGHUP/SIGTTIN/SIGTTOU are ignored because a terminal sends
them to the whole process group and only the parent decides what they mean.

Without a supervisor (one worker, see :mod:`squall.process.single`) the worker is the whole server;
``SingleProcess`` adds signals, sd_notify and the SIGHUP reload through the ``_on_*`` hooks; with
``--metrics`` it serves the metrics listener itself (``MetricsEndpoint``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import logging
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from squall import __version__
from squall.asgi.lifespan import Lifespan, LifespanFailed
from squall.asgi.types import ASGIApp
from squall.config import Config
from squall.loader import LoadError, import_from_string, load_app
from squall.logs import LogConfigError, configure, error_log
from squall.observe.metrics import MAX_HEAD, bind_metrics, http_response, merge, render
from squall.process import collector
from squall.process.listeners import (
    BindError,
    describe,
    handshakes_pending,
    own_listeners,
    owned,
    refuse_new,
    refusing,
)
from squall.process.spawn import STARTUP_FAILURE, WorkerSpec
from squall.server.accept import protocol_factory, serving_state
from squall.server.state import DefaultHeaders, ServerState, metrics_snapshot
from squall.server.tls import TLSConfigError, create_context

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

logger = logging.getLogger("squall.error")

LAG_INTERVAL = 0.5  # seconds between the event-loop lag probe's timers (with --metrics)
#: The longest a drain waits for handshakes under way when it stops new connections: a client an
#: RTT away completes within one; one still half-open after this is likely gone (or a SYN flood).
HANDSHAKE_SETTLE = 0.5
METRICS_READ_TIMEOUT = 10.0  # a scraper that sends no complete request head in this long is dropped


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes the event loop ``--loop`` names (``auto`` prefers uvloop; ``none`` is asyncio's
    default; ``module:attr`` is a callable returning a new loop). Raises LoadError."""
    if kind in ("auto", "uvloop", "zuvloop"):
        module = "uvloop" if kind == "auto" else kind
        try:
            return importlib.import_module(module).new_event_loop  # type: ignore[no-any-return]
        except ImportError:
            if kind != "auto":
                raise LoadError(f"--loop {kind}: the {kind} package is not installed") from None
    if kind in ("auto", "asyncio", "none"):
        return asyncio.new_event_loop
    try:
        factory = import_from_string(kind)
    except LoadError as exc:
        raise LoadError(f"--loop: {exc}") from None
    if not callable(factory):
        raise LoadError(f"--loop {kind}: not callable")
    return factory  # type: ignore[no-any-return]


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """An event loop of the configured kind. Raises LoadError."""
    loop = loop_factory(kind)()
    if not isinstance(loop, asyncio.AbstractEventLoop):
        raise LoadError(f"--loop {kind}: returned {type(loop).__name__}, not an event loop")
    return loop


class Worker:
    """Serve ``app`` on ``sock`` (one socket or several) until a signal says stop.

    ``channel`` is the pipe to the supervisor, when there is one. Without one the worker is the
    whole server (see :mod:`squall.process.single`, which extends it through the ``_on_*`` hooks).
    """

    tune_gc = True  # a process of its own: tune the collector once serving (process/collector.py)

    def __init__(
        self,
        config: Config,
        app: ASGIApp,
        sock: socket.socket | Sequence[socket.socket],
        channel: Connection | None = None,
        max_requests: int | None = None,
    ) -> None:
        self.config = config
        self.max_requests = max_requests  # --limit-max-requests with its jitter drawn
        self.app = app
        self.sockets = [sock] if isinstance(sock, socket.socket) else list(sock)
        self.sock = self.sockets[0]
        self.channel = channel
        self.state: ServerState | None = None
        self.lifespan = Lifespan(app, config.app.lifespan)
        self.failure: str | None = None  # why serving could not start, when it could not
        self.forced_by: int | None = None  # the signal that cut the graceful stop short
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._signals = 0
        self._servers: list[asyncio.Server] = []

    @property
    def servers(self) -> list[asyncio.Server]:
        """The asyncio servers, one per socket (empty until serving)."""
        return list(self._servers)

    def handle_signal(self, signum: int = signal.SIGTERM) -> None:
        """SIGINT/SIGTERM: the first asks for a graceful stop, the next for an immediate one."""
        self._signals += 1
        self._stop.set()
        if self._signals > 1:
            self.forced_by = signum
            self._force.set()

    def handle_quit(self, signum: int = signal.SIGQUIT) -> None:
        """SIGQUIT (supervised): stop at once, without waiting for in-flight requests."""
        self._signals += 2
        self._stop.set()
        self._force.set()

    def _signal_handlers(self) -> dict[int, Callable[[int], None]]:
        if self.channel is None:
            return {signal.SIGTERM: self.handle_signal, signal.SIGINT: self.handle_signal}
        return {signal.SIGTERM: self.handle_signal, signal.SIGQUIT: self.handle_quit}

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig, handler in self._signal_handlers().items():
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, handler, sig)

    def _tell(self, message: tuple[Any, ...]) -> None:
        if self.channel is not None:
            with contextlib.suppress(OSError):
                self.channel.send(message)

    def _on_failure(self, reason: str) -> None:
        """Serving cannot start: remember why and tell the supervisor."""
        self.failure = reason
        self._tell(("failed", reason))

    def _serving(self, tls: bool) -> None:
        """Every socket accepts: tune the collector for what follows, then say so."""
        if self.tune_gc:
            collector.tune_for_serving()
        scheme = "https" if tls else "http"
        self._on_ready(" and ".join(describe(sock, scheme) for sock in self.sockets))

    def _on_ready(self, urls: str) -> None:
        """Lifespan startup is done and every socket accepts."""
        if self.channel is None:
            logger.info("Squall %s running on %s (press CTRL+C to quit)", __version__, urls)
        else:
            logger.info("Worker serving %s", urls)
            self._tell(("ready",))

    def _on_stop(self) -> None:
        """The stop was asked for; draining begins."""
        logger.info("Shutting down")

    def _on_parent_message(self) -> None:
        """The supervisor pinged (answer from the loop) or went away (drain and exit)."""
        channel = self.channel
        assert channel is not None
        try:
            while channel.poll():
                message = channel.recv()
                state = self.state
                snapshot = metrics_snapshot(state) if state is not None else None
                if message == "ping":
                    served = state.total_requests if state is not None else 0
                    channel.send(("pong", served, rss_bytes(), snapshot))
                elif isinstance(message, tuple) and message[0] == "scrape":
                    channel.send(("metrics", snapshot, message[1]))
                elif message == "draining" and state is not None:
                    state.draining = True  # the supervisor's --drain-delay: --health-path says 503
                    logger.info("Draining soon (--drain-delay); serving until then")
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(channel.fileno())
            if not self._stop.is_set():
                logger.warning("The supervisor went away; shutting down")
                self.handle_signal()

    async def serve(self) -> int:
        """Run until stopped; return the process exit code."""
        loop = asyncio.get_running_loop()
        self._install_signal_handlers(loop)
        if self.channel is not None:
            loop.add_reader(self.channel.fileno(), self._on_parent_message)
        logger.info("Started server process [%d]", os.getpid())
        if self.lifespan.supported:
            logger.info("Waiting for application startup.")
        try:
            await self.lifespan.startup()
        except LifespanFailed as exc:
            logger.error("Application startup failed: %s", exc)
            self._on_failure(f"application startup failed: {exc}")
            return STARTUP_FAILURE
        if self.lifespan.supported:
            logger.info("Application startup complete.")
        headers = self._default_headers()
        state = serving_state(
            self.config,
            self.app,
            loop,
            headers.get,
            self.lifespan.state if self.lifespan.supported else {},
        )
        self.state = state
        state.request_limit = self.max_requests
        state.on_limit = self._on_request_limit
        try:
            context = create_context(self.config.tls, self.config.http2.http2)
        except TLSConfigError as exc:
            logger.error("%s", exc)
            self._on_failure(str(exc))
            return STARTUP_FAILURE
        servers = await self._metrics_listener(loop, state)
        if servers is None:
            return STARTUP_FAILURE
        timers = _start_timers(loop, headers, state)
        if not self._own_listeners():
            return await self._abandon(servers, state, timers)
        self._servers = [
            await loop.create_server(
                protocol_factory(state), sock=sock, backlog=self.config.socket.backlog, ssl=context
            )
            for sock in self.sockets
        ]
        servers += self._servers
        endpoints = await self._start_http3(loop, state) if self.config.http3.http3 else []
        if endpoints is None:
            return await self._abandon(servers, state, timers)
        self._serving(context is not None)
        await self._stop.wait()
        self._on_stop()
        await self._delay_drain(state)
        await self._drain(servers, state, endpoints, context)
        self._farewell(state, timers)
        running = (
            self.lifespan.supported and self.lifespan._task is not None and not self.lifespan._task.done()
        )
        if running:
            logger.info("Waiting for application shutdown.")
        try:
            await self.lifespan.shutdown()
        except LifespanFailed as exc:
            logger.error("Application shutdown failed: %s", exc)
            return 3
        if running:
            logger.info("Application shutdown complete.")
        logger.info("Finished server process [%d]", os.getpid())
        return 0

    def _own_listeners(self) -> bool:
        """--reuse-port: this process's own listening socket on each holder's address, bound only
        now that the app is ready (connections the kernel sends it are accepted at once, and a
        failed start never leaves them queued on a socket about to close). False (reported)
        when the bind fails."""
        if not self.config.socket.reuse_port:
            return True
        try:
            self.sockets = own_listeners(self.sockets, self.config.socket.backlog)
        except BindError as exc:
            logger.error("%s", exc)
            self._on_failure(f"--reuse-port: {exc}")
            return False
        self.sock = self.sockets[0]
        return True

    def _drain_delay(self) -> float:
        """Seconds to keep serving after the stop signal (the supervisor waits them itself)."""
        return self.config.runtime.drain_delay if self.channel is None else 0.0

    async def _metrics_listener(
        self, loop: asyncio.AbstractEventLoop, state: ServerState
    ) -> list[asyncio.Server] | None:
        """Without a supervisor, ``--metrics`` is served here (a supervisor serves it otherwise);
        None when its socket cannot be bound (the failure is reported)."""
        settings = self.config.observe
        if self.channel is not None or not settings.metrics:
            return []
        try:
            sock = bind_metrics(settings.metrics_host, settings.metrics_port)
        except OSError as exc:
            where = f"{settings.metrics_host}:{settings.metrics_port}"
            reason = f"--metrics-port: cannot listen on {where}: {exc.strerror}"
            logger.error("%s", reason)
            self._on_failure(reason)
            return None

        def body() -> str:
            snap = metrics_snapshot(state) or {}
            return render(merge([snap]), [snap])

        server = await loop.create_server(lambda: MetricsEndpoint(body), sock=sock)
        host, port = sock.getsockname()[:2]
        logger.info("Metrics on http://%s:%d/metrics", host, port)
        return [server]

    def _on_request_limit(self) -> None:
        """The request reaching --limit-max-requests was admitted: no new connection is accepted
        from now on, and this response and those in flight say Connection: close; the drain
        follows (an idle keep-alive connection stays open for a request already on its way, served
        with Connection: close), then the process exits and the supervisor, told at
        once, has started its replacement."""
        if self.config.socket.reuse_port and self.channel is not None:
            # Its listening socket is its own: closing it now would reset the connections queued
            # on it, and with one worker refuse new ones until the replacement listens. It serves
            # on until the supervisor retires it, once the replacement accepts (a rolling reload).
            logger.info("Maximum request limit of %d reached: serving until replaced", self.max_requests)
            self._tell(("limit", self.max_requests))
            return
        logger.info(
            "Maximum request limit of %d reached: finishing in-flight requests, then exiting",
            self.max_requests,
        )
        state = self.state
        if state is not None:
            state.shutting_down = True
        for server in self._servers:
            server.close()
        self._tell(("limit", self.max_requests))
        self._stop.set()

    async def _delay_drain(self, state: ServerState) -> None:
        """``--drain-delay``: keep serving, ``--health-path`` answering 503, so that the balancers'
        health checks take this server out before it stops accepting. A second signal ends it."""
        state.draining = True
        delay = self._drain_delay()
        if delay > 0 and not self._force.is_set():
            logger.info("Draining in %g s (--drain-delay); serving until then", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._force.wait(), delay)

    def _default_headers(self) -> DefaultHeaders:
        """Server, Date, --header, and Alt-Svc when HTTP/3 is on."""
        http = self.config.http
        extra = list(http.header)
        advertised = self.config.http3.alt_svc(self._udp_port())
        if advertised is not None:
            extra.append(("alt-svc", advertised))
        return DefaultHeaders(http.server_header, http.date_header, extra)

    def _farewell(self, state: ServerState, timers: list[Any]) -> None:
        """Drained: stop the clocks; tell the supervisor the counts since its last ping."""
        for timer in timers:
            timer.cancel()
        snapshot = metrics_snapshot(state)
        if snapshot is not None:
            self._tell(("metrics", snapshot))

    async def _abandon(self, servers: list[asyncio.Server], state: ServerState, timers: list[Any]) -> int:
        """Serving could not start after all (HTTP/3's UDP port): close, run lifespan shutdown, exit 1."""
        for timer in timers:
            timer.cancel()
        await self._drain(servers, state)
        with contextlib.suppress(LifespanFailed):
            await self.lifespan.shutdown()
        return 1

    def _udp_port(self) -> int:
        """HTTP/3's UDP port: --http3-port, else the (first) TCP socket's port number."""
        chosen = self.config.http3.http3_port
        if chosen is not None:
            return chosen
        for sock in self.sockets:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                return int(sock.getsockname()[1])
        return self.config.socket.port

    async def _start_http3(
        self, loop: asyncio.AbstractEventLoop, state: ServerState
    ) -> list[Endpoint] | None:
        """This worker's own UDP socket(s) for HTTP/3, on the TCP sockets' addresses (SO_REUSEPORT:
        each worker binds the shared port); None (logged, and told to the supervisor) when a bind fails."""
        # The one function-level import of a squall module, on purpose: server/http3 loads aioquic
        # and cryptography (about 0.2 s), which a worker without --http3 must not pay.
        from squall.server import http3

        port = self._udp_port()
        hosts = [
            str(s.getsockname()[0]) for s in self.sockets if s.family in (socket.AF_INET, socket.AF_INET6)
        ]
        endpoints: list[Endpoint] = []
        for host in hosts or [self.config.socket.host]:
            try:
                sock = http3.bind_udp(host, port)
            except OSError as exc:
                shown = f"[{host}]" if ":" in host else host
                reason = f"--http3: cannot bind UDP {shown}:{port}: {exc.strerror or exc}"
                logger.error("%s", reason)
                self._on_failure(reason)
                for endpoint in endpoints:
                    endpoint.close()
                return None
            _, endpoint = await loop.create_datagram_endpoint(lambda: http3.H3Endpoint(state), sock=sock)
            endpoint.use_gso(sock)
            endpoints.append(endpoint)
            logger.info("HTTP/3 (QUIC) on udp://%s:%d", f"[{host}]" if ":" in host else host, port)
        return endpoints

    async def _drain(
        self,
        servers: list[asyncio.Server],
        state: ServerState,
        endpoints: Sequence[Endpoint] = (),
        context: ssl.SSLContext | None = None,
    ) -> None:
        """Stop accepting; let every connection end at its own next boundary (bounded).

        Lose no request: the connections already queued on the listening sockets are accepted and
        served, then the sockets close, so a balancer's next connect fails and it tries another
        node (nginx does that even for a POST, which it never retries once sent). From then on
        every response says ``Connection: close`` (``shutting_down``). A connection with a request
        in flight closes after its response. An idle HTTP/1.1 keep-alive connection is never closed
        first: its client may be sending a request on it right now, and a request that crosses the
        close is lost. It ends when its client sends one (answered, then closed), when the client
        closes it, or when its keep-alive timeout fires, as it would have without the drain.
        HTTP/2 says GOAWAY, which names the last stream served; HTTP/3 endpoints stop accepting
        new QUIC connections. At ``--timeout-graceful-shutdown`` whatever is left is closed.
        """
        await self._refuse_new_connections()
        accepting = self._stop_accepting(servers, state, context)
        for endpoint in endpoints:
            endpoint.stop_accepting()
        logger.info("Stopped accepting; %d connection(s) open", len(state.connections) + len(accepting))
        state.shutting_down = True  # from now on every response says Connection: close
        for connection in list(state.connections):
            connection.shutdown()
        timeout = self.config.runtime.timeout_graceful_shutdown
        deadline = None if timeout is None else time.monotonic() + timeout
        while (state.connections or state.active_requests or not all(t.done() for t in accepting)) and (
            not self._force.is_set()
        ):
            if deadline is not None and time.monotonic() >= deadline:
                logger.warning(
                    "Graceful shutdown timed out; closing %d connection(s)", len(state.connections)
                )
                break
            await asyncio.sleep(0.05)
        for connection in list(state.connections):
            if connection.transport is not None:
                connection.transport.abort()
        for endpoint in endpoints:
            endpoint.close()
        # Cancel only what squall started (its requests and websocket sessions still running):
        # the app's own tasks (one started in lifespan startup, say) are its lifespan shutdown's
        # to stop, and an embedding program's tasks are none of squall's business.
        pending = state.app_tasks()
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)

    async def _refuse_new_connections(self) -> None:
        """Before the last accept, where no other process accepts on a socket once this one
        stops: have the kernel drop new connections' SYNs (``refuse_new``) and let the handshakes
        already under way complete (at most ``HANDSHAKE_SETTLE`` s), served like the rest of the
        queue. No connection then completes between the last accept and the close."""
        sockets = [
            sock
            for sock in self.sockets
            if sock.fileno() >= 0 and ((self._last_holder(sock) and refuse_new(sock)) or refusing(sock))
        ]
        deadline = time.monotonic() + HANDSHAKE_SETTLE
        while any(map(handshakes_pending, sockets)) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def _last_holder(self, sock: socket.socket) -> bool:
        """Whether no process accepts on ``sock`` once this one stops: it bound the socket itself
        (a --reuse-port worker's own, a single process's), rather than inheriting it."""
        return owned(sock)

    def _stop_accepting(
        self, servers: list[asyncio.Server], state: ServerState, context: ssl.SSLContext | None
    ) -> list[asyncio.Task[Any]]:
        """Serve what waits in the accept queues, then close the listening sockets: a connection
        left queued would be reset when the last copy of its socket closes, possibly after its
        client sent a request (nginx answers such a POST with 502). The sockets close right after
        the last accept, before the accepted connections are set up, so that window is a few
        microseconds, and none is left where new connections are refused first
        (``_refuse_new_connections``): a socket this process is the last holder of, or one the
        supervisor refuses on before a full stop. On a socket others go on accepting from
        (gunicorn's, systemd's) a connection arriving in the window is still reset when the last
        copy closes; --drain-delay lets balancers stop connecting first.
        Returns the tasks that set the accepted connections up (a TLS handshake takes a while)."""
        loop = asyncio.get_running_loop()
        backlog = self.config.socket.backlog
        queued = [c for sock in self.sockets if sock.fileno() >= 0 for c in accept_queued(sock, backlog)]
        for server in servers:
            server.close()
        factory = protocol_factory(state)
        tasks = [
            loop.create_task(loop.connect_accepted_socket(factory, connection, ssl=context))
            for connection in queued
        ]
        for task in tasks:
            task.add_done_callback(_retrieve)  # a failed handshake is the client's business
        return tasks


class MetricsEndpoint(asyncio.Protocol):
    """One scrape: read a request head, answer with the exposition (``http_response``), close."""

    def __init__(self, body: Callable[[], str]) -> None:
        self.body = body
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.timer = asyncio.get_running_loop().call_later(METRICS_READ_TIMEOUT, transport.close)

    def data_received(self, data: bytes) -> None:
        self.head += data
        if b"\r\n\r\n" in self.head or len(self.head) > MAX_HEAD:
            assert self.transport is not None
            self.transport.write(http_response(self.head, self.body()))
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()


def _start_timers(loop: asyncio.AbstractEventLoop, headers: DefaultHeaders, state: ServerState) -> list[Any]:
    """The worker's clocks: every second the Date header and the rate sweep; with --metrics, the
    event-loop lag probe. Each has a ``cancel()``."""

    def tick() -> None:
        headers.refresh()
        state.sweep()

    timers: list[Any] = [_every_second(loop, tick)]
    if state.metrics is not None:
        timers.append(LagProbe(loop, state.metrics))
    return timers


class LagProbe:
    """Event-loop lag: how late a timer due every ``LAG_INTERVAL`` seconds fires (``loop_lag``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, metrics: Any) -> None:
        self.loop = loop
        self.metrics = metrics
        self.due = loop.time() + LAG_INTERVAL
        self.handle = loop.call_at(self.due, self.tick)

    def tick(self) -> None:
        now = self.loop.time()
        self.metrics.loop_lag = max(0.0, now - self.due)
        self.due = now + LAG_INTERVAL
        self.handle = self.loop.call_at(self.due, self.tick)

    def cancel(self) -> None:
        self.handle.cancel()


class Endpoint(Protocol):
    """What the drain needs of an HTTP/3 UDP endpoint (``server.http3.H3Endpoint``)."""

    def stop_accepting(self) -> None: ...
    def close(self) -> None: ...


def _every_second(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> asyncio.TimerHandle:
    """Call ``callback`` at the start of every wall-clock second; returns a cancellable handle."""
    return repeat(loop, callback, lambda: 1.0 - (time.time() % 1.0))


def repeat(
    loop: asyncio.AbstractEventLoop, callback: Callable[[], None], delay: Callable[[], float]
) -> asyncio.TimerHandle:
    """Call ``callback`` after ``delay()`` seconds, again and again; returns a cancellable handle."""

    class Ticker:
        handle: asyncio.TimerHandle

        def tick(self) -> None:
            callback()
            self.handle = loop.call_later(delay(), self.tick)

        def cancel(self) -> None:
            self.handle.cancel()

    ticker = Ticker()
    ticker.handle = loop.call_later(delay(), ticker.tick)
    return ticker  # type: ignore[return-value]


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


def accept_queued(sock: socket.socket, limit: int) -> list[socket.socket]:
    """The connections waiting in ``sock``'s accept queue (at most ``limit``), accepted now."""
    accepted: list[socket.socket] = []
    try:
        sock.setblocking(False)
        while len(accepted) < limit:
            connection, _ = sock.accept()
            accepted.append(connection)
    except OSError:  # BlockingIOError: the queue is empty
        pass
    return accepted


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """This process's resident set size (peak RSS where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def import_app(config: Config) -> ASGIApp:
    """Load the configured app; raises LoadError (its traceback is logged at debug level)."""
    try:
        return load_app(config.app)
    except LoadError as exc:
        debug = error_log.isEnabledFor(logging.DEBUG)
        logger.debug("app loading failed", exc_info=exc if debug else None)
        raise


def run(worker: Worker) -> int:
    """Serve with ``worker`` in this process on a fresh event loop; return the exit code.

    With --reset-contextvars the serving task starts in an empty ``contextvars.Context``, so the
    requests (whose contexts are copied from it) see nothing set while the app was imported.
    Lifespan runs in a task of its own: what it sets never reaches them either way.
    """
    loop = new_event_loop(worker.config.runtime.loop)
    context = contextvars.Context() if worker.config.app.reset_contextvars else None
    with asyncio.Runner(loop_factory=lambda: loop) as runner:
        return runner.run(worker.serve(), context=context)


def run_supervised(spec: WorkerSpec) -> int:
    """A worker process started by the supervisor: import the app, serve, return the exit code."""
    terminal = (signal.SIGINT, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU)
    for sig in terminal:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, terminal)
    config = spec.config
    try:
        configure(config.runtime, formats=config.observe)
        app = import_app(config)
        loop_factory(config.runtime.loop)  # after --app-dir is on sys.path
    except (LoadError, LogConfigError) as exc:
        with contextlib.suppress(OSError):
            spec.channel.send(("failed", str(exc)))
        return STARTUP_FAILURE
    return run(Worker(config, app, spec.sockets, channel=spec.channel, max_requests=spec.max_requests))
