"""HTTP/3 server protocol (RFC 9114) over QUIC (RFC 9000), sans-I/O, on aioquic's two layers.

How it works
------------
One ``H3Server`` per QUIC connection. It owns aioquic's ``QuicConnection`` (packets, TLS 1.3, loss
recovery, congestion control, pacing) and, once ALPN said ``h3``, its ``H3Connection`` (frames,
QPACK by pylsqpack, the control and QPACK streams); both are sans-I/O. This module translates
between them and ``squall.events``, so the ASGI cycle serves an HTTP/3 stream unchanged:
``receive_datagram(data, addr, now)`` returns the events a datagram produced; ``send(event)``
queues the response; ``datagrams_to_send(now)`` is what goes on the wire; ``get_timer()`` and
``handle_timer(now)`` drive QUIC's timers (acks, loss detection, pacing, the idle timeout).

Incoming. A request stream's HEADERS become ``Request`` (``http_version`` ``"3"``, pseudo-headers
removed, ``:authority`` -> ``host``, split ``cookie`` fields joined); DATA becomes ``Body``, the
stream's end ``EndBody``; the client's RESET_STREAM or STOP_SENDING on an open request
``StreamReset``. aioquic checks field names and values, pseudo-headers, connection-specific
fields and Content-Length against the body (RFC 9114 §4.2, §4.3); this module adds the rest of
§4.3.1 (``:scheme``/``:path`` for everything but CONNECT, ``:authority`` against Host, the method
a token). A malformed request is a stream error: the stream is reset (and reading it stopped)
with H3_MESSAGE_ERROR and the connection carries on; any other protocol error closes the
connection with the code aioquic picked. Request trailers are read and dropped (ASGI has none).

Flow control. Incoming: aioquic doubles a stream's receive limit whenever half of it has arrived,
whatever the application reads; here a request stream's limit is what the application has read
(plus the framing around it) and ``stream_window`` more (``_Quic._write_stream_limits``), raised
once half a window was read, so a stream buffers at most its window however slow the app, and a
connection at most ``max_concurrent_streams`` windows. The app reads are reported by the
connection with ``acknowledge()``. Outgoing: ``pending(stream_id)`` is what a stream holds that
the client has not acknowledged yet (waiting for flow-control credit, in flight, or lost and
queued again); the connection makes the application's ``send()`` wait while it is large.

Limits. Concurrent request streams are QUIC's MAX_STREAMS (a stream counts until both sides
finished it); a HEADERS frame longer than ``max_header_list_size``, or a header list decoding to
more than that, resets the stream (H3_EXCESSIVE_LOAD); resets (the client's, or ours for a
malformed request) beyond ``max_reset_rate`` a second close the connection with
H3_EXCESSIVE_LOAD (rapid reset). WebTransport, HTTP datagrams, extended CONNECT and server push
are not offered.

Connection ids carry stateless reset tokens derived from ``reset_secret`` (``reset_token``), so
whichever worker receives a packet for a connection it does not hold can answer with a Stateless
Reset (``stateless_reset``) and the client starts a new connection at once instead of timing out.

Routing across workers. Every connection id a connection issues begins with its worker's
``cid_tag`` (``TAG_LENGTH`` random bytes), so whichever worker receives a packet can tell which
worker holds the connection (``tag_of``) and pass it on over a local socket with the client's
address in front (``encode_forward``/``decode_forward``); see ``server/http3.py``.

Shutdown. ``graceful_shutdown()`` sends GOAWAY naming the first request stream not served; the
streams below it finish, later ones are rejected (H3_REQUEST_REJECTED: the client may retry them
elsewhere).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import ssl
import struct
import time
from collections.abc import Callable
from typing import Any

from aioquic._buffer import Buffer
from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import (
    ErrorCode,
    FrameType,
    H3Connection,
    H3Stream,
    MessageError,
    ProtocolError,
    Setting,
    encode_frame,
)
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import (
    MAX_STREAM_DATA_FRAME_CAPACITY,
    NetworkAddress,
    QuicConnection,
    QuicConnectionId,
)
from aioquic.quic.events import (
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    ProtocolNegotiated,
    QuicEvent,
    StopSendingReceived,
    StreamDataReceived,
)
from aioquic.quic.events import StreamReset as QuicStreamReset
from aioquic.quic.packet import QuicFrameType
from aioquic.quic.packet_builder import QuicPacketBuilder
from aioquic.quic.recovery import QuicPacketSpace
from aioquic.quic.stream import QuicStream
from aioquic.tls import Alert, AlertBadCertificate, AlertDescription, verify_certificate
from aioquic.tls import Context as TLSContext
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from squall.events import (
    Body,
    Data,
    EndBody,
    Event,
    Headers,
    Informational,
    Rejected,
    Request,
    Response,
    StreamReset,
    Trailers,
)
from squall.grammar import TOKEN
from squall.protocol.http2 import TokenBucket

ALPN = ["h3"]
TLS_VERSION = 0x0304  # QUIC always runs TLS 1.3 (RFC 9001 §4.2)
H3_NO_ERROR = ErrorCode.H3_NO_ERROR
H3_INTERNAL_ERROR = ErrorCode.H3_INTERNAL_ERROR
H3_EXCESSIVE_LOAD = ErrorCode.H3_EXCESSIVE_LOAD
H3_REQUEST_REJECTED = ErrorCode.H3_REQUEST_REJECTED
H3_REQUEST_CANCELLED = ErrorCode.H3_REQUEST_CANCELLED
H3_MESSAGE_ERROR = ErrorCode.H3_MESSAGE_ERROR

# Fields that are meaningless in HTTP/3 and dropped from responses (RFC 9114 §4.2).
_CONNECTION_HEADERS = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
_STATUS = {code: str(code).encode() for code in range(100, 600)}
_NO_CONTENT = frozenset((204, 304))
_FIELD_OVERHEAD = 32  # per field, as HTTP/2 and HTTP/3 count a header list's size

CID_LENGTH = 8  # the length of the connection ids squall issues (aioquic's default)
TAG_LENGTH = 4  # how many of their first bytes name the worker that issued them

# A forwarded datagram's header: version, address family (4 or 6), port, IPv6 flow info and
# scope id, the address (an IPv4 address in the first 4 bytes); then the datagram as received.
_FORWARD = struct.Struct("!BBHII16s")
_FORWARD_VERSION = 1
FORWARD_HEADER = _FORWARD.size


def tag_of(cid: bytes) -> bytes | None:
    """The worker tag a destination connection id carries (None: not one of squall's length)."""
    return cid[:TAG_LENGTH] if len(cid) == CID_LENGTH else None


def new_cid(tag: bytes) -> bytes:
    """A fresh connection id beginning with ``tag``."""
    return tag + os.urandom(CID_LENGTH - len(tag))


def encode_forward(addr: NetworkAddress) -> bytes:
    """The header put before a datagram passed to another worker: the client's address
    (``(host, port)`` or ``(host, port, flowinfo, scope_id)``, as asyncio gives it)."""
    host, port = addr[0], int(addr[1])
    if ":" in host:
        flow, scope = (int(addr[2]), int(addr[3])) if len(addr) >= 4 else (0, 0)
        return _FORWARD.pack(_FORWARD_VERSION, 6, port, flow, scope, socket.inet_pton(socket.AF_INET6, host))
    return _FORWARD.pack(_FORWARD_VERSION, 4, port, 0, 0, socket.inet_pton(socket.AF_INET, host))


def decode_forward(data: bytes) -> tuple[NetworkAddress, bytes] | None:
    """The client's address and the datagram of a forwarded message; None when malformed."""
    if len(data) <= FORWARD_HEADER:
        return None
    version, family, port, flow, scope, raw = _FORWARD.unpack_from(data)
    payload = data[FORWARD_HEADER:]
    if version != _FORWARD_VERSION:
        return None
    if family == 4:
        return (socket.inet_ntop(socket.AF_INET, raw[:4]), port), payload
    if family == 6:
        return (socket.inet_ntop(socket.AF_INET6, raw), port, flow, scope), payload
    return None


def server_configuration(
    certfile: str,
    keyfile: str | None,
    password: str | None = None,
    *,
    idle_timeout: float = 60.0,
    stream_window: int = 262144,
    max_concurrent_streams: int = 100,
    client_cert_reqs: int = ssl.CERT_NONE,
    ca_certs: bytes | None = None,
) -> QuicConfiguration:
    """The QUIC configuration shared by a worker's connections (TLS 1.3 with ALPN h3).
    ``client_cert_reqs`` (``ssl.CERT_*``) and ``ca_certs`` (PEM): client certificates, asked
    for only with CAs to verify them against."""
    configuration = QuicConfiguration(
        is_client=False,
        alpn_protocols=ALPN,
        connection_id_length=CID_LENGTH,
        idle_timeout=idle_timeout,
        max_stream_data=stream_window,
        max_data=stream_window * max(4, min(max_concurrent_streams, 64)),
    )
    configuration.load_cert_chain(certfile, keyfile, password)
    if ca_certs and client_cert_reqs != ssl.CERT_NONE:
        configuration.verify_mode = client_cert_reqs  # (aioquic's server does not look at these:
        configuration.cadata = ca_certs  # _Quic does, see _ask_client_certificate)
    return configuration


class _CertificateRequired(Alert):
    description = AlertDescription.certificate_required


def _ask_client_certificate(context: TLSContext, required: bool, cadata: bytes) -> None:
    """Make a server handshake ask for the client's certificate and verify it against ``cadata``
    (aioquic's server can ask, but neither verifies nor insists): a missing one when ``required``
    fails the handshake (certificate_required), an unverified one too (bad_certificate), as
    OpenSSL does for HTTP/1.1 and HTTP/2 over TLS."""
    context._request_client_certificate = True
    handle_certificate = context._server_handle_certificate
    handle_verify = context._server_handle_certificate_verify

    def on_certificate(buf: Buffer) -> None:
        handle_certificate(buf)
        if required and context._peer_certificate is None:
            raise _CertificateRequired("a client certificate is required")

    def on_verify(buf: Buffer) -> None:
        handle_verify(buf)  # the signature: the client holds the certificate's key
        leaf = context._peer_certificate
        assert leaf is not None
        verify_certificate(leaf, context._peer_certificate_chain, cadata=cadata)
        try:
            usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            return
        if ExtendedKeyUsageOID.CLIENT_AUTH not in usage:
            raise AlertBadCertificate("the certificate is not for client authentication")

    setattr(context, "_server_handle_certificate", on_certificate)  # noqa: B010 (an instance's own)
    setattr(context, "_server_handle_certificate_verify", on_verify)  # noqa: B010


def certificate_pem(configuration: QuicConfiguration) -> str | None:
    """The server's own certificate (PEM), as the ASGI ``tls`` extension's ``server_cert``."""
    cert = configuration.certificate
    return None if cert is None else cert.public_bytes(Encoding.PEM).decode("ascii")


def reset_token(secret: bytes, cid: bytes) -> bytes:
    """The stateless reset token of connection id ``cid``: derived from a secret every worker
    shares, so a worker can reset a connection another worker (or an earlier process) held."""
    return hmac.new(secret, cid, hashlib.sha256).digest()[:16]


def stateless_reset(secret: bytes, cid: bytes, received: int) -> bytes | None:
    """A Stateless Reset (RFC 9000 §10.3) for a packet of ``received`` bytes to unknown ``cid``:
    shorter than what came, so two endpoints cannot loop; None when that is too short."""
    size = min(received - 1, 43)
    if size < 21:
        return None
    head = bytes([0x40 | (os.urandom(1)[0] & 0x3F)]) + os.urandom(size - 17)
    return head + reset_token(secret, cid)


class _HeadersTooLarge(ProtocolError):
    """A HEADERS frame longer than the header list limit (a stream error here)."""

    error_code = ErrorCode.H3_EXCESSIVE_LOAD


class _Quic(QuicConnection):
    """aioquic's QUIC connection, with receive credit on request streams granted as the
    application reads (see the module docstring)."""

    def __init__(
        self, *, window: int, max_streams: int, reset_secret: bytes, cid_tag: bytes = b"", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.reset_secret = reset_secret
        self.cid_tag = cid_tag
        first = self._host_cids[0]
        if cid_tag:  # the id the client will send to from its second flight on: tagged too
            first.cid = self.host_cid = self._local_initial_source_connection_id = new_cid(cid_tag)
        first.stateless_reset_token = reset_token(reset_secret, first.cid)
        self.window = window
        self.taken: dict[int, int] = {}  # request stream -> stream bytes the H3 layer took
        self.unread: dict[int, int] = {}  # request stream -> body bytes the app has not read
        for limit, value in ((self._local_max_streams_bidi, max_streams), (self._local_max_streams_uni, 16)):
            limit.value = limit.sent = value

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        configuration = self._configuration
        if configuration.cadata and configuration.verify_mode not in (None, ssl.CERT_NONE):
            required = configuration.verify_mode == ssl.CERT_REQUIRED
            _ask_client_certificate(self.tls, required, configuration.cadata)

    def _write_stream_limits(
        self, builder: QuicPacketBuilder, space: QuicPacketSpace, stream: QuicStream
    ) -> None:
        sid = stream.stream_id
        if sid is None or sid % 4 != 0:  # not a request stream: control and QPACK streams are read at once
            super()._write_stream_limits(builder, space, stream)
            return
        if stream.receiver.is_finished:
            return
        target = self.taken.get(sid, 0) - self.unread.get(sid, 0) + self.window
        if target - stream.max_stream_data_local >= self.window // 2:
            stream.max_stream_data_local = target
        if stream.max_stream_data_local_sent != stream.max_stream_data_local:
            buf = builder.start_frame(
                QuicFrameType.MAX_STREAM_DATA,
                capacity=MAX_STREAM_DATA_FRAME_CAPACITY,
                handler=self._on_max_stream_data_delivery,
                handler_args=(stream,),
            )
            buf.push_uint_var(sid)
            buf.push_uint_var(stream.max_stream_data_local)
            stream.max_stream_data_local_sent = stream.max_stream_data_local

    def _replenish_connection_ids(self) -> None:
        # As aioquic's, with ids that carry the worker's tag and tokens any worker can derive.
        while len(self._host_cids) < min(8, self._remote_active_connection_id_limit):
            cid = new_cid(self.cid_tag) if self.cid_tag else os.urandom(CID_LENGTH)
            token = reset_token(self.reset_secret, cid)
            self._host_cids.append(QuicConnectionId(cid, self._host_cid_seq, token))
            self._host_cid_seq += 1

    def forget(self, sid: int) -> None:
        self.taken.pop(sid, None)
        self.unread.pop(sid, None)

    def unacknowledged(self, sid: int) -> int:
        """Bytes queued on stream ``sid`` that the peer has not acknowledged."""
        stream = self._streams.get(sid)
        if stream is None:
            return 0
        sender = stream.sender
        return sender._buffer_stop - sender._buffer_start

    def acked(self, sid: int) -> int:
        """How far (a stream offset) the peer has acknowledged stream ``sid`` without a gap."""
        stream = self._streams.get(sid)
        return 0 if stream is None else stream.sender._buffer_start

    def sending_reset(self, sid: int) -> bool:
        stream = self._streams.get(sid)
        return stream is not None and stream.sender._reset_error_code is not None


class _H3(H3Connection):
    """aioquic's HTTP/3 layer with squall's settings, a HEADERS size limit, and malformed requests
    as stream errors (aioquic closes the connection for them)."""

    def __init__(self, quic: QuicConnection, max_field_section: int) -> None:
        self.max_field_section = max_field_section
        self.dropped: dict[int, int] = {}  # request streams reset for a stream error -> code
        self.newly_dropped: list[int] = []
        super().__init__(quic)

    def _get_local_settings(self) -> dict[int, int]:
        settings = super()._get_local_settings()
        settings.pop(Setting.ENABLE_CONNECT_PROTOCOL, None)  # no extended CONNECT offered
        settings[Setting.MAX_FIELD_SECTION_SIZE] = self.max_field_section
        return settings

    def _check_request_or_push_frame_type(self, frame_type: int, stream: H3Stream) -> None:
        super()._check_request_or_push_frame_type(frame_type, stream)
        if frame_type == FrameType.HEADERS and (stream.frame_size or 0) > self.max_field_section:
            raise _HeadersTooLarge(f"HEADERS frame of {stream.frame_size} bytes")

    def handle_event(self, event: QuicEvent) -> list[H3Event]:
        if self._is_done:
            return []
        sid = getattr(event, "stream_id", -1)
        if sid in self.dropped:
            return []  # the late frames of a stream reset for a stream error
        try:
            if isinstance(event, StreamDataReceived):
                return self._receive_stream_data(event)
            if isinstance(event, StopSendingReceived):
                self._receive_stop_sending(sid)
            elif isinstance(event, QuicStreamReset):
                self._receive_stream_reset(sid)
        except (MessageError, _HeadersTooLarge) as exc:
            if sid % 4 != 0:  # unblocked by the QPACK encoder stream: not confined to one stream
                self._fail(exc)
            else:
                self.drop(sid, exc.error_code)
        except ProtocolError as exc:
            self._fail(exc)
        return []

    def _fail(self, exc: ProtocolError) -> None:
        self._is_done = True
        self._quic.close(error_code=exc.error_code, reason_phrase=exc.reason_phrase)

    def drop(self, sid: int, code: int) -> None:
        """Reset request stream ``sid`` both ways with ``code`` and forget its state."""
        self.dropped[sid] = code
        self.newly_dropped.append(sid)
        self._stream.pop(sid, None)
        decoder = self._decoder.cancel_stream(sid)
        if decoder and self._local_decoder_stream_id is not None:
            self._quic.send_stream_data(self._local_decoder_stream_id, decoder)
        self._quic.reset_stream(sid, code)
        self._quic.stop_stream(sid, code)

    def goaway(self, stream_id: int) -> None:
        """Send GOAWAY on the control stream: requests from ``stream_id`` on are not served."""
        if self._local_control_stream_id is not None:
            frame = encode_frame(FrameType.GOAWAY, encode_uint_var(stream_id))
            self._quic.send_stream_data(self._local_control_stream_id, frame)


class _Stream:
    """A request stream served by the application: what its response needs to remember."""

    __slots__ = ("head", "head_request", "no_content", "request_done", "response_done")

    def __init__(self, head_request: bool) -> None:
        self.head: Headers | None = None  # the response head, held until the first body chunk
        self.head_request = head_request
        self.no_content = head_request
        self.request_done = False
        self.response_done = False


def parse_request(sid: int, fields: Headers, max_size: int) -> Request | tuple[int, str]:
    """A decoded request header list as ``Request``, or ``(error code, why)`` when malformed."""
    method = scheme = path = authority = None
    headers: Headers = []
    cookies: list[bytes] = []
    host: bytes | None = None
    size = 0
    for name, value in fields:
        size += len(name) + len(value) + _FIELD_OVERHEAD
        if name[:1] == b":":
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b":scheme":
                scheme = value
            elif name == b":authority":
                authority = value
            else:
                return H3_MESSAGE_ERROR, f"pseudo-header {name!r} is not served"
        elif name == b"cookie":
            cookies.append(value)
        else:
            if name == b"host":
                host = value
            headers.append((name, value))
    if size > max_size:
        return H3_EXCESSIVE_LOAD, f"header list of {size} bytes"
    if method is None or not TOKEN.fullmatch(method):
        return H3_MESSAGE_ERROR, "missing or invalid :method"
    if method == b"CONNECT":
        return H3_REQUEST_REJECTED, "CONNECT is not served"
    if scheme is None or not path or (path[:1] != b"/" and path != b"*"):
        return H3_MESSAGE_ERROR, "missing :scheme, or missing or invalid :path"
    if authority is not None and host is not None and authority != host:
        return H3_MESSAGE_ERROR, ":authority and host differ"
    if authority is not None and host is None:
        headers.insert(0, (b"host", authority))
    if cookies:
        headers.append((b"cookie", b"; ".join(cookies)))
    raw_path, _, query = path.partition(b"?")
    return Request(sid, method.decode("ascii"), raw_path, query, "3", headers)


class H3Server:
    """One QUIC connection serving HTTP/3. See the module docstring.

    ``default_headers`` returns the HTTP/1.1-style ``name: value\\r\\n`` block (Date, Server,
    ``--header``, Alt-Svc) every response starts with; it is parsed once per change.
    """

    def __init__(
        self,
        configuration: QuicConfiguration,
        original_destination_connection_id: bytes,
        *,
        max_concurrent_streams: int = 100,
        max_header_list_size: int = 65536,
        stream_window: int = 262144,
        max_reset_rate: float = 100,
        default_headers: Callable[[], bytes] = lambda: b"",
        reset_secret: bytes = b"",
        cid_tag: bytes = b"",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.quic = _Quic(
            configuration=configuration,
            original_destination_connection_id=original_destination_connection_id,
            window=stream_window,
            max_streams=max_concurrent_streams,
            reset_secret=reset_secret or os.urandom(32),
            cid_tag=cid_tag,
        )
        self.h3: _H3 | None = None
        self._max_header_list_size = max_header_list_size
        self._resets = TokenBucket(max_reset_rate, 2 * max_reset_rate, clock)
        self._default_headers = default_headers
        self._defaults_block = b"\0"
        self._defaults: Headers = []
        self._streams: dict[int, _Stream] = {}
        self._next_stream = 0  # the lowest request stream id not seen yet
        self.going_away = False
        self.terminated = False
        self.close_reason = ""
        self.issued: list[bytes] = []  # connection ids issued since the last look (routing)
        self.retired: list[bytes] = []

    # ------------------------------------------------------------------ input

    def receive_datagram(self, data: bytes, addr: NetworkAddress, now: float) -> list[Event]:
        """Feed one UDP datagram; return the events it produced."""
        self.quic.receive_datagram(data, addr, now)
        return self._process()

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must next be called (None: no timer)."""
        return self.quic.get_timer()

    def handle_timer(self, now: float) -> list[Event]:
        """QUIC's timer fired; return the events that produced (the idle timeout ends the connection)."""
        self.quic.handle_timer(now)
        return self._process()

    def _process(self) -> list[Event]:
        out: list[Event] = []
        quic = self.quic
        while True:
            event = quic.next_event()
            if event is None:
                break
            kind = type(event)
            if kind is StreamDataReceived and self.h3 is not None:
                sid = event.stream_id  # type: ignore[attr-defined]
                if sid % 4 == 0:
                    quic.taken[sid] = quic.taken.get(sid, 0) + len(event.data)  # type: ignore[attr-defined]
                for h3_event in self.h3.handle_event(event):
                    self._on_h3_event(h3_event, out)
            elif kind is QuicStreamReset or kind is StopSendingReceived:
                if self.h3 is not None:
                    self.h3.handle_event(event)
                self._on_peer_reset(event.stream_id, event.error_code, out)  # type: ignore[attr-defined]
            elif kind is ProtocolNegotiated:
                self.h3 = _H3(quic, self._max_header_list_size)
            elif kind is ConnectionIdIssued:
                self.issued.append(event.connection_id)  # type: ignore[attr-defined]
            elif kind is ConnectionIdRetired:
                self.retired.append(event.connection_id)  # type: ignore[attr-defined]
            elif kind is ConnectionTerminated:
                self._on_terminated(event, out)  # type: ignore[arg-type]
            if self.h3 is not None and self.h3.newly_dropped:
                self._on_dropped(out)
        return out

    def _on_h3_event(self, event: H3Event, out: list[Event]) -> None:
        sid = event.stream_id  # type: ignore[attr-defined]
        if type(event) is DataReceived:
            stream = self._streams.get(sid)
            if stream is None or stream.request_done:
                return
            if event.data:
                self.quic.unread[sid] = self.quic.unread.get(sid, 0) + len(event.data)
                out.append(Body(sid, event.data))
            if event.stream_ended:
                stream.request_done = True
                out.append(EndBody(sid))
        elif type(event) is HeadersReceived:
            stream = self._streams.get(sid)
            if stream is not None:  # trailers: read, and dropped
                if event.stream_ended and not stream.request_done:
                    stream.request_done = True
                    out.append(EndBody(sid))
                return
            self._on_request(sid, event, out)
        # push promises, datagrams, WebTransport: never negotiated

    def _on_request(self, sid: int, event: HeadersReceived, out: list[Event]) -> None:
        assert self.h3 is not None
        self._next_stream = max(self._next_stream, sid + 4)
        if self.going_away:
            self.h3.drop(sid, H3_REQUEST_REJECTED)
            self.h3.newly_dropped.remove(sid)  # refused, not the client's fault: not metered
            return
        request = parse_request(sid, event.headers, self._max_header_list_size)
        if not isinstance(request, Request):
            self.h3.drop(sid, request[0])
            return
        stream = _Stream(request.method == "HEAD")
        self._streams[sid] = stream
        out.append(request)
        if event.stream_ended:
            stream.request_done = True
            out.append(EndBody(sid))

    def _on_peer_reset(self, sid: int, code: int, out: list[Event]) -> None:
        stream = self._streams.get(sid)
        if stream is None:
            return
        out.append(StreamReset(sid, code))
        self._forget(sid)
        self._meter(out)

    def _on_dropped(self, out: list[Event]) -> None:
        assert self.h3 is not None
        dropped = self.h3.newly_dropped
        self.h3.newly_dropped = []
        for sid in dropped:
            if sid in self._streams:
                out.append(StreamReset(sid, self.h3.dropped[sid]))
                self._forget(sid)
            self._meter(out)

    def _meter(self, out: list[Event]) -> None:
        if not self._resets.take() and not self.terminated:
            self.close(H3_EXCESSIVE_LOAD, "stream resets over the rate limit")
            out.append(Rejected(0, 0, "stream resets over --h3-max-reset-rate"))

    def _on_terminated(self, event: ConnectionTerminated, out: list[Event]) -> None:
        self.terminated = True
        self.close_reason = event.reason_phrase or f"error 0x{event.error_code:x}"
        for sid in list(self._streams):
            out.append(StreamReset(sid, event.error_code))
            self._forget(sid)

    def _forget(self, sid: int) -> None:
        self._streams.pop(sid, None)
        self.quic.forget(sid)

    # ------------------------------------------------------------------ output

    def send(self, event: Event) -> None:
        """Queue an outgoing event; events for a stream that is gone are dropped."""
        sid = event.stream_id
        stream = self._streams.get(sid)
        h3 = self.h3
        if stream is None or h3 is None or stream.response_done or self.quic.sending_reset(sid):
            return
        kind = type(event)
        if kind is Data:
            self._send_data(h3, stream, sid, event)  # type: ignore[arg-type]
        elif kind is Response:
            status = event.status  # type: ignore[attr-defined]
            stream.head = self._head(status, event.headers)  # type: ignore[attr-defined]
            stream.no_content = stream.head_request or status in _NO_CONTENT
        elif kind is Informational:
            fields = [(b":status", _STATUS[event.status]), *event.headers]  # type: ignore[attr-defined]
            h3.send_headers(sid, fields)
        elif kind is Trailers:
            if stream.head is not None:
                h3.send_headers(sid, stream.head)
                stream.head = None
            trailers = [(n, v) for n, v in event.headers if n not in _CONNECTION_HEADERS]  # type: ignore[attr-defined]
            h3.send_headers(sid, trailers, end_stream=True)
            self._response_done(sid, stream)

    def _send_data(self, h3: _H3, stream: _Stream, sid: int, event: Data) -> None:
        data = b"" if stream.no_content else event.data
        head = stream.head
        if head is not None:
            stream.head = None
            if not data and event.end:
                h3.send_headers(sid, head, end_stream=True)
                self._response_done(sid, stream)
                return
            h3.send_headers(sid, head)
        if data or event.end:
            h3.send_data(sid, data, event.end)
        if event.end:
            self._response_done(sid, stream)

    def _response_done(self, sid: int, stream: _Stream) -> None:
        stream.response_done = True
        if stream.request_done:
            self._forget(sid)

    def _head(self, status: int, headers: Headers) -> Headers:
        block = self._default_headers()
        if block is not self._defaults_block:
            self._defaults_block = block
            self._defaults = [
                (name.strip().lower(), value.strip())
                for name, _, value in (line.partition(b":") for line in block.split(b"\r\n") if line)
            ]
        fields = [(b":status", _STATUS[status]), *self._defaults]
        fields.extend((n, v) for n, v in headers if n not in _CONNECTION_HEADERS)
        return fields

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, NetworkAddress]]:
        """The datagrams to send now, each with its destination."""
        return self.quic.datagrams_to_send(now)

    # ------------------------------------------------------------------ for the connection

    def pending(self, stream_id: int) -> int:
        """Response bytes of ``stream_id`` the client has not acknowledged yet."""
        return self.quic.unacknowledged(stream_id)

    def acked(self, stream_id: int) -> int:
        """Response bytes of ``stream_id`` (framing included) the client has acknowledged so far:
        what the minimum response rate measures."""
        return self.quic.acked(stream_id)

    def acknowledge(self, stream_id: int, size: int) -> None:
        """The application read ``size`` body bytes of ``stream_id``: the client may send more."""
        unread = self.quic.unread
        if stream_id in unread:
            unread[stream_id] = max(0, unread[stream_id] - size)

    def stream_finished(self, stream_id: int) -> None:
        """The application is done with ``stream_id``: stop reading a body nobody will read, and
        reset a response it did not complete."""
        stream = self._streams.get(stream_id)
        if stream is None or self.h3 is None:
            return
        if not stream.request_done:
            self.quic.stop_stream(stream_id, H3_NO_ERROR)  # answered: the client may stop sending
            stream.request_done = True
        if not stream.response_done:
            self.quic.reset_stream(stream_id, H3_INTERNAL_ERROR)
            stream.response_done = True
        self._forget(stream_id)

    def reset(self, stream_id: int, code: int = H3_REQUEST_CANCELLED) -> None:
        """Abandon ``stream_id`` both ways (the app failed mid-response, a limit was hit)."""
        if stream_id in self._streams and self.h3 is not None:
            self.h3.drop(stream_id, code)
            self.h3.newly_dropped.remove(stream_id)
            self._forget(stream_id)

    def graceful_shutdown(self) -> None:
        """GOAWAY: no new requests; the open ones finish."""
        if self.going_away:
            return
        self.going_away = True
        if self.h3 is None:
            self.close(H3_NO_ERROR, "shutting down")
        else:
            self.h3.goaway(self._next_stream)

    def close(self, code: int = H3_NO_ERROR, reason: str = "") -> None:
        """Close the connection now (CONNECTION_CLOSE with ``code``)."""
        self.quic.close(error_code=code, reason_phrase=reason)

    def ping(self) -> None:
        """Send a PING: keeps a connection whose streams are quiet (a long poll) from idling out."""
        self.quic.send_ping(0)

    @property
    def flushed(self) -> bool:
        """True when the client has acknowledged everything sent on every stream."""
        return all(
            stream.sender._buffer_stop == stream.sender._buffer_start
            for stream in self.quic._streams.values()
        )

    @property
    def all_sent(self) -> bool:
        """True when every stream's data has been sent at least once (none waits for pacing,
        congestion control or flow control)."""
        return all(stream.sender.buffer_is_empty for stream in self.quic._streams.values())

    @property
    def open_streams(self) -> int:
        """Request streams not finished both ways."""
        return len(self._streams)

    @property
    def cipher_suite(self) -> int | None:
        """The negotiated TLS 1.3 cipher suite as its IANA number (None before the handshake)."""
        tls = getattr(self.quic, "tls", None)
        suite = getattr(getattr(tls, "key_schedule", None), "cipher_suite", None)
        return None if suite is None else int(suite)

    def client_identity(self) -> tuple[list[str], str | None]:
        """The client's certificate chain as it sent it (PEM, leaf first) and the leaf's subject
        as an RFC 4514 string; ``([], None)`` without a client certificate."""
        tls = getattr(self.quic, "tls", None)
        leaf = getattr(tls, "_peer_certificate", None)
        if tls is None or leaf is None:
            return [], None
        chain = [
            cert.public_bytes(Encoding.PEM).decode("ascii") for cert in (leaf, *tls._peer_certificate_chain)
        ]
        return chain, leaf.subject.rfc4514_string()

    @property
    def host_cids(self) -> list[bytes]:
        """Every connection id this connection answers to now."""
        return [entry.cid for entry in self.quic._host_cids]
