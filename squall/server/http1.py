"""An HTTP/1.1 connection: socket ↔ protocol/http1 ↔ one ASGI cycle per request.

``accept`` gives it a socket (cleartext, or TLS whose ALPN did not choose h2). It knows no other
connection kind: an ``Upgrade`` the parser accepted (websocket, h2c) is handed to the switch that
``ServerState.switches`` names, which takes the transport over (``handover``).

How it works
------------
``data_received`` feeds the sans-I/O protocol and dispatches the events it returns: a
``Request`` creates an ``HTTPCycle`` (started at once, or queued behind earlier pipelined
requests so responses stay in order), ``Body``/``EndBody`` go to the cycle the body belongs to,
``Rejected`` flushes the queued error response and closes.

Flow control. Reading pauses while a cycle holds more unread body than ``_BODY_HIGH_WATER`` or
too many pipelined requests wait; writing is the transport's: ``pause_writing`` makes
``send()`` wait in ``drain()`` until the client reads.

Timers (one slot, ``_timer_kind``): ``idle`` while nothing is owed to the client (keep-alive),
``header`` from a request's first byte to the end of its head (never extended by more bytes),
``body`` while we wait on the client for request body (reset by each chunk), plus ``write``
while the client does not read our output.

Minimum data rates (Kestrel's): no timer of their own. A request body is timed while its app
waits in ``receive()`` (``body_wanted`` starts the interval, each chunk ends it); a response while
the transport is paused for writing (the client does not keep up). The connection then joins
``ServerState.rate_watch`` and the worker's once-a-second sweep calls ``check_rates``: a body below
``--min-request-body-rate`` after ``--min-rate-grace`` timed seconds gets 408 (or, once a response
has started, the connection closes); a client taking our output below ``--min-response-rate`` is
cut off. The app sees ``http.disconnect``. The stall timers stay: they also act while the app is not
waiting, and when the rates are off.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
from typing import Any, Final, Protocol

from squall.asgi.http import Channel, HTTPCycle, build_scope, read_file_into
from squall.asgi.types import ASGIMessageError, ClientDisconnected, Scope
from squall.events import Body, EndBody, Event, Rejected, Request
from squall.observe.access import CLIENT_LEFT, REJECTED, TIMED_OUT
from squall.protocol.http1 import HTTP1Server
from squall.server.state import (
    DrainWaiters,
    RateMeter,
    ServerState,
    TransportMeter,
    apply_forwarded,
    cut_off,
    describe_client,
    scope_template,
)

logger: Final = logging.getLogger("squall.error")

_BODY_HIGH_WATER: Final = 256 * 1024
_MAX_PIPELINE: Final = 32
#: Output pieces framed in one pass up to this many bytes in all go out joined, in one write(2):
#: a writev(2) of the pieces costs the kernel more than copying them (bench/raw_server.py changed
#: to write head and body as two pieces: +0.4 µs of system time per hello response).
_JOIN_OUTPUT: Final = 4096
_PAUSE_BODY: Final = 1
_PAUSE_PIPELINE: Final = 2
_LINGER_SECONDS: Final = 2.0
_SENDFILE_MAX: Final = 1 << 30  # bytes per sendfile(2) call
_SENDFILE_NUDGE: Final = 16 * 1024  # written through the transport when the socket is full (see send_file)
_LOCAL_CHUNK: Final = 1 << 20  # bytes per read when a file goes to a client on this host (see send_file)
_LOCAL_SENDFILE_MAX: Final = 2 << 20  # files up to this size go by sendfile(2) even then (sendfile_wanted)
_GONE: Final = (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN)


def sendfile_wanted(
    mode: str, client: tuple[str, int | None] | None, server: tuple[str, int | None] | None, count: int
) -> bool:
    """Whether ``--sendfile MODE`` sends ``count`` bytes of a file with sendfile(2) to ``client``
    connected at ``server``; else they go by reads.

    ``auto``: not a file of more than 2 MiB to a client on this host (see ``on_this_host``). There
    the reader copies the bytes either way, and copying them out of the page-cache pages sendfile
    queues costs it about twice the CPU of copying our buffers. Measured on loopback with wrk,
    100 MiB files, 4 connections: sendfile 1.5-1.9 GB/s, 0.16-0.24 CPU s/GB here and 0.54-0.68 in
    the reader; 1 MiB reads 3.2 GB/s, 0.31 here and 0.24 in the reader. A small file is the other
    way round (one sendfile call against a read off the event loop): through Starlette's
    FileResponse, 8 connections, sendfile/reads 1 MiB 2.21/1.76 GB/s, 2 MiB even (2.01/1.94,
    1.82/1.86), 4 MiB 1.69/2.42, 16 MiB 1.87/2.35. A remote client's bytes leave through a NIC,
    where sendfile saves the copy.
    """
    if mode != "auto":
        return mode == "on"
    return count <= _LOCAL_SENDFILE_MAX or not on_this_host(client, server)


def on_this_host(client: tuple[str, int | None] | None, server: tuple[str, int | None] | None) -> bool:
    """The peer is on this host: loopback, the server's own address, or a Unix socket (None)."""
    if client is None or server is None:
        return True
    try:
        peer = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped
    return peer.is_loopback or client[0] == server[0]


class Exchange(Protocol):
    """What the pipeline holds per request: an ``HTTPCycle``, or a websocket upgrade waiting its
    turn (``wsconnection``). A Protocol, not the class: compiled code checks declared types."""

    stream_id: int
    buffered: int

    @property
    def body_done(self) -> bool: ...
    @property
    def awaiting_continue(self) -> bool: ...
    def start(self) -> None: ...
    def on_body(self, data: bytes) -> None: ...
    def on_body_end(self) -> None: ...
    def on_disconnect(self, ended: str = CLIENT_LEFT) -> None: ...


class HTTP1Connection(Channel):
    """An asyncio protocol serving HTTP/1.1 on one transport."""

    kind = "HTTP/1"

    def __init__(self, server: ServerState) -> None:
        self.server = server
        self.loop = server.loop
        http = server.config.http
        self._http = http
        # The timeouts read for every request, kept here (compiled: native attributes).
        self._timeout_header = http.timeout_request_header
        self._timeout_body = http.timeout_request_body
        self._timeout_idle = http.timeout_keep_alive
        self._observer = server.observer
        self._head_at = 0.0  # when the head in progress was first seen (for --timeout-request)
        self._lost_as = CLIENT_LEFT  # how the requests still open end if the connection goes
        self._root_path = server.config.app.root_path
        self.proto = HTTP1Server(
            max_request_line=http.limit_request_line,
            max_head_size=http.limit_request_head,
            max_headers=http.limit_request_headers,
            max_body_size=http.limit_request_body,
            default_headers=server.default_headers,
            upgrades=server.upgrades,
        )
        self.transport: asyncio.Transport | None = None
        self.cycles: dict[int, Exchange] = {}
        self.pending: list[Exchange] = []  # requests waiting their turn (pipelining): rarely any
        self.active: Exchange | None = None
        self.receiving: Exchange | None = None
        self.write_paused = False
        self._drain = DrainWaiters()
        self._paused = 0
        self._closed = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_kind: str | None = None
        self._timer_at = 0.0
        self._deadline = 0.0
        self._write_timer: asyncio.TimerHandle | None = None
        self._flush_pending = False
        # What this connection's scopes are made of (no template of its own: see scope_template).
        self._scope_base: dict[str, Any] = {}  # the server's (ServerState.scope_base)
        self._client: tuple[str, int | None] | None = None
        self._extensions: dict[str, Any] = {}
        self._forwarded = False  # the peer is a trusted proxy: its requests' proxy headers count
        # ``_intercept``: data_received discards the input (lingering close). One flag, so the
        # per-read cost is a single check.
        self._intercept = False
        self._linger_timer: asyncio.TimerHandle | None = None
        self._timed: Exchange | None = None  # the request whose body rate is timed
        self._body_meter: RateMeter | None = None
        self._write_meter: TransportMeter | None = None

    # ------------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)
        template = scope_template(self.server, transport)
        self._scope_base = self.server.scope_base(template)
        self._client = template["client"]
        self._extensions = template["extensions"]
        self._forwarded = self.server.trusts_peer(self._client)
        self._update_timer()

    def data_received(self, data: bytes) -> None:
        if self._intercept:
            return  # lingering: the input is dropped
        if self._timer_kind == "idle":
            self._timer_kind = None
        events = self.proto.receive_data(data)
        to_start: list[HTTPCycle] = []
        for event in events:
            kind = type(event)
            if kind is Request:
                self._on_request(event, to_start)  # type: ignore[arg-type]
            elif kind is EndBody:
                self._on_end_body(event)
            elif kind is Body:
                self._on_body(event)  # type: ignore[arg-type]
            elif kind is Rejected:
                self._on_rejected(event)  # type: ignore[arg-type]
        progressed = bool(events)
        events.clear()  # (the protocol keeps the list until its next read: let the events go now)
        for cycle in to_start:
            cycle.start()
        if not self._closed:
            self._after_input(progressed)

    def _after_input(self, progressed: bool) -> None:
        proto = self.proto
        if proto.input_closed and not proto.response_pending:
            self.flush()
            self._close()
        elif proto.head_in_progress or self.receiving is not None or not proto.response_pending:
            self._update_timer(restart_body=progressed)
        else:
            self._timer_kind = None  # a complete request is with the app: no deadline applies

    def eof_received(self) -> bool | None:
        # The client shut its sending side. Like uvicorn, take that as the client leaving: the
        # transport closes and running apps get http.disconnect (a long poll must not hang).
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.server.connections.discard(self)
        self._write_meter = self._body_meter = self._timed = None
        self._cancel_timer()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        if self._write_timer is not None:
            self._write_timer.cancel()
        ended = self._lost_as
        for cycle in self.cycles.values():
            cycle.on_disconnect(ended)
        for cycle in self.pending:
            self._forget(cycle)
        self.pending.clear()
        self._drain.wake(ClientDisconnected("client disconnected"))

    def pause_writing(self) -> None:
        self.write_paused = True
        timeout = self._timeout_body
        if timeout is not None and self._write_timer is None:
            self._write_timer = self.loop.call_later(timeout, self._on_write_stalled)
        if self.server.min_response_rate is not None and self.transport is not None:
            now = self.loop.time()
            if self._write_meter is None:
                self._write_meter = TransportMeter(self.transport, now)
            self._write_meter.look(now, True)
            self.server.rate_watch.add(self)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        if self._write_meter is not None:
            self._write_meter.look(self.loop.time(), False)
        self._drain.wake(None)

    # ------------------------------------------------------------------ events

    def _on_request(self, event: Request, to_start: list[HTTPCycle]) -> None:
        if event.upgrade is not None:
            self.server.switches[event.upgrade](self, event)  # websocket or h2c: see accept.py
            return
        server = self.server
        app = server.app_for(event.raw_path, connections=len(server.connections))
        began, self._head_at = self._head_at, 0.0
        cycle = HTTPCycle(
            self,
            app,
            None,  # made when the app starts (HTTPCycle.scope)
            event.stream_id,
            expect_continue=event.expect_continue,
            observer=self._observer,
            began=began,
            request=event,
        )
        server.admit()  # may reach --limit-max-requests, which starts the drain
        if server.shutting_down:  # draining: serve it, say Connection: close, then close
            self.proto.close_after_response()
        server.running.add(cycle)
        self.cycles[event.stream_id] = cycle
        self.receiving = cycle
        if self.active is None:
            self.active = cycle
            to_start.append(cycle)
        else:
            self.pending.append(cycle)
            if len(self.pending) >= _MAX_PIPELINE:
                self._pause(_PAUSE_PIPELINE)

    def _on_body(self, event: Body) -> None:
        cycle = self.cycles.get(event.stream_id)
        if cycle is None:
            return  # the app already finished: the rest of its body is dropped
        cycle.on_body(event.data)
        if cycle is self._timed and self._body_meter is not None:
            self._body_meter.moved += len(event.data)
            self._body_meter.tick(self.loop.time(), False)
        if cycle.buffered > _BODY_HIGH_WATER:
            self._pause(_PAUSE_BODY)

    def _on_end_body(self, event: Event) -> None:
        cycle = self.cycles.get(event.stream_id)
        if isinstance(cycle, HTTPCycle):
            cycle.on_body_end()  # (narrowed: compiled, a native call; an Exchange's is a Python one)
        elif cycle is not None:
            cycle.on_body_end()
        if self.receiving is cycle:
            self.receiving = None

    def _on_rejected(self, event: Rejected) -> None:
        logger.info("rejected a request from %s: %d %s", self._client_text(), event.status, event.detail)
        if self.server.metrics is not None:
            self.server.metrics.reject(str(event.status))
        cycle = self.cycles.get(event.stream_id)
        if cycle is not None and not cycle.body_done:
            cycle.on_disconnect(REJECTED)
            if cycle in self.pending:
                self.pending.remove(cycle)
                self._forget(cycle)
        self.receiving = None
        self.flush()

    def _client_text(self) -> str:
        return describe_client(self._client)

    # ------------------------------------------------------------------ Channel (for HTTPCycle)

    def send_event(self, event: Event) -> None:
        self.proto.send(event)  # framed now, written on flush()

    def make_scope(self, request: Request) -> Scope:
        scope = self._own_keys(build_scope(self._scope_base, request, self._root_path))
        if self._forwarded:
            apply_forwarded(scope, self.server)
        return scope

    def flush(self) -> None:
        """Write whatever the protocol has framed."""
        output = self.proto.take_output()
        transport = self.transport
        if not output or transport is None or self._closed:
            return
        size = 0
        for piece in output:
            size += len(piece)
        if self.write_paused and self._write_meter is not None:
            self._write_meter.written += size
        if len(output) == 1:
            transport.write(output[0])
        elif size <= _JOIN_OUTPUT:
            transport.write(b"".join(output))
        else:
            transport.writelines(output)

    def flush_soon(self) -> None:
        """Write what the protocol has framed once the ready callbacks have run
        (``ServerState.write_soon``): the body chunks an app sends within one pass of the event
        loop leave in one write, and the responses of all connections back to back."""
        if not self._flush_pending:
            self._flush_pending = True
            self.server.write_soon(self)

    def flush_now(self) -> None:
        """``flush_soon``'s write, when its time comes."""
        self._flush_pending = False
        self.flush()

    async def drain(self) -> None:
        """Wait until the client has read enough of our output."""
        if self._closed:
            raise ClientDisconnected("client disconnected")
        if self.write_paused:
            await self._drain.wait(self.loop)

    async def send_file(self, stream_id: int, fd: int, offset: int, count: int) -> None:
        """``count`` bytes of ``fd`` from ``offset`` as body of ``stream_id``'s response: with
        ``sendfile(2)`` on a plain socket, by reading the file on TLS and where ``--sendfile``
        says so (``sendfile_wanted``)."""
        transport = self.transport
        sock = None if transport is None else transport.get_extra_info("socket")
        if sock is None or transport is None or transport.get_extra_info("sslcontext") is not None:
            await read_file_into(self, stream_id, fd, offset, count)
            return
        if not sendfile_wanted(self._http.sendfile, self._client, self._scope_base["server"], count):
            logger.debug("sending %d bytes of a file by reads", count)
            await read_file_into(self, stream_id, fd, offset, count, size=_LOCAL_CHUNK)
            return
        logger.debug("sending %d bytes of a file with sendfile(2)", count)
        after = self.proto.external_body(stream_id, count)
        self.flush()
        if after is None:
            return
        if self._gone(transport):  # the write of the head found the client gone
            raise ClientDisconnected("client disconnected")
        # The bytes must follow what the transport holds: sendfile only while its buffer is empty.
        # With a high-water mark of 0 the transport pauses us whenever it holds anything and
        # resumes us once it is empty, so "not paused" means "empty". When the socket is full, a
        # little of the file goes through the transport instead, which then waits for the socket.
        low, high = transport.get_write_buffer_limits()
        transport.set_write_buffer_limits(high=0, low=0)
        try:
            await self._sendfile(transport, sock.fileno(), fd, offset, count)
        finally:
            if not self._gone(transport):
                transport.set_write_buffer_limits(high=high, low=low)
        if after and not self._gone(transport):
            transport.write(after)

    def _gone(self, transport: asyncio.Transport) -> bool:
        """Closed by us, or closing under us: uvloop closes a transport whose write failed before
        ``connection_lost`` runs, and then refuses every call on it."""
        return self._closed or transport.is_closing()

    async def _sendfile(
        self, transport: asyncio.Transport, sock: int, fd: int, offset: int, count: int
    ) -> None:
        while count:
            if self.write_paused:
                await self.drain()
            if self._gone(transport):
                raise ClientDisconnected("client disconnected")
            try:
                sent = os.sendfile(sock, fd, offset, min(count, _SENDFILE_MAX))
            except BlockingIOError:
                sent = -1
            except OSError as exc:
                if exc.errno in _GONE:
                    raise ClientDisconnected("client disconnected") from None
                raise
            if sent == 0:
                raise ASGIMessageError(f"the file ended {count} bytes before the end of the body")
            if sent < 0:  # the socket is full
                nudge = os.pread(fd, min(count, _SENDFILE_NUDGE), offset)
                if not nudge:
                    raise ASGIMessageError(f"the file ended {count} bytes before the end of the body")
                transport.write(nudge)
                sent = len(nudge)
            offset += sent
            count -= sent

    def body_wanted(self, cycle: HTTPCycle) -> None:
        """The app waits for request body: time the client's rate from now (``check_rates``)."""
        if self.server.min_request_body_rate is None or cycle is not self.receiving:
            return
        now = self.loop.time()
        if self._timed is not cycle or self._body_meter is None:
            self._timed = cycle
            self._body_meter = RateMeter(now)
            self.server.rate_watch.add(self)
        self._body_meter.tick(now, True)

    def check_rates(self, now: float) -> bool:
        """The once-a-second check of the minimum data rates; False once nothing is timed."""
        server = self.server
        watching = False
        meter = self._body_meter
        if meter is not None and self._closed:
            self._timed = self._body_meter = meter = None
        if meter is not None:
            timed = self._timed
            if timed is not self.receiving or timed is None or timed.body_done:
                self._timed = self._body_meter = None
            else:
                meter.tick(now, meter.timing)
                rate = server.min_request_body_rate
                if rate is not None and meter.too_slow(rate, server.min_rate_grace):
                    self._body_too_slow(meter)
                    return False
                watching = True
        writes = self._write_meter
        if writes is not None:
            writes.look(now, self.write_paused)
            rate = server.min_response_rate
            if rate is not None and writes.too_slow(rate, server.min_rate_grace):
                logger.info(
                    "closing connection from %s: it took %d response bytes in %.1f s, under "
                    "--min-response-rate",
                    self._client_text(),
                    writes.moved,
                    writes.elapsed,
                )
                if server.metrics is not None:
                    server.metrics.reject("min_response_rate")
                self._cut_off()
                return False
            if self.write_paused:
                watching = True  # (also after close: the transport still holds output for it)
            elif not self.proto.response_pending:
                self._write_meter = None  # the next response is timed afresh
        return watching

    def _body_too_slow(self, meter: RateMeter) -> None:
        """408 (or, once the response has started, close): the app sees ``http.disconnect``."""
        logger.info(
            "request body from %s: %d bytes in %.1f s, under --min-request-body-rate",
            self._client_text(),
            meter.moved,
            meter.elapsed,
        )
        receiving = self.receiving
        self._timed = self._body_meter = None
        for event in self.proto.reject_body(408, "request body too slow (under --min-request-body-rate)"):
            if type(event) is Rejected:
                self._on_rejected(event)
        self.receiving = receiving  # the client is still sending: close lingering
        self.flush()
        self._close()

    def body_consumed(self, cycle: HTTPCycle) -> None:
        """The app read its buffered body: reading may resume."""
        if self._paused & _PAUSE_BODY:
            self._resume(_PAUSE_BODY)

    def response_complete(self, cycle: HTTPCycle) -> None:
        """The last byte of ``cycle``'s response is framed: write it, at once or with the other
        responses of this pass (``ServerState.write_at_once``), then serve the next one."""
        self.server.total_requests += 1
        if self.active is cycle:
            self.active = None
        closing = not self.proto.keep_alive or (self.server.shutting_down and not self.pending)
        if closing and not self.proto.response_pending:
            self.flush()
            self._close()
            return
        if self.server.write_at_once():
            self.flush()
        else:
            self.flush_soon()
        if self.pending:
            self.active = self.pending.pop(0)
            self._resume(_PAUSE_PIPELINE)
            self.active.start()
        if not self._closed:
            self._update_timer()

    def cycle_finished(self, cycle: HTTPCycle) -> None:
        """The app returned (or raised) for ``cycle``."""
        if cycle.stream_id in self.cycles:
            self._forget(cycle)

    def _forget(self, cycle: Exchange) -> None:
        cycles = self.cycles
        sid = cycle.stream_id
        if sid in cycles:
            del cycles[sid]  # (not pop: a method call where compiled code has ``in`` and ``del``)
        server = self.server
        server.active_requests -= 1
        server.running.discard(cycle)
        if server.shutting_down and server.tasks_done is not None and not server.active_requests:
            server.tasks_done.set()

    def abort(self) -> None:
        """Drop the connection: a response cannot be completed."""
        self.flush()
        self._close()

    # ------------------------------------------------------------------ protocol switch

    @property
    def idle(self) -> bool:
        """True between requests (or before the first): nothing is owed to the client."""
        return not self.proto.response_pending and not self.proto.head_in_progress

    @property
    def scope_template(self) -> dict[str, Any]:
        """The per-connection scope keys (scheme, client, server, root_path, state, extensions),
        made when asked (a websocket handshake, an h2c upgrade): a connection keeps no template
        of its own, only what differs from the server's ``scope_base``, about 1 KiB less per
        idle connection."""
        return self._own_keys(dict(self._scope_base))

    def _own_keys(self, scope: dict[str, Any]) -> dict[str, Any]:
        """``scope``, a copy of the server's ``scope_base``, given this connection's own keys."""
        scope["client"] = self._client
        scope["extensions"] = self._extensions
        return scope

    def handover(self) -> bytes:
        """Give up the transport to another protocol (an upgrade); return the bytes already read
        past the request head. Timers, write waiters and the connection registry are released."""
        if self._flush_pending:
            self.flush()  # a response before the upgrade's, still unwritten (flush_soon)
        self._closed = True
        self._cancel_timer()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        self._drain.wake(None)
        self.server.connections.discard(self)
        self._write_meter = self._body_meter = self._timed = None
        return self.proto.trailing_data

    # ------------------------------------------------------------------ shutdown, pausing, timers

    def shutdown(self) -> None:
        """Graceful shutdown (the worker's drain; ``server.shutting_down`` is set): finish the
        response in flight, then close. Never close under a request: a connection receiving a
        request head, or idle between requests, stays open; the request its client sends is
        answered with ``Connection: close``; an idle one closes at its keep-alive timeout."""
        if self.proto.response_pending:
            self.proto.close_after_response()
            for cycle in self.pending:
                self._forget(cycle)
            self.pending.clear()

    def _close(self) -> None:
        transport = self.transport
        if self._closed or transport is None:
            return
        if self._flush_pending:
            self.flush()  # what flush_soon() would have written
        self._closed = True
        self._cancel_timer()
        if self.receiving is not None and transport.can_write_eof() and not transport.is_closing():
            # Lingering close: the client may still be sending a body we will not read. Closing
            # now would make the kernel answer with RST, which can destroy the response before
            # the client reads it; so send FIN, discard input for a moment, then close.
            self._intercept = True
            self.receiving = None
            transport.write_eof()
            if self._paused:
                self._paused = 0
                transport.resume_reading()
            self._linger_timer = self.loop.call_later(_LINGER_SECONDS, transport.close)
            return
        transport.close()

    def _pause(self, reason: int) -> None:
        if not self._paused and self.transport is not None:
            self.transport.pause_reading()
        self._paused |= reason
        self._update_timer()

    def _resume(self, reason: int) -> None:
        if self._paused & reason:
            self._paused &= ~reason
            if not self._paused and self.transport is not None and not self._closed:
                self.transport.resume_reading()
            self._update_timer(restart_body=True)

    def _wanted_timer(self) -> tuple[str | None, float | None]:
        if self.proto.head_in_progress:
            return "header", self._timeout_header
        receiving = self.receiving
        if receiving is not None:
            if self._paused or receiving.awaiting_continue:
                return None, None
            return "body", self._timeout_body
        if not self.proto.response_pending:
            return "idle", self._timeout_idle
        return None, None

    def _update_timer(self, restart_body: bool = False) -> None:
        if self._closed:
            return
        kind, delay = self._wanted_timer()
        if kind == self._timer_kind and not (kind == "body" and restart_body):
            return
        if kind is None or delay is None:
            self._timer_kind = None
            return
        # Lazy re-arming: moving a deadline later keeps the scheduled handle, which re-arms
        # itself when it fires early; so a keep-alive request costs no timer-heap operations.
        self._timer_kind = kind
        now = self.loop.time()
        if kind == "header":
            self._head_at = now
        deadline = self._deadline = now + delay
        if self._timer is None or self._timer_at > deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        self._timer_kind = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        kind = self._timer_kind
        if kind is None or self._closed:
            return
        if self.loop.time() < self._deadline:
            self._timer_at = self._deadline
            self._timer = self.loop.call_at(self._deadline, self._on_timer)
            return
        self._timer_kind = None
        if kind != "idle":
            logger.info("closing connection from %s: %s timeout", self._client_text(), kind)
            self._lost_as = TIMED_OUT
            if self.server.metrics is not None:
                self.server.metrics.reject(kind + "_timeout")
        self._close()

    def _on_write_stalled(self) -> None:
        self._write_timer = None
        logger.info("closing connection from %s: client stopped reading", self._client_text())
        if self.server.metrics is not None:
            self.server.metrics.reject("write_timeout")
        self._cut_off()

    def _cut_off(self) -> None:
        """Abort the connection: the client does not take what we send."""
        self._lost_as = TIMED_OUT
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        if self.transport is not None:
            self._closed = True
            cut_off(self.transport)


__all__ = ["HTTP1Connection"]
