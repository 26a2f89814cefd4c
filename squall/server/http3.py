"""HTTP/3: a UDP socket ↔ one ``H3Server`` per QUIC connection ↔ one ``HTTPCycle`` per request stream.

How it works
------------
``H3Endpoint`` is the asyncio ``DatagramProtocol`` of one UDP socket. It routes each datagram by
its destination connection id to the ``H3Connection`` that issued the id (every id a connection
issues or retires is added to or removed from ``routes``); an unknown id on a long-header Initial
packet of a supported version starts a connection (an unsupported version gets Version
Negotiation); a short-header packet for an unknown id gets a Stateless Reset (its token derived
from the private key, the same in every worker and across restarts), anything else is dropped. A
worker has its own socket on the shared port (SO_REUSEPORT): the kernel hashes a client's address
to one worker, so a connection's datagrams reach the worker that holds its state; when the set of
sockets changes (a worker replaced, a rolling reload) some addresses hash elsewhere: every id a
connection issues begins with its worker's tag, and a datagram for another worker's tag is passed
on over that worker's Unix datagram relay (``\0squall-h3-HOST-PORT-TAG``, same user only); a
Stateless Reset only when no worker has the tag.

Draining. A worker that stopped accepting keeps its UDP socket (its connections finish) and so
still gets, by the kernel's hashing, the Initial packets of brand-new connections. It hands them
to a worker that accepts: each accepting endpoint also binds an intake
(``\0squall-h3-new-HOST-PORT-TAG``), closed when it stops accepting; the draining one lists the
intakes in /proc/net/unix (at most once a second), picks one by the client's connection id, and
sends the packets with that id there (they all carry the client's id until it hears the server,
whose ids carry the live worker's tag and route as above). No intake: dropped, as before.

``H3Connection`` feeds datagrams to the sans-I/O ``H3Server`` and dispatches its events as
``server/http2.py`` does: each ``Request`` starts an ``HTTPCycle`` — the same ASGI cycle as
HTTP/1.1 and HTTP/2 — whose ``Channel`` is a small per-stream object (``H3Stream``). What the
protocol queued leaves in ``transmit()``, once per pass of the event loop (``flush()`` schedules
it), so the responses finished in one pass share packets.

Flow control. Outgoing: a stream whose unacknowledged response bytes pass ``--h3-stream-window``
is ``write_paused``; its app waits in ``drain()`` until acknowledgements bring it under half.
Incoming: request body is acknowledged to the protocol (credit for the client) only as the app
reads it (``body_consumed``).

Minimum data rates and the body timeout, per stream, as on HTTP/2 (no timer of their own): a
request body is timed while its app waits in ``receive()`` (``body_wanted``), a response while
its stream is ``write_paused`` (what the client acknowledged, over the time the app waited for
it); the connection is in ``ServerState.rate_watch`` meanwhile and the worker's once-a-second
sweep calls ``check_rates``. A body under ``--min-request-body-rate`` after ``--min-rate-grace``,
or with no byte for ``--timeout-request-body`` while the app waits, gets 408 and STOP_SENDING
(H3_NO_ERROR), or H3_REQUEST_CANCELLED both ways once the response has started; a reader under
``--min-response-rate`` gets H3_REQUEST_CANCELLED. The app sees ``http.disconnect``.

Timers. QUIC's own (ack delay, loss detection, pacing, idle timeout) are one ``call_at`` handle,
re-armed only when ``get_timer()`` changes (no churn: a timer per packet made a 20 MiB transfer
fail on another server). While requests are open a PING every third of ``--h3-idle-timeout``
keeps a quiet long poll from idling the connection out; an idle connection closes after it.

Shutdown. ``shutdown()`` sends GOAWAY; open streams finish, then the connection closes.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import socket
import ssl
import struct
import sys
from typing import Any

from squall.asgi.http import HTTP_EXTENSIONS, REQUEST_KEYS, HTTPCycle, build_scope
from squall.asgi.types import ASGI_VERSION, ClientDisconnected
from squall.config import Config
from squall.events import Body, Data, EndBody, Event, Rejected, Request, Response, StreamReset
from squall.observe.access import CLIENT_LEFT, REJECTED, TIMED_OUT
from squall.server.state import (
    RateMeter,
    ServerState,
    apply_forwarded,
    cut_slow_reader,
    describe_client,
)
from squall.server.streams import StreamChannel

try:  # the http3 extra; without it the CLI refuses --http3, so nothing below is reached
    from aioquic._buffer import Buffer, BufferReadError
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.packet import QuicPacketType, encode_quic_version_negotiation, pull_quic_header

    from squall.protocol.http3 import (
        CID_LENGTH,
        FORWARD_HEADER,
        H3_NO_ERROR,
        H3_REQUEST_CANCELLED,
        TAG_LENGTH,
        TLS_VERSION,
        H3Server,
        certificate_pem,
        decode_forward,
        encode_forward,
        server_configuration,
        stateless_reset,
        tag_of,
    )

    AVAILABLE = True
except ImportError:  # pragma: no cover - the test extra installs aioquic
    AVAILABLE = False

logger = logging.getLogger("squall.error")

_CRED = struct.Struct("iII")  # struct ucred: pid, uid, gid (SCM_CREDENTIALS)
_LINGER = 1.0  # after the last stream of a closing connection, wait this long at most for acks
_MIN_INITIAL = 1200
_SOL_UDP, _UDP_SEGMENT, _GSO_MAX = 17, 103, 64  # <netinet/udp.h>; at most 64 segments a send
_SEGMENT = struct.Struct("=H")  # a client's Initial datagram is padded to at least this (RFC 9000 §14.1)


def configuration(config: Config) -> QuicConfiguration:
    """The QUIC configuration of a worker's connections, from the --ssl-* and --h3-* options."""
    tls, h3 = config.tls, config.http3
    assert tls.ssl_certfile is not None
    ca_certs = None
    if tls.ssl_ca_certs and tls.ssl_cert_reqs != ssl.CERT_NONE:
        with open(tls.ssl_ca_certs, "rb") as handle:  # (the CLI checked it is readable)
            ca_certs = handle.read()
    return server_configuration(
        tls.ssl_certfile,
        tls.ssl_keyfile,
        tls.ssl_keyfile_password,
        idle_timeout=h3.h3_idle_timeout,
        stream_window=h3.h3_stream_window,
        max_concurrent_streams=h3.h3_max_concurrent_streams,
        client_cert_reqs=tls.ssl_cert_reqs,
        ca_certs=ca_certs,
    )


def reset_secret(config: Config) -> bytes:
    """The stateless reset secret every worker derives alike: from the private key's file."""
    path = config.tls.ssl_keyfile or config.tls.ssl_certfile
    assert path is not None
    with open(path, "rb") as handle:
        return hashlib.sha256(b"squall stateless reset\0" + handle.read()).digest()


def bind_udp(host: str, port: int) -> socket.socket:
    """A UDP socket on ``host:port`` that the other workers can bind too (SO_REUSEPORT). Raises OSError."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def gso_runs(datagrams: list[tuple[bytes, Any]]) -> list[tuple[int, int, int]]:
    """Cut ``datagrams`` into runs that one GSO send can carry: ``(start, end, size)`` where every
    datagram in ``[start, end)`` goes to the same address and is ``size`` bytes, except the last,
    which may be shorter; at most 64 to a run."""
    runs = []
    index = 0
    while index < len(datagrams):
        data, addr = datagrams[index]
        size = len(data)
        end = index + 1
        while end < len(datagrams) and end - index < _GSO_MAX and datagrams[end][1] == addr:
            length = len(datagrams[end][0])
            if length > size:
                break
            end += 1
            if length < size:  # a shorter one may end a run, never continue it
                break
        runs.append((index, end, size))
        index = end
    return runs


class H3Stream(StreamChannel["H3Connection"]):
    """The ``Channel`` of one request stream's ``HTTPCycle``."""

    __slots__ = ("discard_body",)

    cycle: HTTPCycle | None  # (an HTTPCycle here, never a websocket)

    def __init__(self, conn: H3Connection, stream_id: int) -> None:
        super().__init__(conn, conn.loop, stream_id, False)
        self.discard_body = False

    def flush(self) -> None:
        conn = self.conn
        conn.transmit_soon()
        if not self.write_paused and conn.proto.pending(self.stream_id) > conn.high_water:
            self.write_paused = True
            conn.paused.add(self)
            conn.watch_rates()

    def flush_soon(self) -> None:
        self.flush()  # (flush() already sends once the ready callbacks have run)

    def body_consumed(self, cycle: HTTPCycle) -> None:
        if self.unacked:
            self.conn.proto.acknowledge(self.stream_id, self.unacked)
            self.unacked = 0
            self.conn.transmit_soon()

    def response_complete(self, cycle: HTTPCycle) -> None:
        self.conn.transmit_soon()
        self.conn.server.total_requests += 1

    def abort(self) -> None:
        self.conn.proto.reset(self.stream_id, H3_REQUEST_CANCELLED)
        self.conn.transmit_soon()

    def disconnect(self, exc: Exception, ended: str = CLIENT_LEFT) -> None:
        """As ``StreamChannel.disconnect``, but a waiting ``drain()`` raises "stream reset"
        whatever ``exc`` says (and the stream is not marked paused)."""
        super().disconnect(ClientDisconnected("stream reset"), ended)


class H3Connection:
    """One QUIC connection: its ``H3Server``, its streams, its timers."""

    kind = "HTTP/3"

    def __init__(self, endpoint: H3Endpoint, original_cid: bytes, addr: Any) -> None:
        server = endpoint.server
        self.endpoint = endpoint
        self.server = server
        self.loop = server.loop
        config = server.config
        h3 = config.http3
        self.high_water = h3.h3_stream_window
        self._max_body = config.http.limit_request_body
        self._timeout_body = config.http.timeout_request_body
        self._observer = server.observer
        self._root_path = config.app.root_path
        self._keepalive_every = h3.h3_idle_timeout / 3
        self.proto = H3Server(
            endpoint.configuration,
            original_cid,
            max_concurrent_streams=h3.h3_max_concurrent_streams,
            max_header_list_size=h3.h3_max_header_list_size,
            stream_window=h3.h3_stream_window,
            max_reset_rate=h3.h3_max_reset_rate,
            default_headers=server.default_headers,
            reset_secret=endpoint.reset_secret,
            cid_tag=endpoint.tag,
        )
        self._template: dict[str, Any] = {
            "type": "http",
            "asgi": ASGI_VERSION,
            "scheme": "https",
            "server": endpoint.sockname,
            "client": (str(addr[0]), int(addr[1])),
            "root_path": self._root_path,
            "state": server.lifespan_state,
            "extensions": dict(HTTP_EXTENSIONS),
        }
        self._template.update(dict.fromkeys(REQUEST_KEYS))  # set by build_scope per request
        self._forwarded = server.trusts_peer(self._template["client"])
        self._tls_known = False  # the ``tls`` extension is filled in at the first request
        self.streams: dict[int, H3Stream] = {}
        self.paused: set[H3Stream] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._keepalive: asyncio.TimerHandle | None = None
        self._transmit_pending = False
        self._closing = False
        self._close_when_flushed = False  # GOAWAY sent: close once idle and acknowledged
        self.done = False
        self.routes: set[bytes] = set()
        self.forwarded = 0  # datagrams that reached it through another worker's socket
        # Minimum data rates and --timeout-request-body, checked by the worker's sweep: the
        # streams whose app waits for body (meter, and since when no byte came), and the
        # streams whose response was held for the client (meter, acknowledged offset).
        self._body_meters: dict[int, RateMeter] = {}
        self._body_stalled: dict[int, float] = {}
        self._send_meters: dict[int, tuple[RateMeter, int]] = {}

    # ------------------------------------------------------------------ the Connection protocol

    @property
    def transport(self) -> asyncio.Transport | None:
        """None: the UDP socket is the endpoint's, and is closed with it."""
        return None

    @property
    def idle(self) -> bool:
        """True while no request stream is open."""
        return not self.streams

    def shutdown(self) -> None:
        """Graceful shutdown: GOAWAY; open streams finish; once the client has acknowledged
        everything, close."""
        self.proto.graceful_shutdown()
        self._close_when_flushed = True
        if not self.streams:
            self.close(H3_NO_ERROR, "shutting down")  # idle: no need to wait for the GOAWAY's ack
        self.transmit()

    def close(self, code: int, reason: str) -> None:
        """Close the QUIC connection; it stays routed until its closing period ends."""
        if not self._closing:
            self._closing = True
            self.proto.close(code, reason)
            self.server.connections.discard(self)

    # ------------------------------------------------------------------ input

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._dispatch(self.proto.receive_datagram(data, addr, self.loop.time()))
        self.transmit()

    def _dispatch(self, events: list[Event]) -> None:
        for event in events:
            kind = type(event)
            if kind is Body:
                self._on_body(event)  # type: ignore[arg-type]
            elif kind is Request:
                self._on_request(event)  # type: ignore[arg-type]
            elif kind is EndBody:
                stream = self.streams.get(event.stream_id)
                if stream is not None and stream.cycle is not None:
                    stream.cycle.on_body_end()
            elif kind is StreamReset:
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.disconnect(ClientDisconnected("stream reset"))
            elif kind is Rejected:
                logger.info("closing HTTP/3 connection from %s: %s", self.client_text(), event.detail)  # type: ignore[attr-defined]

    def _on_request(self, event: Request) -> None:
        server = self.server
        app = server.app_for(event.raw_path, event.headers, self._max_body)
        sid = event.stream_id
        if not self._tls_known:
            self._tls_known = True
            self._template["extensions"]["tls"] = self.tls_extension()
        stream = H3Stream(self, sid)
        stream.discard_body = app is not server.app  # answered without reading it
        scope = build_scope(self._template, event, self._root_path)
        if self._forwarded:
            apply_forwarded(scope, server)
        cycle = HTTPCycle(stream, app, scope, sid, observer=self._observer)
        stream.cycle = cycle
        self.streams[sid] = stream
        server.admit()  # counts toward --limit-max-requests too
        server.running.add(cycle)  # its task is cancelled at the end of a drain
        if server.shutting_down:
            self.proto.graceful_shutdown()
        cycle.start()
        if self._keepalive is None:
            self._keepalive = self.loop.call_later(self._keepalive_every, self._on_keepalive)

    def _on_body(self, event: Body) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is None or stream.cycle is None or stream.gone or stream.discard_body:
            self.proto.acknowledge(event.stream_id, len(event.data))
            return
        stream.unacked += len(event.data)
        stream.received += len(event.data)
        if self._body_meters:
            meter = self._body_meters.get(event.stream_id)
            if meter is not None:
                meter.moved += len(event.data)
                meter.tick(self.loop.time(), False)
                self._body_stalled.pop(event.stream_id, None)
        if self._max_body is not None and stream.received > self._max_body:
            self.proto.reset(event.stream_id)  # the body went past --limit-request-body
            if self.server.metrics is not None:
                self.server.metrics.reject("413")
            stream.disconnect(ClientDisconnected("request body too large"), REJECTED)
            return
        stream.cycle.on_body(event.data)

    def tls_extension(self) -> dict[str, Any]:
        """The ASGI ``tls`` scope extension of this connection (its handshake is complete: a
        request came)."""
        chain, name = self.proto.client_identity()
        return {
            "server_cert": self.endpoint.server_cert,
            "client_cert_chain": chain,
            "client_cert_name": name,
            "client_cert_error": None,  # a failed verification fails the handshake
            "tls_version": TLS_VERSION,
            "cipher_suite": self.proto.cipher_suite,
        }

    def client_text(self) -> str:
        """The client as the logs name it."""
        return describe_client(self._template.get("client"))

    # ------------------------------------------------------------------ output

    def transmit_soon(self) -> None:
        """Send what the protocol queued once the ready callbacks have run."""
        if not self._transmit_pending:
            self._transmit_pending = True
            self.loop.call_soon(self._transmit_now)

    def _transmit_now(self) -> None:
        self._transmit_pending = False
        self.transmit()

    def transmit(self) -> None:
        """Send the datagrams due, update routes, wake streams, re-arm the timer."""
        proto = self.proto
        if self._close_when_flushed and not self.streams and not self._closing and proto.flushed:
            self.close(H3_NO_ERROR, "shutting down")  # (a close drops whatever is not sent yet)
        endpoint = self.endpoint
        datagrams = proto.datagrams_to_send(self.loop.time())
        if datagrams:
            endpoint.send_all(datagrams)
        if proto.issued or proto.retired:
            endpoint.update_routes(self, proto.issued, proto.retired)
            proto.issued, proto.retired = [], []
        if self.paused:
            self._wake_streams()
        if proto.terminated:
            self._terminated()
            return
        when = proto.get_timer()
        if when != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = when
            self._timer = None if when is None else self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._dispatch(self.proto.handle_timer(self.loop.time()))
        self.transmit()

    def _on_keepalive(self) -> None:
        self._keepalive = None
        if self.streams and not self.done:
            self.proto.ping()
            self.transmit()
            self._keepalive = self.loop.call_later(self._keepalive_every, self._on_keepalive)

    def _wake_streams(self) -> None:
        low = self.high_water // 2
        pending = self.proto.pending
        for stream in list(self.paused):
            if stream.gone or pending(stream.stream_id) <= low:
                self.paused.discard(stream)
                stream.write_paused = False
                stream.wake()

    def stream_finished(self, stream: H3Stream) -> None:
        sid = stream.stream_id
        if self.streams.pop(sid, None) is None:
            return
        self.paused.discard(stream)
        if self._body_meters or self._send_meters:
            self._body_meters.pop(sid, None)
            self._body_stalled.pop(sid, None)
            self._send_meters.pop(sid, None)
        if stream.unacked:
            self.proto.acknowledge(sid, stream.unacked)
            stream.unacked = 0
        self.proto.stream_finished(sid)
        server = self.server
        server.running.discard(stream.cycle)
        server.active_requests -= 1
        if server.shutting_down and server.tasks_done is not None and not server.active_requests:
            server.tasks_done.set()
        if self.proto.going_away:
            self._close_when_flushed = True
            if not self.streams:  # acknowledged or not, close soon: the acks may reach another worker
                self.loop.call_later(_LINGER, self._linger_over)
        self.transmit_soon()

    def _linger_over(self) -> None:
        if self.streams or self._closing or self.done:
            return
        if not self.proto.all_sent:  # still paced or held by congestion control: not yet
            self.loop.call_later(_LINGER, self._linger_over)
            return
        self.close(H3_NO_ERROR, "shutting down")
        self.transmit()

    # ------------------------------------------------------------------ minimum data rates

    def body_wanted(self, stream: H3Stream) -> None:
        """A stream's app waits for request body: time the client's rate, and how long no byte
        came, from now (the sweep judges them; no timer of their own)."""
        server = self.server
        if self._closing or (server.min_request_body_rate is None and self._timeout_body is None):
            return
        now = self.loop.time()
        sid = stream.stream_id
        meter = self._body_meters.get(sid)
        if meter is None:
            meter = self._body_meters[sid] = RateMeter(now)
        meter.tick(now, True)
        self._body_stalled.setdefault(sid, now)
        server.rate_watch.add(self)

    def watch_rates(self) -> None:
        """A stream's response waits for the client's acknowledgements: the sweep times it."""
        if self.server.min_response_rate is not None and not self._closing:
            self.server.rate_watch.add(self)

    def check_rates(self, now: float) -> bool:
        """The once-a-second check of --min-request-body-rate, --timeout-request-body and
        --min-response-rate; False once nothing is timed."""
        if self._closing or self.done:
            self._body_meters.clear()
            self._body_stalled.clear()
            self._send_meters.clear()
            return False
        watching = self._check_bodies(now)
        watching = self._check_senders(now) or watching
        self.transmit_soon()
        return watching

    def _check_bodies(self, now: float) -> bool:
        server = self.server
        rate, timeout = server.min_request_body_rate, self._timeout_body
        watching = False
        for sid, meter in list(self._body_meters.items()):
            stream = self.streams.get(sid)
            cycle = stream.cycle if stream is not None else None
            if stream is None or stream.gone or cycle is None or cycle.body_done:
                del self._body_meters[sid]
                self._body_stalled.pop(sid, None)
                continue
            meter.tick(now, meter.timing)
            since = self._body_stalled.get(sid)
            if timeout is not None and since is not None and now - since >= timeout:
                why = f"no request body for {now - since:.1f} s (--timeout-request-body)"
                self._body_failed(stream, cycle, "body_timeout", why)
            elif rate is not None and meter.too_slow(rate, server.min_rate_grace):
                why = f"{meter.moved} bytes in {meter.elapsed:.1f} s, under --min-request-body-rate"
                self._body_failed(stream, cycle, "min_request_body_rate", why)
            else:
                watching = True
        return watching

    def _body_failed(self, stream: H3Stream, cycle: HTTPCycle, reason: str, why: str) -> None:
        """408 and STOP_SENDING (H3_NO_ERROR), or a reset once the response has started; the app
        sees ``http.disconnect``."""
        sid = stream.stream_id
        del self._body_meters[sid]
        self._body_stalled.pop(sid, None)
        logger.info("request body on HTTP/3 stream %d from %s: %s", sid, self.client_text(), why)
        if cycle.response_started:
            self.proto.reset(sid, H3_REQUEST_CANCELLED)
            ended = TIMED_OUT
        else:
            body = b"Request Timeout: the request body came too slowly\n"
            headers = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"%d" % len(body)),
            ]
            self.proto.send(Response(sid, 408, headers))
            self.proto.send(Data(sid, body, True))
            self.proto.stream_finished(sid)  # a complete response: the client may stop sending
            ended = REJECTED
        if self.server.metrics is not None:
            self.server.metrics.reject(reason)
        stream.disconnect(ClientDisconnected("request body too slow"), ended)

    def _check_senders(self, now: float) -> bool:
        """The response rate of every stream that has been held for the client: acknowledged
        bytes over the time its app waited for them (a stream keeps its meter until it ends)."""
        rate = self.server.min_response_rate
        meters = self._send_meters
        if rate is None:
            meters.clear()
            return False
        acked = self.proto.acked
        for held in self.paused:
            if held.stream_id not in meters and not held.gone:
                meters[held.stream_id] = (RateMeter(now), acked(held.stream_id))
        watching = False
        for sid, (meter, last) in list(meters.items()):
            stream = self.streams.get(sid)
            if stream is None or stream.gone:
                del meters[sid]
                continue
            now_acked = acked(sid)
            meter.moved += max(0, now_acked - last)
            meter.tick(now, stream.write_paused)
            meters[sid] = (meter, now_acked)
            if meter.too_slow(rate, self.server.min_rate_grace):
                del meters[sid]
                self.proto.reset(sid, H3_REQUEST_CANCELLED)
                cut_slow_reader(
                    stream, self.server.metrics, f"HTTP/3 stream {sid}", self.client_text(), meter
                )
            elif stream.write_paused:
                watching = True
        return watching

    def _terminated(self) -> None:
        if self.done:
            return
        self.done = True
        self._closing = True
        self.server.connections.discard(self)
        for handle in (self._timer, self._keepalive):
            if handle is not None:
                handle.cancel()
        gone = ClientDisconnected("connection closed")
        for stream in list(self.streams.values()):
            stream.disconnect(gone)
        self.endpoint.forget(self)


class H3Endpoint(asyncio.DatagramProtocol):
    """One UDP socket: routes datagrams to QUIC connections by destination connection id."""

    def __init__(self, server: ServerState) -> None:
        self.server = server
        self.configuration = configuration(server.config)
        self.reset_secret = reset_secret(server.config)
        self.server_cert = certificate_pem(self.configuration)
        self.routes: dict[bytes, H3Connection] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.sock: socket.socket | None = None  # for sendmsg with GSO; None: transport.sendto
        self.sockname: tuple[str, int] | None = None
        self.accepting = True
        #: The first bytes of every connection id this endpoint's connections issue.
        self.tag = os.urandom(TAG_LENGTH)
        #: The Unix datagram socket other workers forward this endpoint's datagrams to (Linux).
        self.relay: socket.socket | None = None
        self._relay_prefix = b""
        #: While accepting: the Unix datagram socket a draining worker hands new connections to.
        self.intake: socket.socket | None = None
        self._intake_prefix = b""
        self._intakes: list[bytes] = []  # the other workers' intakes, as last listed
        self._intakes_at = -1.0  # when they were listed (loop time)
        self._handed: dict[bytes, bytes] = {}  # a new connection's first id -> the intake it went to
        self.handed_over = 0  # Initial packets (and their followers) passed on while draining
        self.forwarded_out = 0  # datagrams passed to the worker holding their connection
        self.forwarded_in = 0  # datagrams another worker passed to this one

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        name = transport.get_extra_info("sockname")
        self.sockname = (str(name[0]), int(name[1])) if name else None
        if self.sockname is not None and sys.platform == "linux":
            self._open_relay(*self.sockname)

    def _open_relay(self, host: str, port: int) -> None:
        """Bind the relay at ``\0squall-h3-HOST-PORT-TAG`` in the abstract namespace (a tag
        another worker holds is drawn again), and the intake at ``\0squall-h3-new-HOST-PORT-TAG``.
        Without the relay, re-hashed clients get Stateless Resets; without the intake, a draining
        worker cannot hand new connections to this one."""
        self._relay_prefix = f"\0squall-h3-{host}-{port}-".encode()
        self._intake_prefix = f"\0squall-h3-new-{host}-{port}-".encode()
        for _ in range(8):
            try:
                self.relay = self._listen(_bind_abstract(self._relay_prefix + self.tag.hex().encode()))
                break
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    self.tag = os.urandom(TAG_LENGTH)
                    continue
                logger.warning("HTTP/3: no relay between workers: %s", exc)
                return
        if self.relay is None:
            return
        try:
            self.intake = self._listen(_bind_abstract(self._intake_prefix + self.tag.hex().encode()))
        except OSError as exc:
            logger.warning("HTTP/3: no intake for new connections from draining workers: %s", exc)

    def _listen(self, sock: socket.socket) -> socket.socket:
        sock.setblocking(False)
        self.server.loop.add_reader(sock.fileno(), self._relay_readable, sock)
        return sock

    def _unlisten(self, sock: socket.socket | None) -> None:
        if sock is not None:
            self.server.loop.remove_reader(sock.fileno())
            sock.close()

    def _forward(self, tag: bytes, data: bytes, addr: Any) -> bool:
        """Pass a datagram to the worker whose tag its connection id carries; False when no
        worker has that tag (any more)."""
        relay = self.relay
        if relay is None:
            return False
        try:
            relay.sendto(encode_forward(addr) + data, self._relay_prefix + tag.hex().encode())
        except BlockingIOError:
            return True  # that worker is there but behind: dropped, as the network may (QUIC resends)
        except OSError:  # ECONNREFUSED: nobody has the tag
            return False
        self.forwarded_out += 1
        return True

    def _relay_readable(self, sock: socket.socket) -> None:
        if sock.fileno() < 0:
            return
        uid = os.getuid()
        for _ in range(64):  # at most this many a pass: the UDP socket gets its turn too
            try:
                message, ancillary, _, _ = sock.recvmsg(65536 + FORWARD_HEADER, _CMSG_SPACE)
            except OSError:  # BlockingIOError: nothing more now
                return
            if not _sent_by(ancillary, uid):
                continue  # only this user's processes (the other workers) may forward
            decoded = decode_forward(message)
            if decoded is not None:
                self.forwarded_in += 1
                self.receive(decoded[1], decoded[0], forwarded=True)

    def _hand_over(self, cid: bytes, data: bytes, addr: Any) -> None:
        """Draining: pass a new connection's Initial packet to a worker that accepts (through its
        intake), and the packets that follow to the same one (they carry the same id, the
        client's choice, until the client hears from the server); dropped when there is none."""
        relay = self.relay
        if relay is None:
            return
        target = self._handed.get(cid)
        for _ in range(2):  # a worker that has just begun draining too: the next one
            if target is None:
                intakes = self._live_intakes()
                if not intakes:
                    return
                target = intakes[int.from_bytes(cid[-4:], "big") % len(intakes)]
            try:
                relay.sendto(encode_forward(addr) + data, target)
            except BlockingIOError:
                return  # that worker is behind: dropped, as the network may (the client resends)
            except OSError:  # gone, or draining: its intake is closed
                if target in self._intakes:
                    self._intakes.remove(target)
                self._handed.pop(cid, None)
                target = None
                continue
            if cid not in self._handed:
                if len(self._handed) >= _HANDED_MAX:
                    del self._handed[next(iter(self._handed))]
                self._handed[cid] = target
                logger.debug(
                    "HTTP/3 connection from %s handed to another worker (draining)", describe_client(addr)
                )
            self.handed_over += 1
            return

    def _live_intakes(self) -> list[bytes]:
        """The intakes of the other workers on this address (listed from /proc/net/unix at most
        once a second: a draining worker flooded with Initials does not rescan for each)."""
        now = self.server.loop.time()
        if now - self._intakes_at >= 1.0 or self._intakes_at < 0:
            self._intakes_at = now
            self._intakes = [
                name
                for name in abstract_names(self._intake_prefix)
                if not name.endswith(self.tag.hex().encode())
            ]
        return self._intakes

    def sendto(self, data: bytes, addr: Any) -> None:
        if self.transport is not None:
            self.transport.sendto(data, addr)

    def use_gso(self, sock: socket.socket) -> None:
        """Send runs of datagrams with UDP GSO on ``sock`` (the endpoint's own socket; Linux only)."""
        if sys.platform == "linux":
            self.sock = sock

    def send_all(self, datagrams: list[tuple[bytes, Any]]) -> None:
        """Send datagrams; runs of equal-sized ones to one address leave in one ``sendmsg`` with
        UDP generic segmentation offload (Linux), one system call for up to 64 datagrams."""
        sock = self.sock
        if sock is None or len(datagrams) < 2:
            for data, addr in datagrams:
                self.sendto(data, addr)
            return
        for start, end, size in gso_runs(datagrams):
            addr = datagrams[start][1]
            if end - start == 1 or not self._send_segments(sock, datagrams[start:end], size, addr):
                for data, addr in datagrams[start:end]:
                    self.sendto(data, addr)

    def _send_segments(self, sock: socket.socket, run: list[tuple[bytes, Any]], size: int, addr: Any) -> bool:
        buffer = b"".join(data for data, _ in run)
        try:
            sock.sendmsg([buffer], [(_SOL_UDP, _UDP_SEGMENT, _SEGMENT.pack(size))], 0, addr)
        except BlockingIOError:
            return False  # the transport queues them instead
        except OSError:  # no GSO here (old kernel, another OS): plain sends from now on
            self.sock = None
            return False
        return True

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.receive(data, addr)

    def receive(self, data: bytes, addr: Any, forwarded: bool = False) -> None:
        """Route a datagram from ``addr``: to its connection; to the worker whose tag its
        connection id carries (unless ``forwarded`` already); else as an unknown connection's."""
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=CID_LENGTH)
        except (ValueError, BufferReadError):
            return  # not QUIC
        cid = header.destination_cid
        conn = self.routes.get(cid)
        if conn is None:
            if not forwarded:
                tag = tag_of(cid)
                if tag is not None and tag != self.tag and self._forward(tag, data, addr):
                    return
            conn = self._accept(header, data, addr, forwarded)
            if conn is None:
                return
        elif forwarded:
            if not conn.forwarded:
                client = conn.client_text()
                logger.debug("HTTP/3 connection from %s: datagrams forwarded by another worker", client)
            conn.forwarded += 1
        conn.datagram_received(data, addr)

    def _accept(self, header: Any, data: bytes, addr: Any, forwarded: bool = False) -> H3Connection | None:
        if not data[0] & 0x80:  # a short header: a connection this worker does not hold
            reset = stateless_reset(self.reset_secret, header.destination_cid, len(data))
            if reset is not None:
                self.sendto(reset, addr)
            return None
        if header.packet_type != QuicPacketType.INITIAL or len(data) < _MIN_INITIAL:
            return None
        if not self.accepting:
            if not forwarded:  # (a forwarded one came from a worker that drains too: dropped)
                self._hand_over(header.destination_cid, data, addr)
            return None
        limit = self.server.config.http.limit_concurrency
        if limit is not None and len(self.server.connections) >= limit:
            return None  # --limit-concurrency: the client retries, or falls back to TCP
        if header.version not in self.configuration.supported_versions:
            self.sendto(
                encode_quic_version_negotiation(
                    source_cid=header.destination_cid,
                    destination_cid=header.source_cid,
                    supported_versions=self.configuration.supported_versions,
                ),
                addr,
            )
            return None
        conn = H3Connection(self, header.destination_cid, addr)
        self.routes[header.destination_cid] = conn
        conn.routes.add(header.destination_cid)
        self.update_routes(conn, conn.proto.host_cids, [])
        self.server.connections.add(conn)
        return conn

    def update_routes(self, conn: H3Connection, issued: list[bytes], retired: list[bytes]) -> None:
        for cid in issued:
            self.routes[cid] = conn
            conn.routes.add(cid)
        for cid in retired:
            if self.routes.get(cid) is conn:
                del self.routes[cid]
            conn.routes.discard(cid)

    def forget(self, conn: H3Connection) -> None:
        """A connection ended: its ids route nowhere."""
        for cid in conn.routes:
            if self.routes.get(cid) is conn:
                del self.routes[cid]
        conn.routes.clear()

    def stop_accepting(self) -> None:
        """Shutdown: new connections are not started here; their Initial packets are handed to a
        worker that accepts (dropped when there is none). The intake closes: the other draining
        workers hand this one nothing more."""
        self.accepting = False
        self._unlisten(self.intake)
        self.intake = None

    def close(self) -> None:
        """Close the socket (after the drain): connections still open are dropped."""
        for sock in (self.relay, self.intake):
            self._unlisten(sock)
        self.relay = self.intake = None
        for conn in {*self.routes.values()}:
            conn._terminated()
        if self.transport is not None:
            self.transport.close()


_HANDED_MAX = 1024  # new connections a draining worker remembers handing over (their first id)


def abstract_names(prefix: bytes) -> list[bytes]:
    """The bound abstract Unix socket names that begin with ``prefix`` (``\0...``), from
    /proc/net/unix (this network namespace's); empty where it cannot be read."""
    shown = b"@" + prefix[1:]
    try:
        with open("/proc/net/unix", "rb") as table:
            lines = table.read().splitlines()
    except OSError:
        return []
    names = []
    for line in lines[1:]:
        fields = line.split()
        if len(fields) == 8 and fields[7].startswith(shown):
            names.append(b"\0" + fields[7][1:])
    return sorted(set(names))


_CMSG_SPACE = socket.CMSG_SPACE(_CRED.size) if hasattr(socket, "CMSG_SPACE") else 0


def _sent_by(ancillary: list[tuple[int, int, bytes]], uid: int) -> bool:
    """Whether a relay message's credentials (SCM_CREDENTIALS) name user ``uid``."""
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == getattr(socket, "SCM_CREDENTIALS", -1):
            return len(value) >= _CRED.size and _CRED.unpack_from(value)[1] == uid
    return False


def _bind_abstract(name: bytes) -> socket.socket:
    """A Unix datagram socket bound at ``name`` (abstract namespace) that receives its senders'
    credentials (SCM_CREDENTIALS). Raises OSError (EADDRINUSE: another worker has the name)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        sock.bind(name)
    except OSError:
        sock.close()
        raise
    return sock
