"""A WebSocket over one HTTP/2 stream: RFC 8441 extended CONNECT.

How it works
------------
When ``--ws`` is not ``none`` the HTTP/2 server advertises ``SETTINGS_ENABLE_CONNECT_PROTOCOL``.
A ``HEADERS`` frame with ``:method CONNECT`` and ``:protocol websocket`` becomes a ``Request``
whose ``upgrade`` is ``websocket``; ``H2Connection`` hands it to the ``h2-websocket`` switch,
``open_stream`` here, instead of starting an ``HTTPCycle``. ``H2WebSocket`` is the stream's
``H2Stream`` (so the connection's flow control, pausing, resets and bookkeeping apply unchanged)
and, at the same time, the ``Channel``
of the same ``WebSocketSession`` that serves HTTP/1.1 upgrades, and the stream's "cycle" (it takes
the stream's DATA).

The websocket framing (``squall.protocol.websocket``) is the same as over TCP; its bytes travel
as DATA frames on the stream. ``websocket.accept`` sends a ``200`` HEADERS (no
Sec-WebSocket-Accept on HTTP/2); a close before accept sends ``403``, a denial response its own
status, each ending the stream. When the closing handshake is complete (the framing's
``eof_sent``) the stream is ended with an empty DATA frame carrying END_STREAM. A stream reset or
a lost connection is ``websocket.disconnect`` 1006.

Flow control. Outgoing messages queue in the stream's window: ``send()`` waits in ``drain()``
until the client opens it. Incoming DATA is acknowledged (the window reopens) while the app has
fewer than ``--ws-max-queue`` unread messages, otherwise when it has read them; before the accept
nothing is acknowledged, so the stream window bounds what the client can send early.

The stream is finished (``H2Connection.stream_finished``) when both the app has returned and the
stream is over (ended by us, reset, or the close handshake timed out).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from squall.asgi.types import ClientDisconnected
from squall.asgi.websocket import WebSocketSession
from squall.events import Data, Headers, Request, Response
from squall.observe.access import CLIENT_LEFT, log_websocket
from squall.protocol.http2 import CANCEL
from squall.protocol.websocket import (
    CloseReceived,
    HandshakeError,
    Offer,
    PongReceived,
    WebSocketServer,
    check_handshake,
)
from squall.server.http2 import H2Connection, H2Stream
from squall.server.websocket import CLOSE_TIMEOUT, TEXT_PLAIN, websocket_scope

logger = logging.getLogger("squall.error")


class H2WebSocket(H2Stream):
    """One WebSocket session on one HTTP/2 stream. See the module docstring."""

    __slots__ = (
        "body_done",
        "session",
        "ws",
        "path",
        "_offer",
        "_early",
        "_ended",
        "_app_done",
        "_timer",
        "_max_size",
        "_max_queue",
        "_ping",
        "_ping_interval",
        "_ping_timeout",
    )

    def __init__(self, conn: H2Connection, stream_id: int) -> None:
        super().__init__(conn, stream_id)
        settings = conn.server.config.websocket
        self._max_size = settings.ws_max_size
        self._max_queue = settings.ws_max_queue
        self._ping_interval = settings.ws_ping_interval
        self._ping_timeout = settings.ws_ping_timeout
        self._ping: asyncio.TimerHandle | None = None  # next keepalive ping, or the pong deadline
        self.cycle = self
        self.body_done = False
        self.session: WebSocketSession | None = None
        self.ws: WebSocketServer | None = None
        self.path = ""
        self._offer: Offer | None = None
        self._early: list[bytes] = []
        self._ended = False  # we ended the stream (END_STREAM or RST_STREAM)
        self._app_done = True  # until the app is started
        self._timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ start

    def start(self, request: Request, template: dict[str, Any]) -> None:
        """Check the handshake and run the application (or answer with an HTTP error)."""
        conn = self.conn
        server = conn.server
        config = server.config
        self.path = request.raw_path.decode("ascii", "backslashreplace")
        try:
            offer = check_handshake(
                request.method,
                request.http_version,
                request.headers,
                deflate=config.websocket.ws_per_message_deflate,
                extended_connect=True,
            )
        except HandshakeError as exc:
            logger.info("rejected a websocket handshake from %s: %s", conn.client_text(), exc.detail)
            body = exc.detail.encode("utf-8", "replace") + b"\n"
            self.respond(exc.status, [*exc.headers, (b"content-type", TEXT_PLAIN)], body, False)
            return
        limit = config.http.limit_concurrency
        if server.shutting_down or (limit is not None and server.active_requests > limit):
            self.respond(503, [(b"content-type", TEXT_PLAIN)], b"", False)
            return
        self._offer = offer
        scope = websocket_scope(server, template, request, offer)
        self._app_done = False
        session = self.session = WebSocketSession(self, server.app, scope)
        session.start()
        server.running.add(session)

    # ------------------------------------------------------------------ the stream's "cycle"

    def on_body(self, data: bytes) -> None:
        ws = self.ws
        if ws is None:
            self._early.append(data)  # not acknowledged: the stream window bounds it
            return
        session = self.session
        assert session is not None
        for event in ws.receive_data(data):
            kind = type(event)
            if kind is str or kind is bytes:
                session.on_message(event)  # type: ignore[arg-type]
                metrics = self.conn.server.metrics
                if metrics is not None:
                    metrics.ws_messages_in += 1
            elif kind is CloseReceived:
                session.on_close(event.code, event.reason)  # type: ignore[union-attr]
            elif kind is PongReceived:
                self._on_pong()
        if session.queued < self._max_queue:
            self._acknowledge()
        self._flush_ws(ws)

    def on_body_end(self) -> None:
        self.body_done = True
        ws = self.ws
        if ws is not None:
            ws.receive_eof()
            self._flush_ws(ws)
            if not self._ended:  # the client ended its side without a close handshake
                self._end_stream()
        if self.session is not None:
            self.session.on_close(1006, "")
        self._maybe_finished()

    def on_disconnect(self, ended: str = CLIENT_LEFT) -> None:
        self._ended = True
        self._cancel_timer()
        if self.session is not None:
            self.session.on_close(1006, "")
        self._maybe_finished()

    # ------------------------------------------------------------------ Channel (for WebSocketSession)

    def accept(self, subprotocol: str | None, headers: Headers) -> None:
        offer = self._offer
        assert offer is not None
        if self._ended:
            return
        proto = self.conn.proto
        proto.send(Response(self.stream_id, 200, [*offer.response_headers(subprotocol), *headers]))
        proto.send(Data(self.stream_id, b"", False))  # the head leaves now
        ws = self.ws = WebSocketServer(offer.extensions, self._max_size)
        self.flush()
        self._log(200)
        if self._ping_interval:
            self._ping = self.loop.call_later(self._ping_interval, self._send_ping)
        if self.conn.server.shutting_down:
            self.close(1001, "server shutting down")
        early, self._early = self._early, []
        for chunk in early:
            if ws.open:
                self.on_body(chunk)

    def send_message(self, data: str | bytes) -> None:
        ws = self.ws
        if ws is None or self._ended or self.gone:
            raise ClientDisconnected("websocket client disconnected")
        try:
            if type(data) is str:
                ws.send_text(data)
            else:
                ws.send_bytes(data)  # type: ignore[arg-type]
        except Exception as exc:  # websockets' InvalidState: a close is under way
            raise ClientDisconnected("websocket is closing") from exc
        metrics = self.conn.server.metrics
        if metrics is not None:
            metrics.ws_messages_out += 1
        self._flush_ws(ws)

    def close(self, code: int, reason: str) -> None:
        ws = self.ws
        if ws is None or self._ended:
            return
        if ws.open:
            ws.send_close(code, reason)
            self._cancel_timer()
            self._timer = self.loop.call_later(CLOSE_TIMEOUT, self._on_close_timeout)
        self._flush_ws(ws)

    def respond(self, status: int, headers: Headers, body: bytes, more: bool) -> None:
        if self._ended:
            return
        if not more and not any(name == b"content-length" for name, _ in headers):
            headers = [*headers, (b"content-length", b"%d" % len(body))]
        proto = self.conn.proto
        proto.send(Response(self.stream_id, status, headers))
        proto.send(Data(self.stream_id, body, not more))
        self._ended = not more
        self.flush()
        self._log(status)
        if not more:
            self._maybe_finished()

    def respond_body(self, body: bytes, more: bool) -> None:
        if self._ended:
            return
        self.conn.proto.send(Data(self.stream_id, body, not more))
        self._ended = not more
        self.flush()
        if not more:
            self._maybe_finished()

    def message_consumed(self) -> None:
        if self.ws is not None:
            self._acknowledge()

    def abort(self) -> None:
        if not self._ended:
            self._ended = True
            super().abort()
        self._maybe_finished()

    def session_finished(self, session: WebSocketSession) -> None:
        self._app_done = True
        self.conn.server.total_requests += 1
        if self.ws is None and not self._ended:  # the app left without any answer
            self._reset(CANCEL)
        self._maybe_finished()

    # ------------------------------------------------------------------ shutdown

    def shutdown(self) -> None:
        """Graceful shutdown: close an open websocket with 1001 (going away)."""
        ws = self.ws
        if ws is not None and ws.open:
            self.close(1001, "server shutting down")

    # ------------------------------------------------------------------ internals

    def _flush_ws(self, ws: WebSocketServer) -> None:
        if self._ended or self.gone:
            ws.take_output()
            return
        output = ws.take_output()
        send = self.conn.proto.send
        sid = self.stream_id
        for chunk in output:
            send(Data(sid, chunk, False))
        if ws.eof_sent:
            self._end_stream()
        else:
            self.flush()

    def _end_stream(self) -> None:
        self._cancel_timer()
        self._ended = True
        self.conn.proto.send(Data(self.stream_id, b"", True))
        self.flush()
        session = self.session
        ws = self.ws
        if session is not None:
            close = ws.close_sent if ws is not None else None
            code, reason = (1006, "") if close is None else close
            session.on_close(code, reason)
        self._maybe_finished()

    def _acknowledge(self) -> None:
        if self.unacked:
            self.conn.proto.acknowledge(self.stream_id, self.unacked)
            self.unacked = 0
            self.conn.flush()

    def _reset(self, code: int) -> None:
        self._ended = True
        self._cancel_timer()
        self.conn.proto.reset(self.stream_id, code)
        self.conn.flush()

    def _on_close_timeout(self) -> None:
        self._timer = None
        if not self._ended:
            logger.info("closing websocket from %s: no answer to our close frame", self.conn.client_text())
            self._reset(CANCEL)
            if self.session is not None:
                self.session.on_close(1006, "")
            self._maybe_finished()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._ping is not None:
            self._ping.cancel()
            self._ping = None

    # ------------------------------------------------------------------ keepalive (--ws-ping-*)

    def _send_ping(self) -> None:
        self._ping = None
        ws = self.ws
        if ws is None or not ws.open or self._ended or self.gone:
            return
        ws.send_ping(os.urandom(4))
        self._flush_ws(ws)
        if self._ping_timeout:
            self._ping = self.loop.call_later(self._ping_timeout, self._on_ping_timeout)
        elif self._ping_interval:
            self._ping = self.loop.call_later(self._ping_interval, self._send_ping)

    def _on_pong(self) -> None:
        if self._ping is not None:
            self._ping.cancel()
            self._ping = None
        if self._ping_interval:
            self._ping = self.loop.call_later(self._ping_interval, self._send_ping)

    def _on_ping_timeout(self) -> None:
        self._ping = None
        ws = self.ws
        if ws is None or not ws.open or self._ended:
            return
        logger.info("closing websocket stream %d: keepalive ping timeout", self.stream_id)
        ws.fail(1011, "keepalive ping timeout")
        if self.session is not None:
            self.session.on_close(1011, "keepalive ping timeout")
        self._flush_ws(ws)
        self._timer = self.loop.call_later(CLOSE_TIMEOUT, self._on_close_timeout)

    def _maybe_finished(self) -> None:
        if self._app_done and (self._ended or self.gone):
            self._cancel_timer()
            self.conn.stream_finished(self)

    def _log(self, status: int) -> None:
        metrics = self.conn.server.metrics
        if metrics is not None:
            metrics.websocket(101 if status == 200 else status)
        if self.conn.access_log:
            log_websocket(self.conn.client_text(), self.path, status, "2")


def open_stream(conn: H2Connection, request: Request) -> H2WebSocket:
    """The ``h2-websocket`` switch: serve the extended CONNECT ``request`` as a websocket stream."""
    stream = H2WebSocket(conn, request.stream_id)
    conn.open_websocket(stream)
    stream.start(request, conn.scope_template)
    return stream
