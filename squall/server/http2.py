"""An HTTP/2 connection: one transport, one ``H2Server``, one ``HTTPCycle`` per stream.

How it works
------------
``accept`` gives it a new connection's transport when TLS ALPN selected ``h2`` or when the first
bytes of a cleartext connection are the HTTP/2 preface (prior knowledge); an ``HTTP1Connection``
hands its transport over after ``Upgrade: h2c`` is answered with 101 (``upgrade_h2c``, the
``h2c`` switch; the upgrade request becomes stream 1). From then on
``data_received`` feeds the sans-I/O ``H2Server`` and dispatches its events: each ``Request`` starts
an ``HTTPCycle`` — the same ASGI cycle as HTTP/1.1, unchanged — whose ``Channel`` is a small
per-stream object (``H2Stream``), so ``write_paused``/``drain()`` are per stream. An extended
CONNECT with ``:protocol websocket`` (RFC 8441; advertised unless ``--ws none``) starts an
``H2WebSocket`` instead (the ``h2-websocket`` switch, ``server/h2websocket.py``): a websocket session
on that stream.

Flow control. Outgoing: the protocol queues what the client's windows do not admit; a stream with
queued bytes is ``write_paused`` and its app waits in ``drain()`` until a WINDOW_UPDATE lets the
queue go. While the transport itself is paused (the client does not read) every stream is paused
and reading stops too, so floods of frames that need answers (PING, SETTINGS) cannot grow our
output without bound. Incoming: a stream's body is acknowledged to the client only when the app
has read it (``body_consumed``), so the client can never send more than the windows allow. The h2c
upgrade request's body is HTTP/1.1 bytes outside flow control: reading pauses while the app holds
more than ``_UPGRADE_BODY_HIGH_WATER`` of it unread.

Timers (one handle, ``_timer``, re-armed lazily): close an idle connection (no streams) after
``--timeout-keep-alive`` with GOAWAY; reset a stream whose response made no progress on a zero
window for ``--h2-timeout-stalled``; reset a stream whose request body made no progress for
``--timeout-request-body`` while the client could send it (``_body_timer``).

Minimum data rates, per stream (see ``server/http1.py``): a request body is timed while its app
waits in ``receive()``, a response while the stream has bytes queued that the client's window does
not admit (tiny WINDOW_UPDATEs); the connection's writes while the transport is paused. The
worker's once-a-second sweep calls ``check_rates``: a slow body gets 408 and RST_STREAM(NO_ERROR)
(or, once the response has started, RST_STREAM CANCEL), a slow reader RST_STREAM CANCEL, a
connection whose client does not read is cut off. A header block not complete within
``--timeout-request-header`` of its first frame ends the connection (GOAWAY), whatever the other
streams do: no frame may come between a HEADERS and its CONTINUATIONs, so the connection is stuck.

Limits. At most ``--h2-max-concurrent-streams`` running cycles (also counting apps still running
after their stream was reset: REFUSED_STREAM beyond, metered like resets); after
``--h2-max-requests`` streams a graceful GOAWAY. Shutdown sends GOAWAY and lets open streams finish.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final, cast
from urllib.parse import quote

from mypy_extensions import mypyc_attr

from squall.asgi.http import HTTPCycle, build_scope
from squall.asgi.types import ClientDisconnected
from squall.events import (
    Body,
    Data,
    EndBody,
    Event,
    Headers,
    PeerGoingAway,
    Rejected,
    Request,
    Response,
    StreamReset,
)
from squall.observe.access import CLIENT_LEFT, REJECTED, TIMED_OUT
from squall.protocol.http2 import CANCEL, ENHANCE_YOUR_CALM, INTERNAL_ERROR, NO_ERROR, H2Server
from squall.server.http1 import HTTP1Connection
from squall.server.state import (
    RateMeter,
    ServerState,
    TransportMeter,
    apply_forwarded,
    cut_off,
    cut_slow_reader,
    describe_client,
)
from squall.server.streams import StreamChannel

logger: Final = logging.getLogger("squall.error")

# The h2c upgrade request's body is HTTP/1.1 bytes, outside flow control: reading pauses while the
# app holds more than this of it unread (as HTTP1Connection does).
_UPGRADE_BODY_HIGH_WATER: Final = 256 * 1024
_SWITCHING: Final = b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"


@mypyc_attr(allow_interpreted_subclasses=True)  # h2websocket.H2WebSocket is one
class H2Stream(StreamChannel["H2Connection"]):
    """The ``Channel`` of one stream's ``HTTPCycle``."""

    __slots__ = ("ack",)

    def __init__(self, conn: H2Connection, stream_id: int) -> None:
        super().__init__(conn, conn.loop, stream_id, conn.write_paused)
        self.ack = True  # False for an h2c upgrade body (not flow-controlled)

    # The base's send_event and cycle_finished, again: here ``conn`` is an ``H2Connection``, so
    # mypyc calls straight through instead of looking the names up (the base's ``conn`` is a
    # Protocol): that was 1.3k instructions, 2%, of every small request (bench/h2_profile.py).

    def send_event(self, event: Event) -> None:
        self.conn.proto.send(event)

    def cycle_finished(self, cycle: HTTPCycle) -> None:
        self.conn.stream_finished(self)

    def flush(self) -> None:
        self.conn.flush()
        self._check_window()

    def flush_soon(self) -> None:
        self.conn.flush_soon()
        self._check_window()

    def _check_window(self) -> None:
        """Pause the app while the client's windows hold some of this stream's data back."""
        conn = self.conn
        if not self.write_paused and conn.proto.pending(self.stream_id):
            self.write_paused = True
            conn.paused_streams.add(self)
            conn.arm_stall_timer()
            conn.watch_rates()

    def push(self, path: str, headers: Headers) -> None:
        """``http.response.push``: promise ``path`` to the client and serve it as a request."""
        cycle = self.cycle
        if not isinstance(cycle, HTTPCycle) or self.gone:
            return
        conn = self.conn
        scope = cycle.scope
        authority = next((v for n, v in scope["headers"] if n == b"host"), b"")
        scheme = b"https" if conn.scope_template["scheme"] == "https" else b"http"  # not a proxy's
        request = conn.proto.push(self.stream_id, quote(path).encode("ascii"), headers, authority, scheme)
        if request is not None:
            stream = conn.serve(request)
            if stream is not None and stream.cycle is not None:
                stream.cycle.on_body_end()
            conn.flush()

    def body_consumed(self, cycle: HTTPCycle) -> None:
        if self.unacked:
            if self.ack:
                self.conn.proto.acknowledge(self.stream_id, self.unacked)
            self.unacked = 0
            if not self.ack:
                self.conn.resume_upgrade_body()
            self.conn.flush()

    def response_complete(self, cycle: HTTPCycle) -> None:
        self.conn.response_complete(self)

    def abort(self) -> None:
        self.conn.proto.reset(self.stream_id, INTERNAL_ERROR)
        self.conn.flush()

    def shutdown(self) -> None:
        """Graceful shutdown of what runs on the stream (a websocket stream closes with 1001)."""

    def disconnect(self, exc: Exception, ended: str = CLIENT_LEFT) -> None:
        """As ``StreamChannel.disconnect``; the stream also counts as paused from now on (a cycle
        that looks at ``write_paused`` goes to ``drain()``, which raises)."""
        self.write_paused = True
        super().disconnect(exc, ended)


class H2Connection(asyncio.Protocol):
    """An asyncio protocol serving HTTP/2 on a transport taken over from ``HTTP1Connection``."""

    kind = "HTTP/2"

    def __init__(self, server: ServerState, transport: asyncio.Transport, template: dict[str, Any]) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: asyncio.Transport | None = transport
        config = server.config
        h2c = config.http2
        self._h2 = h2c
        self._root_path = config.app.root_path
        self._max_body = config.http.limit_request_body
        # Read for every stream, kept here (compiled: native attributes, not config lookups).
        self._max_streams = h2c.h2_max_concurrent_streams
        self._max_requests = h2c.h2_max_requests
        self._timeout_body = config.http.timeout_request_body
        self._observer = server.observer
        self._access_log = server.observer is not None and server.observer.access is not None
        self._template = template
        self._forwarded = server.trusts_peer(template["client"])
        self.proto = H2Server(
            max_concurrent_streams=h2c.h2_max_concurrent_streams,
            max_header_list_size=h2c.h2_max_header_list_size,
            initial_window_size=h2c.h2_initial_window_size,
            max_reset_rate=h2c.h2_max_reset_rate,
            max_control_rate=h2c.h2_max_control_rate,
            enable_connect_protocol=b"h2-websocket" in server.switches,
            default_headers=server.default_headers,
        )
        self._websocket = b"h2-websocket" in server.switches
        self.websockets: set[H2Stream] = set()
        self.streams: dict[int, H2Stream] = {}
        self.paused_streams: set[H2Stream] = set()
        self.write_paused = False
        self.requests = 0
        self._closed = False
        self._peer_leaving = False
        self._upgrade_body: tuple[H2Stream, int] | None = None
        self._upgrade_paused = False  # reading waits until the app reads the h2c upgrade body
        self._last_active = self.loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self._stall_seen: dict[int, int] = {}
        self._stall_timer: asyncio.TimerHandle | None = None
        self._body_seen: dict[int, int] = {}
        self._body_timer: asyncio.TimerHandle | None = None
        self._flush_pending = False
        self._body_meters: dict[int, RateMeter] = {}  # streams whose request body rate is timed
        self._window_meters: dict[int, tuple[RateMeter, int]] = {}  # ... response rate, last pending
        self._write_meter: TransportMeter | None = None
        self._header_timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ start

    def start(self, initial: bytes = b"", upgrade: Request | None = None, settings: bytes = b"") -> None:
        """Send the server preface, serve the h2c upgrade request (stream 1), feed ``initial``."""
        self.server.connections.add(cast(Any, self))
        if upgrade is None:
            self.proto.initiate()
        else:
            self.proto.initiate_upgrade(settings)
            self._start_upgrade_stream(upgrade)
        self.flush()
        self._arm_idle_timer()
        if initial:
            self.data_received(initial)

    def _start_upgrade_stream(self, request: Request) -> None:
        skip = {b"connection", b"upgrade", b"http2-settings", b"content-length", b"keep-alive"}
        length = 0
        for name, value in request.headers:
            if name == b"content-length":
                length = int(value)
        headers = [(n, v) for n, v in request.headers if n not in skip]
        if length:
            headers.append((b"content-length", b"%d" % length))
        stream1 = Request(1, request.method, request.raw_path, request.query_string, "2", headers)
        stream = self._on_request(stream1)
        if stream is None:  # pragma: no cover - a fresh connection always has room
            return
        stream.ack = False
        if length:
            self._upgrade_body = (stream, length)
        else:
            self._on_end_body(1)

    # ------------------------------------------------------------------ asyncio callbacks

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        if self._upgrade_body is not None:
            data = self._feed_upgrade_body(data)
            if not data:
                return
        events = self.proto.receive_data(data)
        for event in events:
            kind = type(event)
            if kind is Body:
                self._on_body(event)  # type: ignore[arg-type]
            elif kind is Request:
                self._on_request(event)  # type: ignore[arg-type]
            elif kind is EndBody:
                self._on_end_body(event.stream_id)
            elif kind is StreamReset:
                self._on_reset(event.stream_id)
            elif kind is PeerGoingAway:
                self._peer_leaving = True
            elif kind is Rejected:
                self._on_rejected(event)  # type: ignore[arg-type]
        self.flush()
        if self.paused_streams:
            self._wake_streams()
        if self._peer_leaving and not self.streams:
            self._close()
        if self.proto.header_block_open:
            if self._header_timer is None:
                self._arm_header_timer()
        elif self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _feed_upgrade_body(self, data: bytes) -> bytes:
        assert self._upgrade_body is not None
        stream, remaining = self._upgrade_body
        take, rest = data[:remaining], data[remaining:]
        remaining -= len(take)
        self._upgrade_body = (stream, remaining) if remaining else None
        if take and stream.cycle is not None and not stream.gone and stream.stream_id in self.streams:
            stream.unacked += len(take)
            stream.cycle.on_body(take)
            if stream.unacked > _UPGRADE_BODY_HIGH_WATER and self.transport is not None:
                self._upgrade_paused = True  # not flow-controlled: TCP holds the rest back
                self.transport.pause_reading()
        if not remaining:
            self._on_end_body(stream.stream_id)
        return rest

    def resume_upgrade_body(self) -> None:
        """The app read the h2c upgrade body it was given (or is gone): read on."""
        if self._upgrade_paused:
            self._upgrade_paused = False
            if self.transport is not None and not self._closed and not self.write_paused:
                self.transport.resume_reading()

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        server = self.server
        if server.metrics is not None and cast(Any, self) in server.connections:
            proto = self.proto
            server.metrics.http2_frames(proto.resets_sent, proto.resets_received, proto.goaways_sent)
        server.connections.discard(cast(Any, self))
        for handle in (self._timer, self._stall_timer, self._body_timer, self._header_timer):
            if handle is not None:
                handle.cancel()
        self._body_meters.clear()
        self._window_meters.clear()
        self._write_meter = None
        gone = ClientDisconnected("client disconnected")
        for stream in list(self.streams.values()):
            stream.disconnect(gone)

    def pause_writing(self) -> None:
        self.write_paused = True
        for stream in self.streams.values():
            if not stream.write_paused:
                stream.write_paused = True
                self.paused_streams.add(stream)
        if self.transport is not None:
            self.transport.pause_reading()  # nothing more is read until the client reads
            if self.server.min_response_rate is not None:
                now = self.loop.time()
                if self._write_meter is None:
                    self._write_meter = TransportMeter(self.transport, now)
                self._write_meter.look(now, True)
                self.server.rate_watch.add(self)
        self.arm_stall_timer()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._write_meter is not None:
            self._write_meter.look(self.loop.time(), False)
        if self.transport is not None and not self._closed and not self._upgrade_paused:
            self.transport.resume_reading()
        self._wake_streams()

    # ------------------------------------------------------------------ events

    def serve(self, request: Request) -> H2Stream | None:
        """Serve a request the server made itself (a pushed stream) as if the client sent it."""
        return self._on_request(request)

    def _on_request(self, event: Request) -> H2Stream | None:
        sid = event.stream_id
        server = self.server
        upgrade = event.upgrade
        if (upgrade is not None and (upgrade != b"websocket" or not self._websocket)) or len(
            self.streams
        ) >= self._max_streams:
            self.proto.refuse(sid)
            return None
        if self.proto.going_away and sid > self.proto.last_stream_id:
            self.proto.refuse(sid)
            return None
        if upgrade is not None:
            return self._start_websocket(event)
        app = server.app_for(event.raw_path, event.headers, self._max_body)
        metrics = server.metrics
        if metrics is not None:
            metrics.h2_streams += 1
        stream = H2Stream(self, sid)
        scope = build_scope(self._template, event, self._root_path)
        if self._forwarded:
            apply_forwarded(scope, server)
        if self.proto.push_enabled:
            scope["extensions"] = {**scope["extensions"], "http.response.push": {}}
        cycle = HTTPCycle(stream, app, scope, sid, observer=self._observer)
        stream.cycle = cycle
        self.streams[sid] = stream
        server.admit()  # may reach --limit-max-requests: GOAWAY below
        server.running.add(cycle)
        self.requests += 1
        max_requests = self._max_requests
        if server.shutting_down or (max_requests is not None and self.requests >= max_requests):
            self.proto.graceful_shutdown()
        cycle.start()
        if self._body_timer is None:
            self._arm_body_timer()
        return stream

    def _start_websocket(self, event: Request) -> H2Stream:
        # RFC 8441: the h2-websocket switch (accept.py) makes the stream, registers it with
        # ``open_websocket`` and starts its session.
        stream: H2Stream = self.server.switches[b"h2-websocket"](self, event)
        return stream

    def open_websocket(self, stream: H2Stream) -> None:
        """Count a websocket stream that a switch opened, before its session starts."""
        server = self.server
        self.streams[stream.stream_id] = stream
        self.websockets.add(stream)
        server.active_requests += 1
        self.requests += 1
        max_requests = self._max_requests
        if server.shutting_down or (max_requests is not None and self.requests >= max_requests):
            self.proto.graceful_shutdown()

    def _on_body(self, event: Body) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is None or stream.cycle is None or stream.gone:
            self.proto.acknowledge(event.stream_id, len(event.data))  # nobody will read it
            return
        stream.unacked += len(event.data)
        stream.received += len(event.data)
        if self._body_meters:
            meter = self._body_meters.get(event.stream_id)
            if meter is not None:
                meter.moved += len(event.data)
                meter.tick(self.loop.time(), False)
        if self._max_body is not None and stream.received > self._max_body:
            logger.info(
                "resetting HTTP/2 stream %d from %s: request body over --limit-request-body (%d bytes)",
                event.stream_id,
                self.client_text(),
                self._max_body,
            )
            self.proto.reset(event.stream_id)  # CANCEL: the body went past --limit-request-body
            if self.server.metrics is not None:
                self.server.metrics.reject("413")
            stream.disconnect(ClientDisconnected("request body too large"), REJECTED)
            return
        stream.cycle.on_body(event.data)

    def _on_end_body(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        cycle = stream.cycle
        if isinstance(cycle, HTTPCycle):
            cycle.on_body_end()  # (narrowed: compiled, a native call; a StreamCycle's is a Python one)
        elif cycle is not None:
            cycle.on_body_end()

    def _on_reset(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None:
            stream.disconnect(ClientDisconnected("stream reset"))

    def _on_rejected(self, event: Rejected) -> None:
        logger.info("closing HTTP/2 connection from %s: %s", self.client_text(), event.detail)
        self.flush()
        self._close()

    @property
    def access_log(self) -> bool:
        return self._access_log

    def client_text(self) -> str:
        """The client as the logs name it."""
        return describe_client(self._template.get("client"))

    # ------------------------------------------------------------------ for the streams

    def flush(self) -> None:
        """Write whatever the protocol has framed."""
        data = self.proto.data_to_send()
        if data and self.transport is not None and not self._closed:
            if self.write_paused and self._write_meter is not None:
                self._write_meter.written += len(data)
            self.transport.write(data)

    def flush_soon(self) -> None:
        """Write what the protocol has framed once the ready callbacks have run
        (``ServerState.write_soon``): the responses that streams complete in one pass of the event
        loop leave in one ``write``."""
        if not self._flush_pending:
            self._flush_pending = True
            self.server.write_soon(self)

    def flush_now(self) -> None:
        """``flush_soon``'s write, when its time comes."""
        self._flush_pending = False
        self.flush()

    def response_complete(self, stream: H2Stream) -> None:
        if self.server.write_at_once():
            self.flush()
        else:
            self.flush_soon()
        self.server.total_requests += 1

    def stream_finished(self, stream: H2Stream) -> None:
        sid = stream.stream_id
        streams = self.streams
        if sid not in streams:
            return
        del streams[sid]  # (not pop: compiled, ``in`` and ``del`` are native)
        if self.websockets:
            self.websockets.discard(stream)
        self.paused_streams.discard(stream)
        cycle = stream.cycle
        if stream.unacked and stream.ack:
            self.proto.acknowledge(sid, stream.unacked)  # the app left without reading it all
            stream.unacked = 0
        if cycle is not None and not cycle.body_done and not stream.gone and not self._closed:
            self.proto.reset(sid, NO_ERROR)  # answered: the client may stop sending the body
        if not stream.ack:
            self.resume_upgrade_body()  # the rest of the upgrade body is read and dropped
        server = self.server
        server.active_requests -= 1
        server.running.discard(cycle if cycle is not None else getattr(stream, "session", None))
        if server.shutting_down and server.tasks_done is not None and not server.active_requests:
            server.tasks_done.set()
        self.flush_soon()
        if not self.streams:
            self._last_active = self.loop.time()
            if self.proto.going_away or self._peer_leaving:
                self._close()

    def _wake_streams(self) -> None:
        if self.write_paused:
            return
        pending = self.proto.pending
        for stream in list(self.paused_streams):
            if stream.gone or not pending(stream.stream_id):
                self.paused_streams.discard(stream)
                if not stream.gone:
                    stream.write_paused = False
                stream.wake()

    # ------------------------------------------------------------------ shutdown and timers

    @property
    def idle(self) -> bool:
        """True while no stream is open."""
        return not self.streams

    @property
    def scope_template(self) -> dict[str, Any]:
        return self._template

    def shutdown(self) -> None:
        """Graceful shutdown: GOAWAY; open streams finish; then close."""
        self.proto.graceful_shutdown()
        for websocket in list(self.websockets):
            websocket.shutdown()
        self.flush()
        if not self.streams:
            self._close()

    def _close(self) -> None:
        if self._closed or self.transport is None:
            return
        self.flush()  # what flush_soon() would have written
        self._closed = True
        self.transport.close()

    def _arm_idle_timer(self) -> None:
        timeout = self.server.config.http.timeout_keep_alive
        if timeout is not None:
            self._timer = self.loop.call_at(self._last_active + timeout, self._on_idle_timer)

    def _on_idle_timer(self) -> None:
        self._timer = None
        if self._closed:
            return
        timeout = self.server.config.http.timeout_keep_alive or 0.0
        if not self.streams and self.loop.time() >= self._last_active + timeout:
            self.proto.close(NO_ERROR)
            self.flush()
            self._close()
            return
        if self.streams:
            self._last_active = self.loop.time()
        self._arm_idle_timer()

    def arm_stall_timer(self) -> None:
        timeout = self._h2.h2_timeout_stalled
        if self._stall_timer is None and timeout is not None and not self._closed:
            self._stall_seen = {sid: self.proto.pending(sid) for sid in self.proto.blocked_streams}
            self._stall_timer = self.loop.call_later(timeout, self._on_stall_timer)

    def _on_stall_timer(self) -> None:
        self._stall_timer = None
        if self._closed:
            return
        proto = self.proto
        for sid in proto.blocked_streams:
            if self._stall_seen.get(sid) == proto.pending(sid):
                logger.info("resetting HTTP/2 stream %d from %s: zero window stall", sid, self.client_text())
                proto.reset(sid, CANCEL)
                stream = self.streams.get(sid)
                if stream is not None:
                    if self.server.metrics is not None:
                        self.server.metrics.reject("stall_timeout")
                    stream.disconnect(ClientDisconnected("flow-control window stalled"), TIMED_OUT)
        self.flush()
        if proto.blocked_streams or self.write_paused:
            self.arm_stall_timer()

    # ------------------------------------------------------------------ minimum data rates

    def body_wanted(self, stream: H2Stream) -> None:
        """A stream's app waits for request body: time the client's rate from now."""
        if self.server.min_request_body_rate is None or not stream.ack or self._closed:
            return  # (an h2c upgrade body is HTTP/1.1 bytes: not timed here)
        now = self.loop.time()
        meter = self._body_meters.get(stream.stream_id)
        if meter is None:
            meter = self._body_meters[stream.stream_id] = RateMeter(now)
            self.server.rate_watch.add(self)
        meter.tick(now, True)

    def watch_rates(self) -> None:
        """A stream's response waits for window: the sweep times it."""
        if self.server.min_response_rate is not None and not self._closed:
            self.server.rate_watch.add(self)

    def check_rates(self, now: float) -> bool:
        """The once-a-second check of the minimum data rates; False once nothing is timed."""
        if self._closed:
            return False
        server = self.server
        grace = server.min_rate_grace
        watching = False
        body_rate = server.min_request_body_rate
        for sid, meter in list(self._body_meters.items()):
            stream = self.streams.get(sid)
            cycle = stream.cycle if stream is not None else None
            if stream is None or stream.gone or not isinstance(cycle, HTTPCycle) or cycle.body_done:
                del self._body_meters[sid]
                continue
            meter.tick(now, meter.timing and self.proto.receiving(sid))
            if body_rate is not None and meter.too_slow(body_rate, grace):
                del self._body_meters[sid]
                self._body_too_slow(stream, cycle, meter)
            else:
                watching = True
        watching = self._check_windows(now) or watching
        writes = self._write_meter
        if writes is not None:
            writes.look(now, self.write_paused)
            rate = server.min_response_rate
            if rate is not None and writes.too_slow(rate, grace):
                logger.info(
                    "closing HTTP/2 connection from %s: %d bytes taken in %.1f s, under --min-response-rate",
                    self.client_text(),
                    writes.moved,
                    writes.elapsed,
                )
                self._closed = True
                if self.transport is not None:
                    cut_off(self.transport)
                return False
            if self.write_paused:
                watching = True
            else:
                self._write_meter = None
        self.flush()
        return watching

    def _check_windows(self, now: float) -> bool:
        """The response rate of streams whose output waits for the client's window."""
        rate = self.server.min_response_rate
        meters = self._window_meters
        pending = self.proto.pending
        blocked = {s.stream_id: s for s in self.paused_streams if not s.gone and pending(s.stream_id)}
        for sid in list(meters):
            if sid not in blocked:
                del meters[sid]
        for sid, stream in blocked.items():
            size = pending(sid)
            entry = meters.get(sid)
            if entry is None:
                meter = RateMeter(now)
                meter.tick(now, not self.write_paused)
            else:
                meter, last = entry
                meter.moved += max(0, last - size)
                meter.tick(now, not self.write_paused)
            meters[sid] = (meter, size)
            if rate is not None and meter.too_slow(rate, self.server.min_rate_grace):
                del meters[sid]
                self.proto.reset(sid, CANCEL)
                cut_slow_reader(
                    stream, self.server.metrics, f"HTTP/2 stream {sid}", self.client_text(), meter
                )
        return bool(meters)

    def _body_too_slow(self, stream: H2Stream, cycle: HTTPCycle, meter: RateMeter) -> None:
        """408 and RST_STREAM(NO_ERROR), or RST_STREAM CANCEL once the response has started."""
        sid = stream.stream_id
        logger.info(
            "request body on HTTP/2 stream %d from %s: %d bytes in %.1f s, under --min-request-body-rate",
            sid,
            self.client_text(),
            meter.moved,
            meter.elapsed,
        )
        code = CANCEL
        if not cycle.response_started:
            body = b"Request Timeout: the body came slower than the server's --min-request-body-rate\n"
            headers = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"%d" % len(body)),
            ]
            self.proto.send(Response(sid, 408, headers))
            self.proto.send(Data(sid, body, True))
            code = NO_ERROR  # a complete response: the client may stop sending (RFC 9113 §8.1)
        self.proto.reset(sid, code)
        if self.server.metrics is not None:
            self.server.metrics.reject("min_request_body_rate")
        gone = ClientDisconnected("request body slower than --min-request-body-rate")
        stream.disconnect(gone, TIMED_OUT if code == CANCEL else REJECTED)

    def _arm_header_timer(self) -> None:
        timeout = self.server.config.http.timeout_request_header
        if timeout is not None and not self._closed:
            self._header_timer = self.loop.call_later(timeout, self._on_header_timer)

    def _on_header_timer(self) -> None:
        self._header_timer = None
        if self._closed or not self.proto.header_block_open:
            return
        logger.info("closing HTTP/2 connection from %s: header block timeout", self.client_text())
        self.proto.close(ENHANCE_YOUR_CALM, b"request header timeout")
        self.flush()
        self._close()

    def _waits_for_body(self, stream: H2Stream) -> bool:
        """The app has read all the request body it was given and the client may send more, but
        the body is not complete: the client is the one to move."""
        cycle = stream.cycle
        return (
            isinstance(cycle, HTTPCycle)
            and not cycle.body_done
            and not stream.gone
            and stream.ack
            and not stream.unacked
            and self.proto.receiving(stream.stream_id)
        )

    def _arm_body_timer(self) -> None:
        timeout = self._timeout_body
        if self._body_timer is None and timeout is not None and not self._closed:
            waiting = self._waits_for_body
            self._body_seen = {sid: s.received for sid, s in self.streams.items() if waiting(s)}
            self._body_timer = self.loop.call_later(timeout, self._on_body_timer)

    def _on_body_timer(self) -> None:
        """Reset the streams whose request body made no progress for ``--timeout-request-body``
        while the client could send it (as HTTP/1.1 closes the connection)."""
        self._body_timer = None
        if self._closed:
            return
        seen = self._body_seen
        for sid, stream in list(self.streams.items()):
            if seen.get(sid) == stream.received and self._waits_for_body(stream):
                client = self.client_text()
                logger.info("resetting HTTP/2 stream %d from %s: request body timeout", sid, client)
                self.proto.reset(sid, CANCEL)
                if self.server.metrics is not None:
                    self.server.metrics.reject("body_timeout")
                stream.disconnect(ClientDisconnected("request body timed out"), TIMED_OUT)
        self.flush()
        if any(isinstance(s.cycle, HTTPCycle) and not s.cycle.body_done for s in self.streams.values()):
            self._arm_body_timer()


def upgrade_h2c(connection: HTTP1Connection, request: Request) -> None:
    """Answer ``Upgrade: h2c`` with 101 and serve the request as stream 1 over HTTP/2."""
    transport = connection.transport
    settings = [v for n, v in request.headers if n == b"http2-settings"]
    chunked = any(n == b"transfer-encoding" for n, _ in request.headers)
    busy = connection.active is not None or bool(connection.pending)
    if transport is None or len(settings) != 1 or chunked or busy:
        _refuse_upgrade(connection, request, "h2c upgrade needs one HTTP2-Settings and no chunked body")
        return
    template = dict(connection.scope_template)
    h2conn = H2Connection(connection.server, transport, template)
    try:
        h2conn.proto.initiate_upgrade(settings[0])
    except ValueError as exc:
        _refuse_upgrade(connection, request, str(exc))
        return
    trailing = connection.handover()
    transport.write(_SWITCHING)
    transport.set_protocol(h2conn)
    h2conn.server.connections.add(cast(Any, h2conn))
    h2conn._start_upgrade_stream(request)
    h2conn.flush()
    h2conn._arm_idle_timer()
    if trailing:
        h2conn.data_received(trailing)


def _refuse_upgrade(connection: HTTP1Connection, request: Request, detail: str) -> None:
    logger.info("rejected an h2c upgrade from %s: %s", connection.scope_template.get("client"), detail)
    body = b"Bad Request\n"
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(body)),
        (b"connection", b"close"),
    ]
    connection.send_event(Response(request.stream_id, 400, headers))
    connection.send_event(Data(request.stream_id, body, True))
    connection.abort()
