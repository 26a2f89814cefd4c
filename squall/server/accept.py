"""Which connection kind serves a new socket, decided before any of them exists.

How it works
------------
The worker's listeners make their protocol objects with ``protocol_factory``. Over TLS the
handshake is done when ``connection_made`` runs, so ALPN decides at once: ``h2`` gets an
``H2Connection``, anything else an ``HTTP1Connection``. In cleartext with HTTP/2 on, the
``Acceptor`` waits for the first bytes: the HTTP/2 preface (prior knowledge) gets an
``H2Connection``, anything else an ``HTTP1Connection``; a client that sends nothing is closed after
``--timeout-keep-alive``, as an idle HTTP/1.1 connection would be. The chosen connection takes the
transport (``set_protocol``) and the bytes read so far. With neither TLS nor cleartext HTTP/2 the
factory makes ``HTTP1Connection`` directly.

This is also where every connection kind is known, so ``serving_state`` builds the table of
protocol switches (``ServerState.switches``) the kinds look up instead of importing each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from squall.asgi.types import ASGIApp
from squall.config import Config
from squall.server.http1 import HTTP1Connection
from squall.server.state import ServerState, Switch, scope_template

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # HTTP/2 prior knowledge starts with this


def serving_state(
    config: Config,
    app: ASGIApp,
    loop: asyncio.AbstractEventLoop,
    default_headers: Callable[[], bytes],
    lifespan_state: dict[str, Any] | None,
) -> ServerState:
    """The state one worker's connections share, with the protocol switches ``config`` allows."""
    switches: dict[bytes, Switch] = {}
    if config.websocket.ws != "none":
        switches[b"websocket"] = _upgrade_to_websocket
        switches[b"h2-websocket"] = _open_websocket_stream
    if config.http2.http2 and config.http2.h2c_upgrade and not config.tls.ssl_certfile:
        # Cleartext only, and off unless asked: RFC 9113 §3.1 deprecates it, and through a proxy
        # that forwards Upgrade (as for websockets) it tunnels HTTP/2 past the proxy's rules.
        switches[b"h2c"] = _upgrade_h2c
    return ServerState(config, app, loop, default_headers, lifespan_state, switches=switches)


# Websockets (the `websockets` library with importlib.metadata, email, zipfile: 16 ms and ~2.5 MiB)
# and HTTP/2 load on first use, as hpack does: a worker that never sees them never pays for them.


def _upgrade_to_websocket(connection: Any, event: Any) -> Any:
    from squall.server.websocket import upgrade_to_websocket  # on first use

    return upgrade_to_websocket(connection, event)


def _open_websocket_stream(connection: Any, event: Any) -> Any:
    from squall.server.h2websocket import open_stream  # on first use

    return open_stream(connection, event)


def _upgrade_h2c(connection: Any, event: Any) -> Any:
    from squall.server.http2 import upgrade_h2c  # on first use

    return upgrade_h2c(connection, event)


def protocol_factory(server: ServerState) -> Callable[[], asyncio.Protocol]:
    """What a listener calls for each accepted socket."""
    config = server.config
    if server.sniff_preface or (config.tls.ssl_certfile and config.http2.http2):
        return lambda: Acceptor(server)
    return lambda: HTTP1Connection(server)


class Acceptor(asyncio.Protocol):
    """Holds a new socket until its connection kind is known (see the module docstring)."""

    kind = "pending"  # squall_connections_open's label until the first bytes or ALPN decide

    def __init__(self, server: ServerState) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self._seen = b""
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)  # a drain waits for its request too
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            if ssl_object.selected_alpn_protocol() == "h2" and self.server.config.http2.http2:
                self._serve_http2(b"")
            else:
                self._serve_http1(b"")
            return
        timeout = self.server.config.http.timeout_keep_alive
        if timeout is not None:
            self._timer = self.server.loop.call_later(timeout, transport.close)

    def data_received(self, data: bytes) -> None:
        seen = self._seen + data if self._seen else data
        size = min(len(seen), len(PREFACE))
        if seen[:size] != PREFACE[:size]:
            self._serve_http1(seen)
        elif size == len(PREFACE):
            self._serve_http2(seen)
        else:
            self._seen = seen  # a prefix of the preface so far: wait for more

    def eof_received(self) -> bool | None:
        return None  # the client left before saying anything: close

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self.server.connections.discard(self)

    @property
    def idle(self) -> bool:
        """Nothing asked yet."""
        return True

    def shutdown(self) -> None:
        """Graceful shutdown: nothing to do; the request the client sends is served with
        ``Connection: close``, or the keep-alive timer closes the connection."""

    def _cancel_timer(self) -> None:
        self.server.connections.discard(self)  # the connection kind that takes over registers
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _serve_http1(self, initial: bytes) -> None:
        self._cancel_timer()
        transport = self.transport
        assert transport is not None
        connection = HTTP1Connection(self.server)
        transport.set_protocol(connection)
        connection.connection_made(transport)
        if initial:
            connection.data_received(initial)

    def _serve_http2(self, initial: bytes) -> None:
        self._cancel_timer()
        transport = self.transport
        assert transport is not None
        from squall.server.http2 import H2Connection  # on first use (see above)

        connection = H2Connection(self.server, transport, scope_template(self.server, transport))
        transport.set_protocol(connection)
        connection.start(initial)
