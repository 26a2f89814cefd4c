"""A WebSocket connection: the transport taken over from HTTP/1.1 after ``Upgrade: websocket``.

How it works
------------
``upgrade_to_websocket(connection, request)`` (the ``websocket`` switch) is called by
``HTTP1Connection`` for a request whose upgrade is ``websocket`` (the HTTP/1.1 parser has stopped;
bytes after the head wait in ``connection.proto.trailing_data``). It validates the handshake (a bad
one gets 400 and the connection closes), builds the ``websocket`` scope, moves the transport to a new
``WebSocketConnection`` (``transport.set_protocol``), replaces the HTTP/1.1 connection in
``server.connections`` and starts the ASGI session. Until the app accepts, incoming bytes are
kept; the accept writes the 101 and feeds them to the framing.

HTTP responses on this connection (403 for a close before accept, 500 for an app that fails
before accepting, 503, 400, and the app's own denial response) are framed by the HTTP/1.1
protocol object the request came from, so they get the same default headers and framing rules
as every other response, and ``Connection: close``.

Pipelining. An upgrade request that arrives while earlier pipelined responses are still owed is
parked in the HTTP/1.1 connection's pipeline queue behind them (``_QueuedUpgrade`` stands in for an
``HTTPCycle`` there), with reading paused; the upgrade happens when its turn comes, so responses
stay in order and no byte after the upgrade head is parsed as HTTP.

One core, two carriers. ``WebSocketCore`` is everything about a websocket that does not depend
on what carries its bytes, shared with RFC 8441 streams (``server/h2websocket.py``): it feeds the
framing, hands messages and the close to the ``WebSocketSession``, closes, pings, keeps the bytes
that come before the accept, and decides when input should pause or resume. The carrier is its
``Wire`` (here ``WebSocketConnection``: write to the transport, close TCP when the framing is
done, pause/resume reading) and, for the session, the ``Channel`` (the 101 or an HTTP response).

Errors in order. When a read holds messages and then a frame that will fail the connection (a
reserved opcode or RSV bit, a stray continuation...), the framing holds that frame back
(``hold_errors``); the messages go to the app, and the held input is processed one loop turn
later (``WebSocketCore._release_held``), after the app's task has had its step: an echo leaves
before the close.

Flow control. ``--ws-max-queue``: input pauses while the app has that many unread messages and
resumes when it has fewer (here: transport reading; over HTTP/2: acknowledging DATA). Writing:
``pause_writing`` makes ``send()`` wait in ``drain()``.

Timers (the core's ``_timer``, one slot): the keepalive ping every ``--ws-ping-interval``, then
its deadline (``--ws-ping-timeout``, close 1011 when missed; not while the pong may be sitting
unread: here, while reading is paused); after we send a close frame, ``CLOSE_TIMEOUT`` for the
peer's answer (then the wire gives up: here, close TCP). After we close the transport,
``CLOSE_TIMEOUT`` before aborting it (a peer that does not read).

Shutdown. ``shutdown()`` (the worker's graceful drain) closes an open websocket with 1001; the
session counts in ``server.active_requests`` while its app runs, like an HTTP request.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Protocol, cast

from squall.asgi.http import build_scope
from squall.asgi.types import ClientDisconnected, Scope
from squall.asgi.websocket import Channel, WebSocketSession
from squall.events import Data, Headers, Request, Response
from squall.observe.access import CLIENT_LEFT, log_websocket
from squall.protocol.http1 import STATUS_LINES, HTTP1Server
from squall.protocol.websocket import (
    CloseReceived,
    HandshakeError,
    Offer,
    PongReceived,
    WebSocketServer,
    WSEvent,
    check_handshake,
)
from squall.server.http1 import HTTP1Connection
from squall.server.state import DrainWaiters, ServerState, address_of, apply_forwarded, describe_client

logger = logging.getLogger("squall.error")

CLOSE_TIMEOUT = 10.0
_HANDSHAKE_BUFFER = 64 * 1024  # bytes kept before the accept; reading pauses beyond
TEXT_PLAIN = b"text/plain; charset=utf-8"


def upgrade_to_websocket(connection: HTTP1Connection, request: Request) -> None:
    """Take over ``connection``'s transport for the WebSocket upgrade ``request``."""
    if connection.active is not None or connection.pending:
        _QueuedUpgrade(connection, request)
        return
    _upgrade(connection, request, counted=False)


class _QueuedUpgrade:
    """Stands for a websocket upgrade in the HTTP/1.1 pipeline queue until its turn comes.

    It quacks like the ``HTTPCycle`` the queue expects: ``start()`` when the responses before
    it are done, ``on_disconnect``/``on_body``/``on_body_end`` that do nothing.
    """

    buffered = 0
    body_done = True
    awaiting_continue = False
    task = None

    def __init__(self, connection: HTTP1Connection, request: Request) -> None:
        self.connection = connection
        self.request = request
        self.stream_id = request.stream_id
        connection.server.active_requests += 1
        connection.cycles[self.stream_id] = self
        connection.pending.append(self)
        if connection.transport is not None:
            connection.transport.pause_reading()

    def start(self) -> None:
        self.connection.cycles.pop(self.stream_id, None)
        _upgrade(self.connection, self.request, counted=True)

    def on_disconnect(self, ended: str = CLIENT_LEFT) -> None:
        pass

    def on_body(self, data: bytes) -> None:
        pass

    def on_body_end(self) -> None:
        pass


def _upgrade(connection: HTTP1Connection, request: Request, *, counted: bool) -> None:
    server = connection.server
    transport = connection.transport
    if transport is None or transport.is_closing():
        if counted:
            _release(server)
        return
    config = server.config
    ws = WebSocketConnection(server, transport, connection.proto, request.stream_id)
    ws.path = request.raw_path.decode("ascii", "backslashreplace")
    ws.write_paused = connection.write_paused
    trailing = connection.handover()
    transport.set_protocol(ws)
    server.connections.add(cast(Any, ws))
    if trailing:
        ws.data_received(trailing)
    if counted:
        transport.resume_reading()  # paused while the upgrade waited in the pipeline
    offer = ws.handshake(request)
    if offer is None:
        if counted:
            _release(server)
        return
    limit = config.http.limit_concurrency
    if server.shutting_down or (limit is not None and server.active_requests - counted >= limit):
        ws.reject(503, [], "busy or shutting down")
        if counted:
            _release(server)
        return
    scope = websocket_scope(server, connection.scope_template, request, offer)
    if not counted:
        server.active_requests += 1
    ws.start(offer, scope)


def websocket_scope(server: ServerState, template: dict[str, Any], request: Request, offer: Offer) -> Scope:
    """The ``websocket`` scope of a valid handshake (HTTP/1.1 upgrade or HTTP/2 extended CONNECT),
    with what a trusted proxy's headers say applied."""
    scope = build_scope(template, request, server.config.app.root_path)
    scope["type"] = "websocket"
    scope["scheme"] = "wss" if scope["scheme"] == "https" else "ws"
    if server.trusts_peer(scope["client"]):
        apply_forwarded(scope, server)
    del scope["method"]
    scope["subprotocols"] = offer.subprotocols
    extensions: dict[str, Any] = {"websocket.http.response": {}}
    if "tls" in scope.get("extensions", {}):
        extensions["tls"] = scope["extensions"]["tls"]
    scope["extensions"] = extensions
    return scope


def _release(server: ServerState) -> None:
    server.active_requests -= 1
    if server.shutting_down and server.tasks_done is not None and not server.active_requests:
        server.tasks_done.set()


class Wire(Protocol):
    """What a ``WebSocketCore`` needs from what carries its frames (a TCP connection taken over
    from HTTP/1.1, or an HTTP/2 stream). The core calls none of these once it is ``over``, except
    ``end_frames`` (which makes it over) and the input pair."""

    @property
    def input_paused(self) -> bool: ...  # input waits for the app: resume it when there is room

    @property
    def pong_may_wait(self) -> bool: ...  # a pong may be sitting unread: no keepalive timeout yet

    def client_text(self) -> str: ...
    def write_frames(self, chunks: list[bytes]) -> None: ...
    def end_frames(self) -> None: ...  # the framing is done (``eof_sent``): close TCP / END_STREAM
    def give_up(self) -> None: ...  # the peer did not answer our close frame in CLOSE_TIMEOUT
    def pause_input(self) -> None: ...  # the app's backlog is full (or early bytes pile up)
    def resume_input(self) -> None: ...  # the app has room: read on / reopen the window


class WebSocketCore:
    """The session half of one websocket, the same over HTTP/1.1 and HTTP/2 (RFC 8441): framing,
    events to the ``WebSocketSession``, ordering of errors, closing, keepalive, flow decisions.
    The carrier (``Wire``) only moves bytes. See the module docstring."""

    __slots__ = (
        "loop",
        "wire",
        "proto",
        "session",
        "offer",
        "over",
        "deflate",
        "_server",
        "_metrics",
        "_max_size",
        "_max_queue",
        "_ping_interval",
        "_ping_timeout",
        "_early",
        "_early_size",
        "_timer",
        "_timer_kind",
        "_shutting_down",
    )

    def __init__(self, server: ServerState, wire: Wire) -> None:
        settings = server.config.websocket
        self.loop = server.loop
        self.wire = wire
        self.proto: WebSocketServer | None = None  # the framing, from the accept on
        self.session: WebSocketSession | None = None
        self.offer: Offer | None = None
        self.over = False  # we ended the websocket, or the peer is gone
        self.deflate = settings.ws_per_message_deflate
        self._server = server
        self._metrics = server.metrics
        self._max_size = settings.ws_max_size
        self._max_queue = settings.ws_max_queue
        self._ping_interval = settings.ws_ping_interval
        self._ping_timeout = settings.ws_ping_timeout
        self._early: list[bytes] = []  # bytes received before the accept
        self._early_size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_kind: str | None = None
        self._shutting_down = False

    # ------------------------------------------------------------------ the session's life

    def start(self, channel: Channel, offer: Offer, scope: Scope) -> None:
        """Run the application for a valid handshake; ``channel`` answers its messages."""
        self.offer = offer
        session = self.session = WebSocketSession(channel, self._server.app, scope)
        session.start()
        self._server.running.add(session)

    def open(self) -> None:
        """The accept went out: start framing, keepalive, and the bytes that came early."""
        offer = self.offer
        assert offer is not None
        proto = self.proto = WebSocketServer(offer.extensions, self._max_size, hold_errors=True)
        if self._ping_interval:
            self._set_timer("ping", self._ping_interval)
        if self._shutting_down or self._server.shutting_down:
            self.close(1001, "server shutting down")
        early = b"".join(self._early)
        self._early = []
        if early and proto.open:
            self.receive(early)
        else:
            self.message_consumed()  # nothing is queued yet: input may resume

    def finished(self, session: WebSocketSession) -> None:
        """The app returned (or raised)."""
        self._server.total_requests += 1
        self._server.running.discard(session)

    def shutdown(self) -> None:
        """Graceful shutdown: close an open websocket with 1001 (going away)."""
        self._shutting_down = True
        proto = self.proto
        if proto is not None and proto.open:
            self.close(1001, "server shutting down")

    # ------------------------------------------------------------------ input

    def receive(self, data: bytes) -> None:
        """Bytes from the peer (kept until the accept)."""
        proto = self.proto
        if proto is None:
            self._early.append(data)
            self._early_size += len(data)
            if self._early_size > _HANDSHAKE_BUFFER:
                self.wire.pause_input()
            return
        self._on_events(proto, proto.receive_data(data))

    def _on_events(self, proto: WebSocketServer, events: list[WSEvent]) -> None:
        session = self.session
        assert session is not None
        metrics = self._metrics
        for event in events:
            kind = type(event)
            if kind is str or kind is bytes:
                session.on_message(event)  # type: ignore[arg-type]
                if metrics is not None:
                    metrics.ws_messages_in += 1
            elif kind is CloseReceived:
                session.on_close(event.code, event.reason)  # type: ignore[union-attr]
            elif kind is PongReceived:
                self._on_pong()
        self.flush()
        if proto.held:  # after the app's turn with these messages (its task step is queued first)
            self.loop.call_soon(self._release_held)
        wire = self.wire
        if session.queued >= self._max_queue:  # (inline: once per read)
            wire.pause_input()
        elif wire.input_paused:
            wire.resume_input()

    def _release_held(self) -> None:
        proto = self.proto
        if proto is not None and proto.held and not self.over:
            self._on_events(proto, proto.release())

    def eof(self) -> None:
        """The peer ended its side without a closing handshake."""
        proto = self.proto
        if proto is not None:
            proto.receive_eof()
            self.flush()

    def message_consumed(self) -> None:
        """The app read every queued message."""
        if self.proto is not None and self.wire.input_paused:
            self.wire.resume_input()

    # ------------------------------------------------------------------ output

    def send_message(self, data: str | bytes) -> None:
        """Frame and write one message."""
        proto = self.proto
        if proto is None or self.over:
            raise ClientDisconnected("websocket client disconnected")
        try:
            if type(data) is str:
                proto.send_text(data)
            else:
                proto.send_bytes(data)  # type: ignore[arg-type]
        except Exception as exc:  # websockets' InvalidState: a close is under way
            raise ClientDisconnected("websocket is closing") from exc
        if self._metrics is not None:
            self._metrics.ws_messages_out += 1
        self.flush()

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake (the app's ``websocket.close``, the app's end, shutdown)."""
        proto = self.proto
        if proto is None or self.over:
            return
        if proto.open:
            proto.send_close(code, reason)
            self._set_timer("close", CLOSE_TIMEOUT)
        self.flush()

    def flush(self) -> None:
        """Hand the framing's output to the wire; end it once the closing handshake is done."""
        proto = self.proto
        assert proto is not None
        output = proto.take_output()
        if self.over:
            return
        if output:
            self.wire.write_frames(output)
        if proto.eof_sent:
            self.end()

    # ------------------------------------------------------------------ the end

    def end(self) -> None:
        """We end the websocket: the session hears our close code (1006 if none), the wire ends."""
        if self.over:
            return
        self.stop()
        session = self.session
        if session is not None:
            close = self.proto.close_sent if self.proto is not None else None
            session.on_close(*(close or (1006, "")))
        self.wire.end_frames()

    def lost(self) -> None:
        """The peer is gone (connection lost, stream reset): the session hears 1006."""
        self.stop()
        if self.session is not None:
            self.session.on_close(1006, "")

    def stop(self) -> None:
        """Nothing more goes out: the websocket is over."""
        self.over = True
        self._cancel_timer()

    # ------------------------------------------------------------------ timers

    def _set_timer(self, kind: str, delay: float) -> None:
        self._cancel_timer()
        self._timer_kind = kind
        self._timer = self.loop.call_later(delay, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_kind = None

    def _on_timer(self) -> None:
        kind = self._timer_kind
        self._timer = None
        self._timer_kind = None
        proto = self.proto
        if proto is None or self.over:
            return
        if kind == "ping":
            self._ping(proto)
        elif kind == "pong":
            self._pong_missed(proto)
        elif kind == "close":
            logger.info("closing websocket from %s: no answer to our close frame", self.wire.client_text())
            self.wire.give_up()

    def _ping(self, proto: WebSocketServer) -> None:
        if not proto.open:
            return
        proto.send_ping(os.urandom(4))
        self.flush()
        if self._ping_timeout:
            self._set_timer("pong", self._ping_timeout)
        elif self._ping_interval:
            self._set_timer("ping", self._ping_interval)

    def _pong_missed(self, proto: WebSocketServer) -> None:
        if self.wire.pong_may_wait:  # e.g. unread behind the app's backlog
            self._set_timer("pong", self._ping_timeout or CLOSE_TIMEOUT)
            return
        logger.info("closing websocket from %s: keepalive ping timeout", self.wire.client_text())
        proto.fail(1011, "keepalive ping timeout")
        if self.session is not None:
            self.session.on_close(1011, "keepalive ping timeout")
        self.flush()

    def _on_pong(self) -> None:
        if self._timer_kind == "pong" and self._ping_interval:
            self._set_timer("ping", self._ping_interval)


class CoreChannel:
    """The ``Channel`` methods (for ``WebSocketSession``) that the ``WebSocketCore`` answers the
    same way whatever the carrier; each carrier adds the HTTP side (accept, respond...)."""

    __slots__ = ()
    core: WebSocketCore

    def respond(self, status: int, headers: Headers, body: bytes, more: bool) -> None:
        """Start (and unless ``more``, finish) an HTTP response instead of the handshake."""
        raise NotImplementedError

    def handshake(self, request: Request, *, extended_connect: bool = False) -> Offer | None:
        """The offer of a valid opening handshake; otherwise None, and a 400 has answered it."""
        try:
            return check_handshake(
                request.method,
                request.http_version,
                request.headers,
                deflate=self.core.deflate,
                extended_connect=extended_connect,
            )
        except HandshakeError as exc:
            logger.info(
                "rejected a websocket handshake from %s: %s", self.core.wire.client_text(), exc.detail
            )
            self.reject(exc.status, exc.headers, exc.detail)
            return None

    def reject(self, status: int, headers: Headers, detail: str) -> None:
        """Answer the handshake with an HTTP error (a 400 says why) and end."""
        body = detail.encode("utf-8", "replace") + b"\n" if status == 400 else b""
        self.respond(status, [*headers, (b"content-type", TEXT_PLAIN)], body, False)

    def send_message(self, data: str | bytes) -> None:
        """Frame and write one message."""
        self.core.send_message(data)

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake."""
        self.core.close(code, reason)

    def message_consumed(self) -> None:
        """The app read every queued message: input may resume."""
        self.core.message_consumed()

    def shutdown(self) -> None:
        """Graceful shutdown: close an open websocket with 1001 (going away)."""
        self.core.shutdown()


def response_headers(headers: Headers, body: bytes, more: bool) -> Headers:
    """The headers of an HTTP answer to the handshake: a whole body gets its Content-Length."""
    if not more and not any(name == b"content-length" for name, _ in headers):
        return [*headers, (b"content-length", b"%d" % len(body))]
    return headers


class WebSocketConnection(CoreChannel, asyncio.Protocol):
    """An asyncio protocol serving one WebSocket session on a transport taken over from HTTP/1.1:
    the ``Wire`` of its ``WebSocketCore`` and the ``Channel`` of its session."""

    kind = "websocket"

    def __init__(
        self, server: ServerState, transport: asyncio.Transport, http: HTTP1Server, stream_id: int
    ) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: asyncio.Transport | None = transport
        self._access_log = server.observer is not None and server.observer.access is not None
        self._http = http
        self._stream_id = stream_id
        self.core = WebSocketCore(server, self)
        self.write_paused = False
        self.input_paused = False
        self._drain = DrainWaiters()
        self._abort: asyncio.TimerHandle | None = None
        self.path = ""  # for the logs

    # ------------------------------------------------------------------ setup

    def start(self, offer: Offer, scope: Scope) -> None:
        """Run the application for this handshake."""
        self.core.start(self, offer, scope)

    def client_text(self) -> str:
        """The client as the logs name it."""
        transport = self.transport
        return describe_client(address_of(transport.get_extra_info("peername")) if transport else None)

    # ------------------------------------------------------------------ asyncio callbacks

    def data_received(self, data: bytes) -> None:
        self.core.receive(data)

    def eof_received(self) -> bool | None:
        core = self.core
        core.eof()
        if core.session is not None:
            core.session.on_close(1006, "")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(cast(Any, self))
        if self._abort is not None:
            self._abort.cancel()
            self._abort = None
        self.core.lost()
        self._drain.wake(ClientDisconnected("websocket client disconnected"))

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._drain.wake(None)

    # ------------------------------------------------------------------ Channel (for WebSocketSession)

    def accept(self, subprotocol: str | None, headers: Headers) -> None:
        """Write the 101 response and start framing."""
        offer = self.core.offer
        assert offer is not None
        if self.core.over:
            return
        lines = [STATUS_LINES[101], self.server.default_headers()]
        lines.extend(name + b": " + value + b"\r\n" for name, value in offer.response_headers(subprotocol))
        lines.extend(name + b": " + value + b"\r\n" for name, value in headers)
        lines.append(b"\r\n")
        self._write(b"".join(lines))
        self._log(101)
        self.core.open()

    def respond(self, status: int, headers: Headers, body: bytes, more: bool) -> None:
        """Start (and unless ``more``, finish) an HTTP response instead of the handshake."""
        if self.core.over:
            return
        http = self._http
        http.close_after_response()
        http.send(Response(self._stream_id, status, response_headers(headers, body, more)))
        http.send(Data(self._stream_id, body, not more))
        self._write_http()
        self._log(status)
        if not more:
            self.core.end()

    def respond_body(self, body: bytes, more: bool) -> None:
        """More of the denial response's body."""
        if self.core.over:
            return
        self._http.send(Data(self._stream_id, body, not more))
        self._write_http()
        if not more:
            self.core.end()

    async def drain(self) -> None:
        """Wait until the client has read enough of our output."""
        if self.core.over:
            raise ClientDisconnected("websocket client disconnected")
        if self.write_paused:
            await self._drain.wait(self.loop)

    def abort(self) -> None:
        """Drop the connection (an unfinished denial response)."""
        if self.transport is not None and not self.core.over:
            self.core.stop()
            self.transport.abort()

    def session_finished(self, session: WebSocketSession) -> None:
        """The app returned (or raised)."""
        self.core.finished(session)
        _release(self.server)

    # ------------------------------------------------------------------ shutdown

    @property
    def idle(self) -> bool:
        """A websocket session is never idle: it is closed with 1001 on shutdown, not dropped."""
        return False

    # ------------------------------------------------------------------ Wire (for WebSocketCore)

    def write_frames(self, chunks: list[bytes]) -> None:
        transport = self.transport
        if transport is not None:
            if len(chunks) == 1:
                transport.write(chunks[0])
            else:
                transport.writelines(chunks)

    def end_frames(self) -> None:
        """Close TCP (we close first, RFC 6455 §7.1.1); abort it if the peer does not read."""
        transport = self.transport
        if transport is not None:
            transport.close()
            self._abort = self.loop.call_later(CLOSE_TIMEOUT, transport.abort)

    def give_up(self) -> None:
        self.core.end()

    @property
    def pong_may_wait(self) -> bool:
        """Reading is paused: the pong may be waiting unread behind the app's backlog."""
        return self.input_paused

    def pause_input(self) -> None:
        if not self.input_paused and self.transport is not None and not self.core.over:
            self.input_paused = True
            self.transport.pause_reading()

    def resume_input(self) -> None:
        if self.input_paused and self.transport is not None and not self.core.over:
            self.input_paused = False
            self.transport.resume_reading()

    # ------------------------------------------------------------------ output, logs

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.core.over:
            self.transport.write(data)

    def _write_http(self) -> None:
        output = self._http.take_output()
        if output and self.transport is not None and not self.core.over:
            self.transport.writelines(output)

    def _log(self, status: int) -> None:
        metrics = self.server.metrics
        if metrics is not None:
            metrics.websocket(status)
        if self._access_log:
            log_websocket(self.client_text(), self.path, status, "1.1")
