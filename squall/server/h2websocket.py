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

Everything about the websocket itself (framing, events to the session, messages before a
protocol-breaking frame delivered first, closing, keepalive, when to acknowledge) is the
``WebSocketCore`` of ``server/websocket.py``, the same as over HTTP/1.1; ``H2WebSocket`` is its
``Wire``: frames go out as DATA, the end of the framing is END_STREAM, a close that gets no answer
resets the stream, "resume input" acknowledges.

The stream is finished (``H2Connection.stream_finished``) when both the app has returned and the
stream is over (ended by us, reset, or the close handshake timed out).
"""

from __future__ import annotations

from typing import Any

from squall.asgi.websocket import WebSocketSession
from squall.events import Data, Headers, Request, Response
from squall.observe.access import CLIENT_LEFT, log_websocket
from squall.protocol.http2 import CANCEL
from squall.server.http2 import H2Connection, H2Stream
from squall.server.websocket import (
    CoreChannel,
    WebSocketCore,
    response_headers,
    websocket_scope,
)


class H2WebSocket(CoreChannel, H2Stream):
    """One WebSocket session on one HTTP/2 stream. See the module docstring."""

    __slots__ = ("body_done", "core", "path", "_app_done")

    pong_may_wait = False  # unacknowledged DATA is still read: a pong is never left unread

    def __init__(self, conn: H2Connection, stream_id: int) -> None:
        super().__init__(conn, stream_id)
        self.cycle = self
        self.body_done = False
        self.core = WebSocketCore(conn.server, self)
        self.path = ""
        self._app_done = True  # until the app is started

    # ------------------------------------------------------------------ start

    def start(self, request: Request, template: dict[str, Any]) -> None:
        """Check the handshake and run the application (or answer with an HTTP error)."""
        conn = self.conn
        server = conn.server
        self.path = request.raw_path.decode("ascii", "backslashreplace")
        offer = self.handshake(request, extended_connect=True)
        if offer is None:
            return
        limit = server.config.http.limit_concurrency
        if server.shutting_down or (limit is not None and server.active_requests > limit):
            self.reject(503, [], "busy or shutting down")
            return
        self._app_done = False
        self.core.start(self, offer, websocket_scope(server, template, request, offer))

    # ------------------------------------------------------------------ the stream's "cycle"

    def on_body(self, data: bytes) -> None:
        self.core.receive(data)  # before the accept not acknowledged: the stream window bounds it

    def on_body_end(self) -> None:
        self.body_done = True
        core = self.core
        if core.proto is not None:
            core.eof()
            core.end()  # the client ended its side without a close handshake
        if core.session is not None:
            core.session.on_close(1006, "")
        self._maybe_finished()

    def on_disconnect(self, ended: str = CLIENT_LEFT) -> None:
        self.core.lost()
        self._maybe_finished()

    # ------------------------------------------------------------------ Channel (for WebSocketSession)

    def accept(self, subprotocol: str | None, headers: Headers) -> None:
        offer = self.core.offer
        assert offer is not None
        if self.core.over:
            return
        proto = self.conn.proto
        proto.send(Response(self.stream_id, 200, [*offer.response_headers(subprotocol), *headers]))
        proto.send(Data(self.stream_id, b"", False))  # the head leaves now
        self.flush()
        self._log(200)
        self.core.open()

    def respond(self, status: int, headers: Headers, body: bytes, more: bool) -> None:
        if self.core.over:
            return
        proto = self.conn.proto
        proto.send(Response(self.stream_id, status, response_headers(headers, body, more)))
        proto.send(Data(self.stream_id, body, not more))
        self._respond_sent(more)
        self._log(status)

    def respond_body(self, body: bytes, more: bool) -> None:
        if self.core.over:
            return
        self.conn.proto.send(Data(self.stream_id, body, not more))
        self._respond_sent(more)

    def _respond_sent(self, more: bool) -> None:
        if not more:
            self.core.stop()
        self.flush()
        if not more:
            self._maybe_finished()

    def abort(self) -> None:
        if not self.core.over:
            self.core.stop()
            super().abort()
        self._maybe_finished()

    def session_finished(self, session: WebSocketSession) -> None:
        self._app_done = True
        self.core.finished(session)
        if self.core.proto is None and not self.core.over:  # the app left without any answer
            self._reset(CANCEL)
        self._maybe_finished()

    # ------------------------------------------------------------------ Wire (for WebSocketCore)

    def client_text(self) -> str:
        return self.conn.client_text()

    def write_frames(self, chunks: list[bytes]) -> None:
        if self.gone:
            return
        send = self.conn.proto.send
        sid = self.stream_id
        for chunk in chunks:
            send(Data(sid, chunk, False))
        self.flush()

    def end_frames(self) -> None:
        self.conn.proto.send(Data(self.stream_id, b"", True))
        self.flush()
        self._maybe_finished()

    def give_up(self) -> None:
        self._reset(CANCEL)
        self.core.lost()
        self._maybe_finished()

    @property
    def input_paused(self) -> bool:
        """Some DATA is not acknowledged yet: the stream window holds the client back."""
        return self.unacked > 0

    def pause_input(self) -> None:
        pass  # not acknowledging DATA is the pause

    def resume_input(self) -> None:
        if self.unacked:
            self.conn.proto.acknowledge(self.stream_id, self.unacked)
            self.unacked = 0
            self.conn.flush()

    # ------------------------------------------------------------------ internals

    def _reset(self, code: int) -> None:
        self.core.stop()
        self.conn.proto.reset(self.stream_id, code)
        self.conn.flush()

    def _maybe_finished(self) -> None:
        if self._app_done and (self.core.over or self.gone):
            self.core.stop()
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
