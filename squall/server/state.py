"""What every connection of one worker shares, whatever its kind.

``server/`` is the asyncio glue: one module per connection kind (``http1``, ``http2``, ``websocket``,
``h2websocket``), ``accept`` which decides the kind a new socket gets, and this module, which the
kinds share and which imports none of them. A protocol switch (websocket upgrade, h2c upgrade,
RFC 8441 websocket stream) is looked up in ``ServerState.switches``, a table that ``accept`` fills
in where every kind is known; so no connection module imports a kind it hands a socket to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import Any, Protocol

from squall.asgi.http import HTTP_EXTENSIONS
from squall.asgi.types import ASGI_VERSION, ASGIApp, Receive, Send
from squall.config import Config
from squall.server.tls import tls_extension


class Connection(Protocol):
    """What the worker's drain needs of every open connection, whatever its kind."""

    @property
    def transport(self) -> asyncio.Transport | None: ...
    @property
    def idle(self) -> bool: ...
    def shutdown(self) -> None: ...


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
        self.shutting_down = False
        self.tasks_done: asyncio.Event | None = None
        self.switches: dict[bytes, Switch] = dict(switches or {})
        self.upgrades = frozenset(name for name in self.switches if name in (b"websocket", b"h2c"))
        # Cleartext HTTP/2 by prior knowledge: a new connection's first bytes are looked at.
        self.sniff_preface = config.http2.http2 and not config.tls.ssl_certfile


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
    ssl_object = transport.get_extra_info("ssl_object") if context is not None else None
    if ssl_object is not None:
        template["extensions"]["tls"] = tls_extension(ssl_object, context)
    return template


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


#: Answers requests over ``--limit-concurrency``.
service_unavailable = _status_app(503, b"Service Unavailable")
#: Answers HTTP/2 requests whose declared body is over ``--limit-request-body``.
payload_too_large = _status_app(413, b"Content Too Large")


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
