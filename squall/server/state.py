"""What every connection of one worker shares, whatever its kind.

``server/`` is the asyncio glue: one module per connection kind (``http1``, ``http2``, ``websocket``,
``h2websocket``), ``accept`` which decides the kind a new socket gets, and this module, which the
kinds share and which imports none of them. A protocol switch (websocket upgrade, h2c upgrade,
RFC 8441 websocket stream) is looked up in ``ServerState.switches``, a table that ``accept`` fills
in where every kind is known; so no connection module imports a kind it hands a socket to.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import socket
import struct
import termios
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import Any, Final, Protocol

from squall.asgi.http import HTTP_EXTENSIONS, REQUEST_KEYS
from squall.asgi.types import ASGI_VERSION, ASGIApp, ClientDisconnected, Receive, Scope, Send
from squall.config import Config
from squall.events import Headers
from squall.observe.access import TIMED_OUT
from squall.observe.hooks import Observer, observer
from squall.observe.metrics import Metrics
from squall.protocol.forwarded import FIELDS, TrustedProxies, resolve
from squall.server.tls import tls_extension


class Connection(Protocol):
    """What the worker's drain needs of every open connection, whatever its kind."""

    #: The ``protocol`` label of ``squall_connections_open``.
    kind: str

    @property
    def transport(self) -> asyncio.Transport | None: ...
    @property
    def idle(self) -> bool: ...
    def shutdown(self) -> None: ...


#: At most this many connections' output waits for the end of a pass (``write_soon``).
WRITE_BATCH: Final = 32


class Flushable(Protocol):
    """A connection whose framed output ``ServerState.write_soon`` writes later."""

    def flush_now(self) -> None: ...


class RateWatched(Protocol):
    """A connection with a transfer to time (``ServerState.sweep``)."""

    def check_rates(self, now: float) -> bool:
        """Check the minimum data rates; False once nothing is left to time."""
        ...


class RateMeter:
    """Kestrel's minimum data rate: the bytes a transfer moved, over the seconds during which
    they were being waited for, judged once more than the grace period has been timed.

    ``tick(now, timing)`` closes the interval since the last tick (timed if the previous tick
    said so) and says whether the next one is timed; ``too_slow`` is the once-a-second check.
    """

    __slots__ = ("moved", "elapsed", "last", "timing")

    def __init__(self, now: float) -> None:
        self.moved = 0
        self.elapsed = 0.0
        self.last = now
        self.timing = False

    def tick(self, now: float, timing: bool) -> None:
        if self.timing:
            self.elapsed += now - self.last
        self.last = now
        self.timing = timing

    def too_slow(self, rate: float, grace: float) -> bool:
        """More than ``grace`` seconds timed, and fewer than ``rate`` bytes a second on average."""
        return self.elapsed > grace and self.moved < rate * self.elapsed


class Disconnectable(Protocol):
    """A stream an HTTP/2 or HTTP/3 connection can end for its app."""

    def disconnect(self, exc: Exception, ended: str) -> None: ...


def cut_slow_reader(
    stream: Disconnectable, metrics: Metrics | None, what: str, client: str, meter: RateMeter
) -> None:
    """Log, count and end for its app a stream whose client took the response slower than
    --min-response-rate (``what`` names it: "HTTP/2 stream 5"); the caller resets it on the wire."""
    logging.getLogger("squall.error").info(
        "resetting %s from %s: %d bytes taken in %.1f s, under --min-response-rate",
        what,
        client,
        meter.moved,
        meter.elapsed,
    )
    if metrics is not None:
        metrics.reject("min_response_rate")
    stream.disconnect(ClientDisconnected("response slower than --min-response-rate"), TIMED_OUT)


class TransportMeter(RateMeter):
    """The rate at which the client takes what we write: timed while the transport is paused
    for writing (the client is not keeping up). What the client took is what left the transport's
    buffer and the kernel's send queue (``SIOCOUTQ``: sent and not yet acknowledged), so the
    kernel's buffer, megabytes on a fast link, does not hide a slow reader."""

    __slots__ = ("transport", "fd", "mark", "written")

    def __init__(self, transport: asyncio.Transport, now: float) -> None:
        super().__init__(now)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        self.fd = sock.fileno() if sock is not None else -1
        self.mark = 0  # the bytes held for the client at the last look
        self.written = 0  # bytes written since then

    def held(self) -> int:
        """Bytes written and not yet taken by the client: the transport's and the kernel's."""
        try:
            size = self.transport.get_write_buffer_size()
        except NotImplementedError:  # a transport that does not say (no buffer of its own)
            size = 0
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                size += struct.unpack("i", fcntl.ioctl(self.fd, termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        return size

    def look(self, now: float, paused: bool) -> None:
        """Count what the client took since the last look; ``paused``: time the next interval."""
        size = self.held()
        if self.timing:
            self.moved += max(0, self.mark + self.written - size)
        self.mark = size
        self.written = 0
        self.tick(now, paused)


#: A protocol switch: called with the connection that saw it and the event that asked for it
#: (``Request`` for an HTTP/1.1 upgrade, the stream id for an HTTP/2 websocket stream).
Switch = Callable[[Any, Any], Any]


class DefaultHeaders:
    """The header block every response starts with; the Date refreshes once a second. (In a
    compiled module, because ``get`` is called once per response.)"""

    def __init__(self, server: bool, date: bool, extra: list[tuple[str, str]]) -> None:
        static = b"server: squall\r\n" if server else b""
        for name, value in extra:
            static += name.encode("latin-1") + b": " + value.encode("latin-1") + b"\r\n"
        self._static = static
        self._date = date
        self.block = static
        self.refresh()

    def refresh(self) -> None:
        """Re-read the clock (the worker calls this every second)."""
        if self._date:
            self.block = b"date: " + formatdate(usegmt=True).encode("ascii") + b"\r\n" + self._static

    def get(self) -> bytes:
        """The current block."""
        return self.block


class ServerState:
    """What every connection of one worker shares.

    ``switches`` maps a protocol-switch name (``b"websocket"``, ``b"h2c"``: HTTP/1.1 ``Upgrade``
    tokens; ``b"h2-websocket"``: an RFC 8441 stream) to the function that performs it; only the
    names present are offered to clients. ``accept.serving_state`` builds the full table.
    """

    def __init__(
        self,
        config: Config,
        app: ASGIApp,
        loop: asyncio.AbstractEventLoop,
        default_headers: Callable[[], bytes],
        lifespan_state: dict[str, Any] | None,
        *,
        switches: dict[bytes, Switch] | None = None,
    ) -> None:
        self.config = config
        self.app = app
        self.loop = loop
        self.default_headers = default_headers
        self.lifespan_state = lifespan_state
        self.connections: set[Connection] = set()
        self.active_requests = 0
        self.total_requests = 0
        # --limit-max-requests: the worker's own limit; ``on_limit`` runs when the request that
        # reaches it is admitted (before its response starts, so that it says Connection: close).
        self.admitted = 0
        self.request_limit: int | None = None
        self.on_limit: Callable[[], None] | None = None
        self.shutting_down = False
        # Set when a stop is coming (--drain-delay): still serving, but --health-path says 503.
        self.draining = False
        health = config.runtime.health_path
        #: ``--health-path`` as the raw path a request must have to be answered by ``health``.
        self.health_path: bytes | None = health.encode("ascii") if health else None
        self.health = _health_app(self)
        self.tasks_done: asyncio.Event | None = None
        self.running: set[Any] = set()  # the exchanges whose app runs: HTTP cycles, websocket sessions
        http = config.http
        self.min_request_body_rate = http.min_request_body_rate
        self.min_response_rate = http.min_response_rate
        self.min_rate_grace = http.min_rate_grace
        #: Connections with a request body or a response to time; ``sweep`` checks them.
        self.rate_watch: set[RateWatched] = set()
        self.switches: dict[bytes, Switch] = dict(switches or {})
        self.upgrades = frozenset(name for name in self.switches if name in (b"websocket", b"h2c"))
        # Cleartext HTTP/2 by prior knowledge: a new connection's first bytes are looked at.
        self.sniff_preface = config.http2.http2 and not config.tls.ssl_certfile
        proxy = config.proxy
        self.proxies = TrustedProxies(proxy.forwarded_allow_ips) if proxy.proxy_headers else None
        self.forwarded_host = proxy.forwarded_host
        self._trusted: dict[str | None, bool] = {}
        self._scope_bases: dict[tuple[Any, Any], dict[str, Any]] = {}  # see scope_base
        #: This worker's counters (``--metrics``), and what each request reports to (or None).
        self.metrics: Metrics | None = Metrics() if config.observe.metrics else None
        self.observer: Observer | None = observer(config, self.metrics)
        self._unwritten: list[Flushable] = []  # see write_soon
        self.limit_concurrency = config.http.limit_concurrency

    def scope_base(self, template: dict[str, Any]) -> dict[str, Any]:
        """A copy of a connection's ``scope_template`` shared by every connection with the same
        scheme and server address, ``client`` and ``extensions`` left ``None`` (each request's
        scope sets the connection's own). Copied per request instead of each connection's own
        template, it stays in the CPU cache however many connections there are (callgrind's cache
        model, bench/h1_profile.py at 256 connections: L2 misses per request 102 -> 80)."""
        key = (template["scheme"], template["server"])
        base = self._scope_bases.get(key)
        if base is None:
            base = self._scope_bases[key] = dict(template)
            base["client"] = base["extensions"] = None
        return base

    def trusts_peer(self, client: tuple[str, int | None] | None) -> bool:
        """Whether proxy headers from ``client`` (a connection's peer) are believed; asked once per
        connection and cached by address."""
        proxies = self.proxies
        if proxies is None:
            return False
        host = client[0] if client is not None and client[1] is not None else None  # None: Unix socket
        trusted = self._trusted.get(host)
        if trusted is None:
            trusted = proxies.trusts_peer(host)
            if len(self._trusted) < 4096:
                self._trusted[host] = trusted
        return trusted

    def app_tasks(self) -> list[asyncio.Task[Any]]:
        """The tasks squall started for apps (requests, websocket sessions) that still run."""
        tasks = [getattr(exchange, "task", None) for exchange in self.running]
        return [task for task in tasks if task is not None and not task.done()]

    def app_for(
        self,
        raw_path: bytes,
        headers: Headers | None = None,
        body_limit: int | None = None,
        connections: int = 0,
    ) -> ASGIApp:
        """The app that answers a request: ``--health-path``'s (whatever the load), a 503 over
        ``--limit-concurrency`` (requests running, or ``connections`` open: HTTP/1.1 counts those
        too), a 413 when ``headers`` declare a body over ``body_limit`` (HTTP/2 and HTTP/3:
        HTTP/1.1 refuses those in its parser), else the app."""
        if self.health_path is not None and raw_path == self.health_path:
            return self.health
        limit = self.limit_concurrency
        if limit is not None and (connections > limit or self.active_requests >= limit):
            if self.metrics is not None:
                self.metrics.reject("503")
            return service_unavailable
        if body_limit is not None and headers is not None and declared_too_large(headers, body_limit):
            if self.metrics is not None:
                self.metrics.reject("413")
            return payload_too_large
        return self.app

    def write_soon(self, connection: Flushable) -> None:
        """Call ``connection.flush_now()`` once the ready callbacks of this pass of the event loop
        have run, with every other connection's output framed in the pass: the responses completed
        in one pass leave in writes back to back, not one between each app's work. Over loopback
        (a proxy on the host, the benchmarks) a write to a client asleep in ``epoll_wait`` pays
        for waking it; back to back, one wake-up serves the batch (bench: system time per Starlette
        request about 11 -> 7 µs). A response waits at most one pass, whose poll does not block,
        and at most ``WRITE_BATCH`` connections wait: held longer, thousands of responses' output
        cost more than the wake-ups saved (hello at 4,096 connections: -11% unbounded, +7% so)."""
        unwritten = self._unwritten
        if not unwritten:
            self.loop.call_soon(self._write_all)
        unwritten.append(connection)
        if len(unwritten) >= WRITE_BATCH:
            self._write_all()

    def write_at_once(self) -> bool:
        """Whether a response completing now is written at once rather than with ``write_soon``:
        when no other request is in flight, waiting for the end of the pass would only add
        latency (wrk -c1: about +15 µs); otherwise it leaves with the others' responses."""
        return self.active_requests <= 1

    def _write_all(self) -> None:
        connections = self._unwritten
        self._unwritten = []
        for connection in connections:
            connection.flush_now()

    def admit(self) -> None:
        """Count an HTTP request that starts; the one reaching ``request_limit`` calls ``on_limit``."""
        self.active_requests += 1
        self.admitted += 1
        limit = self.request_limit
        if limit is not None and self.admitted == limit and self.on_limit is not None:
            self.on_limit()  # (``limit`` narrowed to int: compiled, a native comparison)

    def sweep(self) -> None:
        """Once a second (the worker's clock tick): check the minimum data rates of the
        connections that have something timed. Nothing else pays for them: no per-request timer."""
        if not self.rate_watch:
            return
        now = self.loop.time()
        for connection in list(self.rate_watch):
            if not connection.check_rates(now):
                self.rate_watch.discard(connection)


def metrics_snapshot(server: ServerState) -> dict[str, Any] | None:
    """This worker's metrics now (None without ``--metrics``): its counters plus the gauges read
    off the open connections (by kind), the requests in flight and the websocket sessions open."""
    metrics = server.metrics
    if metrics is None:
        return None
    connections: dict[str, int] = {}
    ws_open = 0
    open_h2 = []
    for connection in server.connections:
        kind = getattr(connection, "kind", "other")
        connections[kind] = connections.get(kind, 0) + 1
        if kind == "websocket":
            ws_open += getattr(connection, "session", None) is not None
        elif kind == "HTTP/2":
            ws_open += len(getattr(connection, "websockets", ()))
            proto = getattr(connection, "proto", None)
            if proto is not None:
                open_h2.append((proto.resets_sent, proto.resets_received, proto.goaways_sent))
    return metrics.snapshot(
        open_h2, in_flight=server.active_requests, connections=connections, ws_open=ws_open
    )


def cut_off(transport: asyncio.Transport) -> None:
    """Drop a connection whose client does not take our output: reset it (SO_LINGER 0) so that
    the kernel does not go on sending what it holds for the client, then abort the transport."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError, ValueError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def scope_template(server: ServerState, transport: asyncio.BaseTransport) -> dict[str, Any]:
    """The scope keys one connection's requests share: scheme, client, server, root_path, state,
    extensions (with ``tls`` on a TLS connection)."""
    context = transport.get_extra_info("sslcontext")
    template: dict[str, Any] = {
        "type": "http",
        "asgi": ASGI_VERSION,
        "scheme": "https" if context else "http",
        "server": address_of(transport.get_extra_info("sockname")),
        "client": address_of(transport.get_extra_info("peername")),
        "root_path": server.config.app.root_path,
        "state": server.lifespan_state,
        "extensions": dict(HTTP_EXTENSIONS),
    }
    template.update(dict.fromkeys(REQUEST_KEYS))  # set by build_scope per request
    ssl_object = transport.get_extra_info("ssl_object") if context is not None else None
    if ssl_object is not None:
        template["extensions"]["tls"] = tls_extension(ssl_object, context)
    return template


_FIELDS: Final[frozenset[bytes]] = FIELDS  # a module-level name of this (compiled) module: no lookup per call


def apply_forwarded(scope: Scope, server: ServerState) -> None:
    """Rewrite ``scope`` (``client``, ``scheme``, the Host header) from its proxy headers; only for
    a peer that ``server.trusts_peer``. Costs one pass over the header names when there are none."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]  # typed: compiled, a plain list loop
    for name, _ in headers:
        # The first byte first ('x' or 'f'): a set lookup would hash each fresh name.
        if name and name[0] in (120, 102) and name in _FIELDS:
            break
    else:
        return
    assert server.proxies is not None
    origin = resolve(headers, server.proxies, use_host=server.forwarded_host)
    if origin is None:
        return
    if origin.client is not None:
        scope["client"] = origin.client
    if origin.scheme is not None:
        secure = origin.scheme in ("https", "wss")
        if scope["type"] == "websocket":
            scope["scheme"] = "wss" if secure else "ws"
        else:
            scope["scheme"] = "https" if secure else "http"
    if origin.host is not None:
        scope["headers"] = [(b"host", origin.host), *((n, v) for n, v in headers if n != b"host")]


def address_of(value: Any) -> tuple[str, int | None] | None:
    """A socket address as ASGI's ``client``/``server``: ``(host, port)``, ``(path, None)`` or None."""
    if isinstance(value, tuple | list) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    if isinstance(value, str | bytes) and value:
        return (value if isinstance(value, str) else value.decode(), None)
    return None


def describe_client(client: tuple[str, int | None] | None) -> str:
    """How the logs name a client: ``host:port``, or a Unix socket client."""
    return f"{client[0]}:{client[1]}" if client and client[1] is not None else "unix socket client"


def _status_app(status: int, text: bytes) -> Callable[[Any, Receive, Send], Awaitable[None]]:
    """A stand-in app that answers ``status`` and closes the connection (HTTP/1.1)."""
    body = text + b"\n"

    async def answer(scope: Any, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(body)),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return answer


def _health_app(server: ServerState) -> Callable[[Any, Receive, Send], Awaitable[None]]:
    """The ``--health-path`` answer, given before the app is touched: 200 while serving, 503 once
    a stop is coming (``--drain-delay``) or under way, so a balancer stops sending traffic."""
    ok = (200, b"ok\n", [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"3")])
    draining = (
        503,
        b"draining\n",
        [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"9")],
    )

    async def answer(scope: Any, receive: Receive, send: Send) -> None:
        status, body, headers = draining if server.draining or server.shutting_down else ok
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return answer


def declared_too_large(headers: Headers, limit: int) -> bool:
    """Whether ``headers`` declare a body (Content-Length) of more than ``limit`` bytes."""
    for name, value in headers:
        if name == b"content-length":
            return value.isdigit() and int(value) > limit
    return False


#: Answers requests over ``--limit-concurrency``.
service_unavailable: Final = _status_app(503, b"Service Unavailable")
#: Answers HTTP/2 requests whose declared body is over ``--limit-request-body``.
payload_too_large: Final = _status_app(413, b"Content Too Large: over the server's --limit-request-body")


class DrainWaiters:
    """Write back-pressure: the coroutines waiting in ``drain()`` until the transport accepts
    more output (``resume_writing``)."""

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
