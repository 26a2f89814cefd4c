"""HTTP/2 conformance (RFC 9113 framing and streams, RFC 7541 HPACK), modelled on h2spec's test list.

h2spec (a Go program) cannot be installed here, so this module walks the same ground with its own
tests. Each test opens a prior-knowledge h2c connection to one shared squall, sends frames packed
byte by byte (so that malformed input is possible; header blocks come from hpack or are packed by
hand) and asserts the reaction the RFC requires, every read bounded by a socket timeout:

- connection error: GOAWAY with the RFC's error code, then the server closes the connection;
- stream error: RST_STREAM with the RFC's code on that stream, or GOAWAY with that code (an
  endpoint may treat any stream error as a connection error, RFC 9113 §5.4);
- input to ignore: the connection goes on (a PING is answered, or a request served) with no error;
- a well-formed exchange: the response.

Test names carry RFC 9113's section numbers (``test_6_5_...``; h2spec uses RFC 7540's, which differ
for the preface, 3.5 → 3.4, and for HTTP semantics, 8.1.2.x → 8.1.1/8.2/8.3); HPACK tests are
``test_hpack_<RFC 7541 section>``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from h2.errors import ErrorCodes
from hpack import Decoder, Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

from tests.h2wire import (
    ACK,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    PADDED,
    PING,
    PRIORITY,
    PRIORITY_FLAG,
    PUSH_PROMISE,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
)

from .harness import Server

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
TIMEOUT = 5.0


# settings (RFC 9113 §6.5.2)
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE = 1, 2, 3, 4, 5
ENABLE_CONNECT_PROTOCOL = 8

Fields = list[tuple[bytes, bytes]]
GET: Fields = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"example.com")]
POST: Fields = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/echo"),
    (b":authority", b"example.com"),
]
# a request the application never answers (it returns when the client goes): the stream stays open
WAIT: Fields = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/long-poll?id=h2conf"), GET[3]]


def frame(kind: int, payload: bytes = b"", flags: int = 0, sid: int = 0) -> bytes:
    """One frame, packed by hand: nothing is checked, so anything can be sent."""
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", sid) + payload


def settings(*pairs: tuple[int, int], flags: int = 0, sid: int = 0) -> bytes:
    return frame(SETTINGS, b"".join(struct.pack(">HI", key, value) for key, value in pairs), flags, sid)


def window_update(sid: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, struct.pack(">I", increment), sid=sid)


def rst_stream(sid: int, code: int = ErrorCodes.CANCEL) -> bytes:
    return frame(RST_STREAM, struct.pack(">I", code), sid=sid)


def ping(opaque: bytes = b"conform!", flags: int = 0, sid: int = 0) -> bytes:
    return frame(PING, opaque, flags, sid)


def priority(sid: int, depends_on: int = 0, weight: int = 16, exclusive: bool = False) -> bytes:
    return frame(PRIORITY, priority_fields(depends_on, weight, exclusive), sid=sid)


def priority_fields(depends_on: int, weight: int, exclusive: bool) -> bytes:
    return struct.pack(">IB", depends_on | (0x80000000 if exclusive else 0), weight - 1)


# --- HPACK by hand (RFC 7541 §5 and §6) ------------------------------------------------------------


def hp_int(value: int, prefix: int, first: int = 0) -> bytes:
    """An HPACK integer with an N-bit prefix; ``first`` holds the representation's pattern bits."""
    limit = (1 << prefix) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hp_str(data: bytes) -> bytes:
    return hp_int(len(data), 7) + data


def hp_huffman(coded: bytes) -> bytes:
    """A string literal with the H bit set; ``coded`` is taken as Huffman code, valid or not."""
    return hp_int(len(coded), 7, 0x80) + coded


def indexed(index: int) -> bytes:
    return hp_int(index, 7, 0x80)


def literal(name: int | bytes, value: bytes, kind: str = "without") -> bytes:
    """A literal field: ``kind`` is ``incremental``, ``without`` or ``never`` (indexing); ``name``
    is a table index or a new name."""
    prefix, pattern = {"incremental": (6, 0x40), "without": (4, 0x00), "never": (4, 0x10)}[kind]
    if isinstance(name, int):
        return hp_int(name, prefix, pattern) + hp_str(value)
    return bytes([pattern]) + hp_str(name) + hp_str(value)


def size_update(size: int) -> bytes:
    return hp_int(size, 5, 0x20)


# A GET /scope from the static table only (RFC 7541 Appendix A): no dynamic table involved.
STATIC_GET = indexed(2) + indexed(6) + literal(4, b"/scope") + literal(1, b"example.com")


# --- the peer ----------------------------------------------------------------------------------------


@dataclass
class Reply:
    headers: Fields = field(default_factory=list)
    body: bytes = b""
    data_frames: list[int] = field(default_factory=list)  # the DATA payload sizes, in order

    @property
    def status(self) -> int:
        return int(dict(self.headers)[b":status"])


class Peer:
    """A raw HTTP/2 client connection: bytes out, parsed frames in, header blocks decoded."""

    def __init__(self, port: int, *pairs: tuple[int, int], handshake: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.server_settings: dict[int, int] = {}
        self.blocks: dict[int, list[Fields]] = {}  # decoded header blocks by stream
        self._block = bytearray()
        self._buffer = bytearray()
        if handshake:
            self.handshake(*pairs)

    def close(self) -> None:
        self.sock.close()

    def send(self, *chunks: bytes) -> None:
        """Send in one write; the server may already have closed (after an error): no matter."""
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.sock.sendall(b"".join(chunks))

    def handshake(self, *pairs: tuple[int, int]) -> None:
        """Preface and SETTINGS; wait for the server's SETTINGS (acknowledged) and its ACK of ours."""
        self.send(PREFACE, settings(*pairs))
        theirs = ours = False
        while not (theirs and ours):
            got = self.next_frame()
            assert got is not None, "the connection closed during the handshake"
            if isinstance(got, SettingsFrame) and "ACK" in got.flags:
                ours = True
            elif isinstance(got, SettingsFrame):
                self.server_settings.update(got.settings)
                self.send(settings(flags=ACK))
                theirs = True

    def headers(
        self,
        sid: int,
        fields: Fields = GET,
        *,
        flags: int = END_STREAM | END_HEADERS,
        block: bytes | None = None,
    ) -> bytes:
        """A HEADERS frame; the block is encoded now, so send every frame built this way, in order."""
        return frame(HEADERS, self.encoder.encode(fields) if block is None else block, flags, sid)

    # --- reading ---------------------------------------------------------------------------------

    def next_frame(self) -> Frame | None:
        """The next frame from the server, or None once it has closed the connection."""
        buffer = self._buffer
        while True:
            if len(buffer) >= 9:
                got, length = Frame.parse_frame_header(memoryview(bytes(buffer[:9])))
                if len(buffer) >= 9 + length:
                    got.parse_body(memoryview(bytes(buffer[9 : 9 + length])))
                    del buffer[: 9 + length]
                    self._decode(got)
                    return got
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                return None
            buffer += data

    def _decode(self, got: Frame) -> None:
        if isinstance(got, HeadersFrame | ContinuationFrame):
            self._block += got.data
            if "END_HEADERS" in got.flags:
                decoded = self.decoder.decode(bytes(self._block), raw=True)
                self.blocks.setdefault(got.stream_id, []).append(decoded)  # type: ignore[arg-type]
                self._block.clear()

    def frames(self) -> Iterator[Frame]:
        """Frames until the connection closes."""
        while (got := self.next_frame()) is not None:
            yield got

    def connection_error(self, *codes: int) -> GoAwayFrame:
        """Expect GOAWAY with one of ``codes``, then the end of the connection."""
        goaway = next((f for f in self.frames() if isinstance(f, GoAwayFrame)), None)
        assert goaway is not None, f"closed without GOAWAY, expected {_names(codes)}"
        assert goaway.error_code in codes, f"GOAWAY {_name(goaway.error_code)}, expected {_names(codes)}"
        rest = list(self.frames())
        assert not any(isinstance(f, GoAwayFrame) for f in rest)
        return goaway

    def stream_error(self, sid: int, *codes: int) -> None:
        """Expect RST_STREAM on ``sid`` (or GOAWAY) with one of ``codes``."""
        for got in self.frames():
            if (isinstance(got, RstStreamFrame) and got.stream_id == sid) or isinstance(got, GoAwayFrame):
                kind = type(got).__name__
                assert got.error_code in codes, f"{kind} {_name(got.error_code)}, expected {_names(codes)}"
                return
        raise AssertionError(f"closed without RST_STREAM or GOAWAY, expected {_names(codes)}")

    def still_open(self) -> list[Frame]:
        """The connection is alive and reported no error: a fresh PING comes back acknowledged.
        Returns the frames that came before the answer."""
        opaque = os.urandom(8)
        self.send(ping(opaque))
        seen: list[Frame] = []
        for got in self.frames():
            assert not isinstance(got, GoAwayFrame | RstStreamFrame), f"unexpected {got!r}"
            if isinstance(got, PingFrame) and "ACK" in got.flags and got.opaque_data == opaque:
                return seen
            seen.append(got)
        raise AssertionError("the connection closed instead of answering PING")

    def response(self, sid: int) -> Reply:
        """Read stream ``sid``'s response until END_STREAM; an error on the way fails the test."""
        reply = Reply()
        for got in self.frames():
            if isinstance(got, GoAwayFrame) or (isinstance(got, RstStreamFrame) and got.stream_id == sid):
                raise AssertionError(f"expected a response, got {got!r}")
            if got.stream_id != sid:
                continue
            if isinstance(got, HeadersFrame | ContinuationFrame) and "END_HEADERS" in got.flags:
                block = self.blocks[sid][-1]
                if not reply.headers and not dict(block).get(b":status", b"").startswith(b"1"):
                    reply.headers = block  # the final head (not a 1xx, not trailers)
            elif isinstance(got, DataFrame):
                reply.body += got.data
                reply.data_frames.append(len(got.data))
            if "END_STREAM" in got.flags:
                return reply
        raise AssertionError(f"the connection closed before stream {sid} ended")


def _name(code: int) -> str:
    with contextlib.suppress(ValueError):
        return ErrorCodes(code).name
    return hex(code)


def _names(codes: tuple[int, ...]) -> str:
    return " or ".join(map(_name, codes))


@pytest.fixture
def peer(server: Server) -> Iterator[Peer]:
    """A connection to the module's squall, handshake done."""
    connection = Peer(server.port)
    yield connection
    connection.close()


# --- cases alike: bytes after the handshake, then one expected reaction --------------------------

Build = Callable[[Peer], bytes]


@dataclass
class Case:
    id: str
    build: Build
    codes: tuple[int, ...]
    sid: int = 0  # a stream error on this stream (GOAWAY accepted too); 0: a connection error


def params(cases: list[Case]) -> list[object]:
    return [pytest.param(c, id=c.id) for c in cases]


PROTOCOL_ERROR = ErrorCodes.PROTOCOL_ERROR
FRAME_SIZE_ERROR = ErrorCodes.FRAME_SIZE_ERROR
FLOW_CONTROL_ERROR = ErrorCodes.FLOW_CONTROL_ERROR
STREAM_CLOSED = ErrorCodes.STREAM_CLOSED
COMPRESSION_ERROR = ErrorCodes.COMPRESSION_ERROR
REFUSED_STREAM = ErrorCodes.REFUSED_STREAM


def open_post(p: Peer, sid: int = 1) -> bytes:
    """HEADERS of a POST /echo whose body is still to come."""
    return p.headers(sid, POST, flags=END_HEADERS)


def _headers_then(follow: Build) -> Build:
    """HEADERS without END_HEADERS on stream 1, then ``follow`` where a CONTINUATION must come."""

    def build(p: Peer) -> bytes:
        return frame(HEADERS, p.encoder.encode(GET)[:4], END_STREAM, 1) + follow(p)

    return build


CONNECTION_ERRORS = [
    # 4.2 Frame Size
    Case(
        "4.2 HEADERS over SETTINGS_MAX_FRAME_SIZE",
        lambda p: p.headers(1, block=p.encoder.encode(GET) + literal(b"x-big", b"a" * 17000)),
        (FRAME_SIZE_ERROR,),
    ),
    # 4.3 Field Section Compression and Decompression
    Case(
        "4.3 undecodable field block",
        lambda p: frame(HEADERS, b"\x00\x0aab", END_STREAM | END_HEADERS, 1),
        (COMPRESSION_ERROR,),
    ),
    Case("4.3 PRIORITY inside a field block", _headers_then(lambda p: priority(1)), (PROTOCOL_ERROR,)),
    Case(
        "4.3 HEADERS of another stream inside a field block",
        _headers_then(lambda p: frame(HEADERS, b"", END_STREAM | END_HEADERS, 3)),
        (PROTOCOL_ERROR,),
    ),
    # 5.1 Stream States: idle
    Case("5.1 idle: DATA", lambda p: frame(DATA, b"test", END_STREAM, 1), (PROTOCOL_ERROR,)),
    Case("5.1 idle: RST_STREAM", lambda p: rst_stream(1), (PROTOCOL_ERROR,)),
    Case("5.1 idle: WINDOW_UPDATE", lambda p: window_update(1, 100), (PROTOCOL_ERROR,)),
    Case(
        "5.1 idle: CONTINUATION",
        lambda p: frame(CONTINUATION, p.encoder.encode(GET), END_HEADERS, 1),
        (PROTOCOL_ERROR,),
    ),
    # 5.1.1 Stream Identifiers
    Case("5.1.1 even stream identifier", lambda p: p.headers(2), (PROTOCOL_ERROR,)),
    Case(
        "5.1.1 stream identifier lower than a previous one",
        lambda p: p.headers(5, WAIT) + p.headers(3),
        (PROTOCOL_ERROR,),
    ),
    # 5.5 Extending HTTP/2
    Case(
        "5.5 unknown frame type inside a field block",
        _headers_then(lambda p: frame(0x16, b"\0" * 8, 0, 1)),
        (PROTOCOL_ERROR,),
    ),
    # 6.1 DATA
    Case("6.1 DATA on stream 0", lambda p: frame(DATA, b"test", END_STREAM, 0), (PROTOCOL_ERROR,)),
    Case(
        "6.1 DATA with pad length over its payload",
        lambda p: open_post(p) + frame(DATA, b"\x0atest", END_STREAM | PADDED, 1),
        (PROTOCOL_ERROR,),
    ),
    # 6.2 HEADERS
    Case("6.2 HEADERS on stream 0", lambda p: p.headers(0), (PROTOCOL_ERROR,)),
    Case(
        "6.2 HEADERS with pad length over its payload",
        lambda p: frame(HEADERS, b"\xff" + p.encoder.encode(GET), END_STREAM | END_HEADERS | PADDED, 1),
        (PROTOCOL_ERROR,),
    ),
    # 6.3 PRIORITY
    Case("6.3 PRIORITY on stream 0", lambda p: priority(0), (PROTOCOL_ERROR,)),
    # 6.4 RST_STREAM
    Case("6.4 RST_STREAM on stream 0", lambda p: rst_stream(0), (PROTOCOL_ERROR,)),
    Case(
        "6.4 RST_STREAM of 3 octets",
        lambda p: p.headers(1, WAIT) + frame(RST_STREAM, b"\0\0\0", 0, 1),
        (FRAME_SIZE_ERROR,),
    ),
    # 6.5 SETTINGS
    Case(
        "6.5 SETTINGS ACK with a payload",
        lambda p: settings((MAX_FRAME_SIZE, 16384), flags=ACK),
        (FRAME_SIZE_ERROR,),
    ),
    Case("6.5 SETTINGS on stream 1", lambda p: settings(sid=1), (PROTOCOL_ERROR,)),
    Case("6.5 SETTINGS of 3 octets", lambda p: frame(SETTINGS, b"\0\x02\0"), (FRAME_SIZE_ERROR,)),
    # 6.5.2 Defined Settings
    Case("6.5.2 ENABLE_PUSH 2", lambda p: settings((ENABLE_PUSH, 2)), (PROTOCOL_ERROR,)),
    Case(
        "6.5.2 INITIAL_WINDOW_SIZE 2^31",
        lambda p: settings((INITIAL_WINDOW_SIZE, 1 << 31)),
        (FLOW_CONTROL_ERROR,),
    ),
    Case("6.5.2 MAX_FRAME_SIZE below 2^14", lambda p: settings((MAX_FRAME_SIZE, 16383)), (PROTOCOL_ERROR,)),
    Case(
        "6.5.2 MAX_FRAME_SIZE above 2^24-1", lambda p: settings((MAX_FRAME_SIZE, 1 << 24)), (PROTOCOL_ERROR,)
    ),
    Case(
        "RFC 8441 §3 ENABLE_CONNECT_PROTOCOL 2",
        lambda p: settings((ENABLE_CONNECT_PROTOCOL, 2)),
        (PROTOCOL_ERROR,),
    ),
    # 6.7 PING
    Case("6.7 PING on stream 1", lambda p: ping(sid=1), (PROTOCOL_ERROR,)),
    Case("6.7 PING of 6 octets", lambda p: ping(b"123456"), (FRAME_SIZE_ERROR,)),
    # 6.8 GOAWAY
    Case("6.8 GOAWAY on stream 1", lambda p: frame(GOAWAY, bytes(8), 0, 1), (PROTOCOL_ERROR,)),
    # 6.9 WINDOW_UPDATE
    Case("6.9 WINDOW_UPDATE of 0 on the connection", lambda p: window_update(0, 0), (PROTOCOL_ERROR,)),
    Case("6.9 WINDOW_UPDATE of 3 octets", lambda p: frame(WINDOW_UPDATE, b"\0\0\x01"), (FRAME_SIZE_ERROR,)),
    # 6.9.1 The Flow-Control Window
    Case(
        "6.9.1 connection window past 2^31-1",
        lambda p: window_update(0, (1 << 31) - 1) * 2,
        (FLOW_CONTROL_ERROR,),
    ),
    # 6.10 CONTINUATION
    Case(
        "6.10 CONTINUATION on stream 0",
        _headers_then(lambda p: frame(CONTINUATION, b"", END_HEADERS, 0)),
        (PROTOCOL_ERROR,),
    ),
    Case(
        "6.10 CONTINUATION after HEADERS with END_HEADERS",
        lambda p: (
            p.headers(1, WAIT) + frame(CONTINUATION, p.encoder.encode([(b"x-a", b"b")]), END_HEADERS, 1)
        ),
        (PROTOCOL_ERROR,),
    ),
    Case(
        "6.10 CONTINUATION after CONTINUATION with END_HEADERS",
        lambda p: _continued(p) + frame(CONTINUATION, p.encoder.encode([(b"x-a", b"b")]), END_HEADERS, 1),
        (PROTOCOL_ERROR,),
    ),
    Case(
        "6.10 CONTINUATION after DATA",
        lambda p: (
            open_post(p)
            + frame(DATA, b"test", 0, 1)
            + frame(CONTINUATION, p.encoder.encode([]), END_HEADERS, 1)
        ),
        (PROTOCOL_ERROR,),
    ),
    Case(
        "6.10 DATA instead of CONTINUATION",
        _headers_then(lambda p: frame(DATA, b"test", END_STREAM, 1)),
        (PROTOCOL_ERROR,),
    ),
    # 8.4 Server Push
    Case(
        "8.4 PUSH_PROMISE from a client",
        lambda p: (
            p.headers(1, WAIT)
            + frame(PUSH_PROMISE, struct.pack(">I", 2) + p.encoder.encode(GET), END_HEADERS, 1)
        ),
        (PROTOCOL_ERROR,),
    ),
]


def _continued(p: Peer) -> bytes:
    """A long-poll request in HEADERS + CONTINUATION (END_HEADERS)."""
    block = p.encoder.encode(WAIT)
    return frame(HEADERS, block[:3], END_STREAM, 1) + frame(CONTINUATION, block[3:], END_HEADERS, 1)


@pytest.mark.parametrize("case", params(CONNECTION_ERRORS))
def test_connection_error(peer: Peer, case: Case) -> None:
    peer.send(case.build(peer))
    peer.connection_error(*case.codes)


def malformed(fields: Fields, *, body: bytes | None = None, trailers: Fields | None = None) -> Build:
    """A request on stream 1 with ``fields``, then DATA ``body`` and ``trailers`` if given."""

    def build(p: Peer) -> bytes:
        if body is None and trailers is None:
            return p.headers(1, fields)
        out = p.headers(1, fields, flags=END_HEADERS)
        if body is not None:
            out += frame(DATA, body, 0 if trailers else END_STREAM, 1)
        if trailers is not None:
            out += p.headers(1, trailers)
        return out

    return build


def without(name: bytes, fields: Fields = GET) -> Fields:
    return [(n, v) for n, v in fields if n != name]


def doubled(name: bytes, fields: Fields = GET) -> Fields:
    return [*fields, next((n, v) for n, v in fields if n == name)]


STREAM_ERRORS = [
    # 4.2 Frame Size
    Case(
        "4.2 DATA over SETTINGS_MAX_FRAME_SIZE",
        lambda p: open_post(p) + frame(DATA, b"x" * 16385, END_STREAM, 1),
        (FRAME_SIZE_ERROR,),
        sid=1,
    ),
    # 5.1 Stream States: half-closed (remote)
    Case(
        "5.1 half-closed (remote): DATA",
        lambda p: p.headers(1, WAIT) + frame(DATA, b"test", END_STREAM, 1),
        (STREAM_CLOSED,),
        sid=1,
    ),
    Case(
        "5.1 half-closed (remote): HEADERS",
        lambda p: p.headers(1, WAIT) + p.headers(1, [(b"x-trailer", b"1")]),
        (STREAM_CLOSED,),
        sid=1,
    ),
    Case(
        "5.1 half-closed (remote): CONTINUATION",
        lambda p: p.headers(1, WAIT) + frame(CONTINUATION, p.encoder.encode([]), END_HEADERS, 1),
        (STREAM_CLOSED, PROTOCOL_ERROR),
        sid=1,
    ),
    # 5.1 Stream States: closed by the client's RST_STREAM
    Case(
        "5.1 closed by RST_STREAM: DATA",
        lambda p: open_post(p) + rst_stream(1) + frame(DATA, b"test", END_STREAM, 1),
        (STREAM_CLOSED,),
        sid=1,
    ),
    Case(
        "5.1 closed by RST_STREAM: HEADERS",
        lambda p: open_post(p) + rst_stream(1) + p.headers(1, [(b"x-trailer", b"1")]),
        (STREAM_CLOSED,),
        sid=1,
    ),
    Case(
        "5.1 closed by RST_STREAM: CONTINUATION",
        lambda p: open_post(p) + rst_stream(1) + frame(CONTINUATION, p.encoder.encode([]), END_HEADERS, 1),
        (STREAM_CLOSED, PROTOCOL_ERROR),
        sid=1,
    ),
    # 5.3.1 Stream Dependencies
    Case(
        "5.3.1 HEADERS depending on its own stream",
        lambda p: frame(
            HEADERS,
            priority_fields(1, 16, False) + p.encoder.encode(GET),
            END_STREAM | END_HEADERS | PRIORITY_FLAG,
            1,
        ),
        (PROTOCOL_ERROR,),
        sid=1,
    ),
    Case(
        "5.3.1 PRIORITY depending on its own stream",
        lambda p: priority(1, depends_on=1),
        (PROTOCOL_ERROR,),
        sid=1,
    ),
    # 6.3 PRIORITY
    Case(
        "6.3 PRIORITY of 4 octets", lambda p: frame(PRIORITY, b"\0\0\0\0", 0, 1), (FRAME_SIZE_ERROR,), sid=1
    ),
    # 6.9 WINDOW_UPDATE
    Case(
        "6.9 WINDOW_UPDATE of 0 on a stream",
        lambda p: p.headers(1, WAIT) + window_update(1, 0),
        (PROTOCOL_ERROR,),
        sid=1,
    ),
    # 6.9.1 The Flow-Control Window
    Case(
        "6.9.1 stream window past 2^31-1",
        lambda p: p.headers(1, WAIT) + window_update(1, (1 << 31) - 1) * 2,
        (FLOW_CONTROL_ERROR,),
        sid=1,
    ),
    # 8.1 HTTP Message Framing
    Case(
        "8.1 trailers without END_STREAM",
        lambda p: (
            open_post(p)
            + frame(DATA, b"test", 0, 1)
            + p.headers(1, [(b"x-trailer", b"1")], flags=END_HEADERS)
        ),
        (PROTOCOL_ERROR,),
        sid=1,
    ),
    # 8.1.1 Malformed Messages
    Case(
        "8.1.1 content-length above the DATA received",
        malformed([*POST, (b"content-length", b"5")], body=b"test"),
        (PROTOCOL_ERROR,),
        sid=1,
    ),
    Case(
        "8.1.1 content-length below the DATA received",
        malformed([*POST, (b"content-length", b"3")], body=b"test"),
        (PROTOCOL_ERROR,),
        sid=1,
    ),
    Case(
        "8.1.1 content-length and no DATA",
        malformed([*POST, (b"content-length", b"4")]),
        (PROTOCOL_ERROR,),
        sid=1,
    ),
    Case(
        "8.1.1 content-length against several DATA frames",
        lambda p: (
            p.headers(1, [*POST, (b"content-length", b"10")], flags=END_HEADERS)
            + frame(DATA, b"test", 0, 1)
            + frame(DATA, b"test", END_STREAM, 1)
        ),
        (PROTOCOL_ERROR,),
        sid=1,
    ),
    # 8.2.1 Field Validity
    Case("8.2.1 uppercase field name", malformed([*GET, (b"X-Upper", b"1")]), (PROTOCOL_ERROR,), sid=1),
    Case("8.2.1 space in a field name", malformed([*GET, (b"x a", b"1")]), (PROTOCOL_ERROR,), sid=1),
    Case("8.2.1 colon inside a field name", malformed([*GET, (b"x:a", b"1")]), (PROTOCOL_ERROR,), sid=1),
    Case("8.2.1 empty field name", malformed([*GET, (b"", b"1")]), (PROTOCOL_ERROR,), sid=1),
    Case("8.2.1 NUL in a field value", malformed([*GET, (b"x-a", b"a\0b")]), (PROTOCOL_ERROR,), sid=1),
    Case(
        "8.2.1 CR LF in a field value", malformed([*GET, (b"x-a", b"a\r\nx-b: c")]), (PROTOCOL_ERROR,), sid=1
    ),
    Case(
        "8.2.1 leading space in a field value", malformed([*GET, (b"x-a", b" a")]), (PROTOCOL_ERROR,), sid=1
    ),
    Case(
        "8.2.1 trailing tab in a field value", malformed([*GET, (b"x-a", b"a\t")]), (PROTOCOL_ERROR,), sid=1
    ),
    # 8.2.2 Connection-Specific Header Fields
    *(
        Case(f"8.2.2 {name.decode()} field", malformed([*GET, (name, value)]), (PROTOCOL_ERROR,), sid=1)
        for name, value in (
            (b"connection", b"keep-alive"),
            (b"keep-alive", b"timeout=5"),
            (b"proxy-connection", b"keep-alive"),
            (b"transfer-encoding", b"chunked"),
            (b"upgrade", b"websocket"),
        )
    ),
    Case(
        "8.2.2 te other than trailers",
        malformed([*GET, (b"te", b"trailers, deflate")]),
        (PROTOCOL_ERROR,),
        sid=1,
    ),
    # 8.3 HTTP Control Data (pseudo-header fields)
    Case("8.3 unknown pseudo-header", malformed([*GET, (b":foo", b"bar")]), (PROTOCOL_ERROR,), sid=1),
    Case(
        "8.3 response pseudo-header in a request",
        malformed([*GET, (b":status", b"200")]),
        (PROTOCOL_ERROR,),
        sid=1,
    ),
    Case(
        "8.3 pseudo-header after a regular field",
        malformed([*GET[:3], (b"x-a", b"b"), GET[3]]),
        (PROTOCOL_ERROR,),
        sid=1,
    ),
    Case(
        "8.3 pseudo-header in trailers",
        malformed(POST, body=b"test", trailers=[(b":method", b"POST")]),
        (PROTOCOL_ERROR,),
        sid=1,
    ),
    # 8.3.1 Request Pseudo-Header Fields
    Case("8.3.1 empty :path", malformed([*without(b":path"), (b":path", b"")]), (PROTOCOL_ERROR,), sid=1),
    *(
        Case(f"8.3.1 no {name.decode()}", malformed(without(name)), (PROTOCOL_ERROR,), sid=1)
        for name in (b":method", b":scheme", b":path")
    ),
    *(
        Case(f"8.3.1 two {name.decode()}", malformed(doubled(name)), (PROTOCOL_ERROR,), sid=1)
        for name in (b":method", b":scheme", b":path", b":authority")
    ),
]


@pytest.mark.parametrize("case", params(STREAM_ERRORS))
def test_stream_error(peer: Peer, case: Case) -> None:
    peer.send(case.build(peer))
    peer.stream_error(case.sid, *case.codes)


# --- 3.4 HTTP/2 Connection Preface -----------------------------------------------------------------


def test_3_4_server_preface_is_settings(server: Server) -> None:
    peer = Peer(server.port, handshake=False)
    peer.send(PREFACE, settings())
    first = peer.next_frame()
    peer.close()
    assert isinstance(first, SettingsFrame) and "ACK" not in first.flags


def test_3_4_invalid_preface_closes_the_connection(server: Server) -> None:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + settings())
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
    sock.close()
    assert not received.startswith(frame(SETTINGS)[:3])  # no HTTP/2: an HTTP/1.1 error, then close
    assert received.startswith(b"HTTP/1.1 ")


def test_3_4_preface_not_followed_by_settings(server: Server) -> None:
    peer = Peer(server.port, handshake=False)
    peer.send(PREFACE, ping())
    peer.connection_error(PROTOCOL_ERROR)


# --- 4.1 Frame Format: what to ignore -----------------------------------------------------------


def test_4_1_unknown_frame_type_is_ignored(peer: Peer) -> None:
    peer.send(frame(0x16, b"\0" * 8))
    peer.still_open()


def test_4_1_undefined_flags_are_ignored(peer: Peer) -> None:
    peer.send(ping(flags=0x16 | 0xC0))
    peer.still_open()
    peer.send(peer.headers(1, flags=END_STREAM | END_HEADERS | 0x2 | 0x10 | 0x40))
    assert peer.response(1).status == 200


def test_4_1_reserved_bit_is_ignored(peer: Peer) -> None:
    request = bytearray(peer.headers(1))
    request[5] |= 0x80  # the reserved bit before the stream identifier
    peer.send(bytes(request))
    assert peer.response(1).body == b"hello"


# --- 4.2 Frame Size ------------------------------------------------------------------------------


def test_4_2_data_of_max_frame_size(peer: Peer) -> None:
    body = os.urandom(16384)
    peer.send(open_post(peer), frame(DATA, body, END_STREAM, 1))
    assert peer.response(1).body == body


@pytest.mark.parametrize("max_frame_size", [16384, 20000])
def test_4_2_server_frames_fit_max_frame_size(server: Server, max_frame_size: int) -> None:
    peer = Peer(server.port, (MAX_FRAME_SIZE, max_frame_size), (INITIAL_WINDOW_SIZE, 1 << 24))
    peer.send(window_update(0, 1 << 24), peer.headers(1, [*GET[:2], (b":path", b"/big?mib=1"), GET[3]]))
    reply = peer.response(1)
    peer.close()
    assert len(reply.body) == 1 << 20
    assert max(reply.data_frames) == max_frame_size


# --- 5.1 Stream States ----------------------------------------------------------------------------


def _closed_stream(peer: Peer) -> None:
    """Stream 1 closed both ways by END_STREAM: a request answered in full."""
    peer.send(peer.headers(1))
    assert peer.response(1).status == 200


def test_5_1_closed_data(peer: Peer) -> None:
    _closed_stream(peer)
    peer.send(frame(DATA, b"test", END_STREAM, 1))
    peer.stream_error(1, STREAM_CLOSED)  # §6.1: a stream error; a connection error (§5.1) also passes


def test_5_1_closed_headers(peer: Peer) -> None:
    _closed_stream(peer)
    peer.send(peer.headers(1))
    peer.connection_error(STREAM_CLOSED)


def test_5_1_closed_continuation(peer: Peer) -> None:
    _closed_stream(peer)
    peer.send(frame(CONTINUATION, peer.encoder.encode([(b"x-a", b"b")]), END_HEADERS, 1))
    peer.connection_error(STREAM_CLOSED, PROTOCOL_ERROR)


@pytest.mark.parametrize(
    "after",
    [
        pytest.param(lambda: window_update(1, 100), id="WINDOW_UPDATE"),
        pytest.param(lambda: priority(1, 0, 200), id="PRIORITY"),
        pytest.param(lambda: rst_stream(1), id="RST_STREAM"),
    ],
)
def test_5_1_half_closed_remote_allows(peer: Peer, after: Callable[[], bytes]) -> None:
    peer.send(peer.headers(1, WAIT), after())
    peer.still_open()


def test_5_1_closed_allows_priority(peer: Peer) -> None:
    _closed_stream(peer)
    peer.send(priority(1, 0, 100))
    peer.still_open()


def test_5_1_idle_priority_then_headers(peer: Peer) -> None:
    peer.send(priority(3, 0, 50), priority(1, 3, 20), peer.headers(1))
    assert peer.response(1).status == 200


# --- 5.1.2 Stream Concurrency --------------------------------------------------------------------


def test_5_1_2_streams_over_the_limit(server: Server) -> None:
    peer = Peer(server.port, (INITIAL_WINDOW_SIZE, 0))  # responses wait: the streams stay open
    limit = peer.server_settings[MAX_CONCURRENT_STREAMS]
    block = b"".join(peer.headers(2 * n + 1) for n in range(limit + 1))
    peer.send(block)
    peer.stream_error(2 * limit + 1, REFUSED_STREAM, PROTOCOL_ERROR)
    peer.close()


# --- 5.4.1 Connection Error Handling -------------------------------------------------------------


def test_5_4_1_goaway_names_the_last_stream_then_closes(peer: Peer) -> None:
    _closed_stream(peer)
    peer.send(ping(sid=3))
    assert peer.connection_error(PROTOCOL_ERROR).last_stream_id == 1


# --- 5.5 Extending HTTP/2 ------------------------------------------------------------------------


def test_5_5_unknown_frame_on_a_stream_is_ignored(peer: Peer) -> None:
    peer.send(open_post(peer), frame(0xEE, b"ext", 0xFF, 1), frame(DATA, b"body", END_STREAM, 1))
    assert peer.response(1).body == b"body"


# --- 6.1 DATA, 6.2 HEADERS, 6.10 CONTINUATION: well-formed variants are served ------------------------


def test_6_1_data_frames(peer: Peer) -> None:
    peer.send(
        open_post(peer),
        frame(DATA, b"one,", 0, 1),
        frame(DATA, b"", 0, 1),
        frame(DATA, b"\x05two,\0\0\0\0\0", PADDED, 1),
        frame(DATA, b"\x00three", END_STREAM | PADDED, 1),
    )
    assert peer.response(1).body == b"one,two,three"


def test_6_2_headers_padded_and_with_priority(peer: Peer) -> None:
    block = peer.encoder.encode(GET)
    weighted = priority_fields(0, 256, True)
    peer.send(
        frame(
            HEADERS,
            b"\x03" + weighted + block + b"\0\0\0",
            END_STREAM | END_HEADERS | PADDED | PRIORITY_FLAG,
            1,
        )
    )
    assert peer.response(1).body == b"hello"


def test_6_10_continuation_frames(peer: Peer) -> None:
    block = peer.encoder.encode([*GET, (b"x-long", b"v" * 100)])
    pieces = [block[i : i + 7] for i in range(0, len(block), 7)]
    frames = [frame(HEADERS, pieces[0], END_STREAM, 1)]
    frames += [frame(CONTINUATION, piece, 0, 1) for piece in pieces[1:-1]]
    frames.append(frame(CONTINUATION, pieces[-1], END_HEADERS, 1))
    peer.send(*frames)
    assert peer.response(1).body == b"hello"


# --- 6.3 PRIORITY, 6.4 RST_STREAM ---------------------------------------------------------------------


@pytest.mark.parametrize(("weight", "exclusive"), [(1, False), (256, False), (16, True)])
def test_6_3_priority_is_accepted(peer: Peer, weight: int, exclusive: bool) -> None:
    peer.send(peer.headers(1, WAIT), priority(1, 0, weight, exclusive), priority(3, 1, weight, exclusive))
    peer.still_open()
    peer.send(peer.headers(3))
    assert peer.response(3).body == b"hello"


def test_6_4_rst_stream_cancels_one_stream(peer: Peer) -> None:
    peer.send(peer.headers(1, WAIT), rst_stream(1), peer.headers(3))
    assert peer.response(3).body == b"hello"


# --- 6.5 SETTINGS ---------------------------------------------------------------------------------


def test_6_5_settings_are_acknowledged(peer: Peer) -> None:
    peer.send(settings((HEADER_TABLE_SIZE, 4096), (0xFF, 1)))  # an unknown setting is ignored
    acks = (f for f in peer.frames() if isinstance(f, SettingsFrame) and "ACK" in f.flags)
    assert next(acks, None) is not None
    peer.still_open()


def test_6_5_3_last_initial_window_size_in_a_frame_wins(peer: Peer) -> None:
    peer.send(settings((INITIAL_WINDOW_SIZE, 100), (INITIAL_WINDOW_SIZE, 1)), peer.headers(1))
    assert _first_data(peer, 1) == 1


# --- 6.7 PING -------------------------------------------------------------------------------------


def test_6_7_ping_is_echoed(peer: Peer) -> None:
    peer.send(ping(b"\x00\xffabcde\x01"))
    answer = next(f for f in peer.frames() if isinstance(f, PingFrame))
    assert "ACK" in answer.flags and answer.opaque_data == b"\x00\xffabcde\x01"


def test_6_7_ping_ack_gets_no_answer(peer: Peer) -> None:
    peer.send(ping(b"unasked!", flags=ACK))
    opaque = b"asked!!!"
    peer.send(ping(opaque))
    answer = next(f for f in peer.frames() if isinstance(f, PingFrame))
    assert answer.opaque_data == opaque


# --- 6.8 GOAWAY, 7 Error Codes --------------------------------------------------------------------------


def test_6_8_client_goaway_lets_open_streams_finish(peer: Peer) -> None:
    unknown_code = 0xFF  # §7: unknown codes MUST NOT trigger special behaviour
    peer.send(open_post(peer), frame(GOAWAY, struct.pack(">II", 0, unknown_code)))
    peer.send(frame(DATA, b"still served", END_STREAM, 1))
    assert peer.response(1).body == b"still served"
    assert not any(isinstance(f, GoAwayFrame) and f.error_code for f in peer.frames())


def test_7_rst_stream_with_unknown_code(peer: Peer) -> None:
    peer.send(open_post(peer), rst_stream(1, 0xFF))
    peer.still_open()


# --- 6.9 WINDOW_UPDATE and flow control ---------------------------------------------------------------


def _first_data(peer: Peer, sid: int) -> int:
    """The payload size of the first DATA frame on ``sid``."""
    for got in peer.frames():
        assert not isinstance(got, GoAwayFrame | RstStreamFrame), f"unexpected {got!r}"
        if isinstance(got, DataFrame) and got.stream_id == sid:
            return len(got.data)
    raise AssertionError("closed before any DATA")


def test_6_9_window_updates_are_accepted(peer: Peer) -> None:
    peer.send(peer.headers(1, WAIT), window_update(0, 1000), window_update(1, 1000))
    peer.still_open()


def test_6_9_1_initial_window_of_one_octet(server: Server) -> None:
    peer = Peer(server.port, (INITIAL_WINDOW_SIZE, 1))
    peer.send(peer.headers(1))
    assert _first_data(peer, 1) == 1
    peer.send(window_update(1, 4))
    assert _first_data(peer, 1) == 4
    peer.close()


def test_6_9_2_window_change_applies_to_open_streams(server: Server) -> None:
    peer = Peer(server.port, (INITIAL_WINDOW_SIZE, 0))
    peer.send(peer.headers(1))
    assert not any(isinstance(f, DataFrame) for f in peer.still_open())  # the head may come, no DATA
    peer.send(settings((INITIAL_WINDOW_SIZE, 1)))
    assert _first_data(peer, 1) == 1
    peer.close()


def test_6_9_2_negative_window(server: Server) -> None:
    peer = Peer(server.port, (INITIAL_WINDOW_SIZE, 3))
    peer.send(peer.headers(1))
    assert _first_data(peer, 1) == 3
    peer.send(settings((INITIAL_WINDOW_SIZE, 2)))  # the stream's window: 2 - 3 = -1
    peer.send(window_update(1, 2))  # -1 + 2 = 1
    assert _first_data(peer, 1) == 1
    peer.close()


def test_6_9_1_data_beyond_the_stream_window(peer: Peer) -> None:
    """The app never reads: the stream window (advertised in SETTINGS) is all the client may send."""
    window = peer.server_settings[INITIAL_WINDOW_SIZE]
    unread = b"/stream-until-error?id=h2conf&swallow=1"  # streams a response, reads nothing
    forever = [(b":method", b"POST"), GET[1], (b":path", unread), GET[3]]
    chunks = [frame(DATA, bytes(16384), 0, 1) for _ in range(window // 16384)]
    chunks.append(frame(DATA, bytes(window % 16384), 0, 1))
    peer.send(peer.headers(1, forever, flags=END_HEADERS), *chunks)
    peer.still_open()  # the whole window: fine
    peer.send(frame(DATA, b"!", 0, 1))
    peer.stream_error(1, FLOW_CONTROL_ERROR)


# --- 8.1 HTTP Message Framing: exchanges that must work ------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [(b"HEAD", b"/"), (b"GET", b"/status?code=204"), (b"GET", b"/status?code=304")],
    ids=["HEAD", "204", "304"],
)
def test_8_1_1_responses_without_content(peer: Peer, method: bytes, path: bytes) -> None:
    """RFC 9110 §9.3.2, §15.3.5, §15.4.5: the app's body is not sent (RFC 9113 §8.1.1)."""
    peer.send(peer.headers(1, [(b":method", method), GET[1], (b":path", path), GET[3]]))
    reply = peer.response(1)
    assert reply.body == b"" and not any(reply.data_frames)


@pytest.mark.parametrize("path", [b"/raise-before", b"/no-response", b"/invalid?kind=header-crlf"])
def test_8_1_1_error_response_has_one_content_length(peer: Peer, path: bytes) -> None:
    """The 500 squall sends for a failed app: nghttp2 (curl, nghttp) resets a response with two
    Content-Length fields as malformed (RFC 9113 §8.1.1, RFC 9110 §8.6)."""
    peer.send(peer.headers(1, [GET[0], GET[1], (b":path", path), GET[3]]))
    reply = peer.response(1)
    assert reply.status == 500
    assert [v for n, v in reply.headers if n == b"content-length"] == [b"%d" % len(reply.body)]


def test_8_1_post_with_trailers(peer: Peer) -> None:
    peer.send(
        peer.headers(1, [*POST, (b"te", b"trailers")], flags=END_HEADERS),
        frame(DATA, b"with trailers", 0, 1),
        peer.headers(1, [(b"x-checksum", b"abc")]),
    )
    assert peer.response(1).body == b"with trailers"


def test_8_2_2_te_trailers_is_allowed(peer: Peer) -> None:
    peer.send(peer.headers(1, [*GET, (b"te", b"trailers")]))
    assert peer.response(1).body == b"hello"


def test_8_2_3_split_cookies_are_joined(peer: Peer) -> None:
    fields = [*GET[:2], (b":path", b"/scope"), GET[3], (b"cookie", b"a=1"), (b"cookie", b"b=2")]
    peer.send(peer.headers(1, fields))
    assert dict(_scope_headers(peer.response(1)))["cookie"] == "a=1; b=2"


def _scope_headers(reply: Reply) -> list[tuple[str, str]]:
    assert reply.status == 200
    return [(n, v) for n, v in json.loads(reply.body)["headers"]]


def test_hpack_4_2_client_table_size_0_is_honoured(server: Server) -> None:
    """With SETTINGS_HEADER_TABLE_SIZE 0 the server's responses must not use its dynamic table."""
    peer = Peer(server.port, (HEADER_TABLE_SIZE, 0))
    peer.decoder.max_allowed_table_size = 0  # a bigger size update, or a lookup in the table, fails
    for sid in (1, 3, 5):
        peer.send(peer.headers(sid))
        assert peer.response(sid).body == b"hello"
    peer.close()


# --- RFC 7541 HPACK ---------------------------------------------------------------------------------

HPACK_REPRESENTATIONS = [
    pytest.param(
        literal(b"x-hpack", b"v", "incremental") + indexed(62),
        [("x-hpack", "v"), ("x-hpack", "v")],
        id="6.1 indexed field from the dynamic table",
    ),
    pytest.param(
        literal(58, b"ua", "incremental"), [("user-agent", "ua")], id="6.2.1 incremental, indexed name"
    ),
    pytest.param(
        literal(b"x-hpack", b"v", "incremental"), [("x-hpack", "v")], id="6.2.1 incremental, new name"
    ),
    pytest.param(
        literal(58, b"ua", "without"), [("user-agent", "ua")], id="6.2.2 without indexing, indexed name"
    ),
    pytest.param(
        literal(b"x-hpack", b"v", "without"), [("x-hpack", "v")], id="6.2.2 without indexing, new name"
    ),
    pytest.param(literal(58, b"ua", "never"), [("user-agent", "ua")], id="6.2.3 never indexed, indexed name"),
    pytest.param(literal(b"x-hpack", b"v", "never"), [("x-hpack", "v")], id="6.2.3 never indexed, new name"),
    pytest.param(
        Encoder().encode([(b"x-hpack", b"huffman coded")], huffman=True),
        [("x-hpack", "huffman coded")],
        id="5.2 huffman-coded strings",
    ),
]


@pytest.mark.parametrize(("representation", "expected"), HPACK_REPRESENTATIONS)
def test_hpack_representations(peer: Peer, representation: bytes, expected: list[tuple[str, str]]) -> None:
    """A request packed by hand: the field must reach the application as sent."""
    peer.send(peer.headers(1, block=STATIC_GET + representation))
    headers = _scope_headers(peer.response(1))
    assert [h for h in headers if h[0] in ("x-hpack", "user-agent")] == expected


def test_hpack_6_3_table_size_updates_at_the_start(peer: Peer) -> None:
    first = size_update(0) + size_update(4096) + STATIC_GET + literal(b"x-hpack", b"v", "incremental")
    peer.send(peer.headers(1, block=first))
    assert ("x-hpack", "v") in _scope_headers(peer.response(1))
    peer.send(peer.headers(3, block=size_update(0) + STATIC_GET + literal(b"x-hpack", b"w")))  # table emptied
    assert ("x-hpack", "w") in _scope_headers(peer.response(3))
    peer.send(peer.headers(5, block=STATIC_GET + indexed(62)))  # the evicted entry is gone
    peer.connection_error(COMPRESSION_ERROR)


def _hpack_error(representation: bytes, *, first: bool = False) -> Build:
    block = representation + STATIC_GET if first else STATIC_GET + representation
    return lambda p: p.headers(1, block=block)


# RFC 7541 Appendix B: "a" is 00011; EOS is thirty 1 bits; padding is up to 7 bits of EOS's prefix.
HPACK_ERRORS = [
    Case(
        "hpack 2.3.3 index past both tables",
        _hpack_error(indexed(70)),
        (COMPRESSION_ERROR,),
    ),
    Case(
        "hpack 2.3.3 name index past both tables",
        _hpack_error(literal(70, b"v")),
        (COMPRESSION_ERROR,),
    ),
    Case("hpack 6.1 index 0", _hpack_error(indexed(0)), (COMPRESSION_ERROR,)),
    Case(
        "hpack 4.2 size update after a field",
        _hpack_error(size_update(0)),
        (COMPRESSION_ERROR,),
    ),
    Case(
        "hpack 6.3 size update over SETTINGS_HEADER_TABLE_SIZE",
        _hpack_error(size_update(4097), first=True),
        (COMPRESSION_ERROR,),
    ),
    Case(
        "hpack 5.2 huffman padding over 7 bits",
        _hpack_error(b"\x00" + hp_str(b"x-a") + hp_huffman(b"\x1f\xff")),
        (COMPRESSION_ERROR,),
    ),
    Case(
        "hpack 5.2 huffman padding not of 1 bits",
        _hpack_error(b"\x00" + hp_str(b"x-a") + hp_huffman(b"\x18")),
        (COMPRESSION_ERROR,),
    ),
    Case(
        "hpack 5.2 huffman EOS symbol",
        _hpack_error(b"\x00" + hp_str(b"x-a") + hp_huffman(b"\x1f\xff\xff\xff\xff")),
        (COMPRESSION_ERROR,),
    ),
    Case(
        "hpack 5.1 integer overflow",
        _hpack_error(b"\xff" + b"\xff" * 12 + b"\x01"),
        (COMPRESSION_ERROR,),
    ),
]


@pytest.mark.parametrize("case", params(HPACK_ERRORS))
def test_hpack_decoding_error(peer: Peer, case: Case) -> None:
    peer.send(case.build(peer))
    peer.connection_error(*case.codes)
