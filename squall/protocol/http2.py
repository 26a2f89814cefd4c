"""HTTP/2 server protocol (RFC 9113), sans-I/O: squall's own frame layer, HPACK by ``hpack``.

How it works
------------
Why not the ``h2`` library: it was the floor. Its frame objects, per-frame state machine, header
validation generators and HPACK coding took about 85 % of a hello-world request (744k instructions
per request in process, against 127k with this module; ``bench/README.md`` has the table). This
module keeps every rule h2 enforced for a server (``tests/e2e/test_h2_conformance.py`` follows
h2spec), and adds caches where requests repeat.

Incoming. ``receive_data(bytes)`` checks the client preface, then cuts frames (9-byte header,
payload) and dispatches on the type (``_FRAMES``). The first frame must be SETTINGS. Each frame
is checked against RFC 9113 §6 (stream id 0 or not, length, flags, padding); a violation of the
connection's rules queues GOAWAY with the RFC's error code and emits ``Rejected`` with stream id 0
(flush, then close — the same meaning as over HTTP/1.1); a violation confined to one stream resets
that stream (RST_STREAM), and is metered like a client reset so that provoking resets cannot be
free (MadeYouReset).

A header block (HEADERS, then CONTINUATION frames until END_HEADERS, nothing in between) is always
HPACK-decoded, even for a stream that will be refused, so that the dynamic table stays in step with
the client's. A new stream's block is checked (§8.2, §8.3: lower-case token names, no CR/LF/NUL
and no surrounding whitespace in values, no connection-specific fields, TE only "trailers", known
pseudo-headers once each and before the regular fields, :method/:scheme/:path present and :path
not empty, extended CONNECT with :protocol, :authority or Host present and agreeing,
Content-Length digits) and becomes ``Request`` (``http_version`` ``"2"``, pseudo-headers removed,
``:authority`` → ``host``, split ``cookie`` fields joined with ``"; "``); a malformed one resets
the stream with PROTOCOL_ERROR. The checked result of a block that did not change the HPACK table
is cached by the block's bytes (``hpackblocks``): h2load, browsers on a primed table and any
client repeating a request send the same bytes again, and skip decoding and checking.

Streams. ``_Stream`` keeps the two halves of RFC 9113 §5.1's state: ``remote_open`` (the client
may still send: open, half-closed (local)) and ``local_open`` (we may still send); a stream
leaves ``_streams`` when both are closed or it is reset. A stream id at or below the highest one
seen and not in ``_streams`` is closed: DATA on it is a stream error STREAM_CLOSED (and HEADERS a
connection error), except on streams we reset ourselves, whose late frames are ignored (§5.1).
Above the highest, it is idle: only HEADERS and PRIORITY may name it.

Outgoing. ``send(Response)`` holds the head until the first ``Data`` so that a body-less response
leaves as one HEADERS frame with END_STREAM; ``send(Data)`` queues the body on the stream and frames
as much as the connection and stream windows allow (``_pump``). The rest waits until the client
opens its window (WINDOW_UPDATE, SETTINGS); ``pending(stream_id)`` tells the connection how much is
queued so that the application's ``send()`` can wait instead of piling up data; the body of a
response to HEAD, and of a 204 or 304, is dropped. ``Trailers`` end the stream with a HEADERS frame
after the queued body; ``Informational`` sends a 1xx head. A client's GOAWAY (``PeerGoingAway``)
ends nothing: the streams it has open go on both ways (§6.8), only push stops.

Flow control for request bodies is explicit: received DATA is acknowledged (``acknowledge``) only
when the application has read it, so a stream buffers at most its window and a connection at most
the connection window, however slow the application. WINDOW_UPDATE goes out once half a window
has been consumed.

Defences. The header list size (``max_header_list_size``, the HPACK bomb: GOAWAY
ENHANCE_YOUR_CALM), open streams beyond ``max_concurrent_streams`` (REFUSED_STREAM, metered), a
header block of more than 64 CONTINUATION frames or longer than the header list limit (GOAWAY
ENHANCE_YOUR_CALM). Stream resets by the client (rapid reset, CVE-2023-44487) and by us because
of the client, and control frames (PING, SETTINGS, empty DATA: the 2019 flood CVEs) are each
metered by a token bucket; past it the connection gets GOAWAY ENHANCE_YOUR_CALM.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
import time
from collections.abc import Callable
from typing import Final, NamedTuple, cast

from squall.events import (
    Body,
    Data,
    EndBody,
    Event,
    Headers,
    Informational,
    PeerGoingAway,
    Rejected,
    Request,
    Response,
    StreamReset,
    Trailers,
)
from squall.protocol.hpackblocks import (
    TABLE_SIZE_ZERO,
    BadHeaderBlock,
    BlockDecoder,
    HeaderListTooLarge,
    encode,
)

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Error codes (RFC 9113 §7).
NO_ERROR: Final = 0x0
PROTOCOL_ERROR: Final = 0x1
INTERNAL_ERROR: Final = 0x2
FLOW_CONTROL_ERROR: Final = 0x3
STREAM_CLOSED: Final = 0x5
FRAME_SIZE_ERROR: Final = 0x6
REFUSED_STREAM: Final = 0x7
CANCEL: Final = 0x8
COMPRESSION_ERROR: Final = 0x9
ENHANCE_YOUR_CALM: Final = 0xB
ERROR_CODES: Final = 0xE  # codes 0x0-0xD are RFC 9113's; a higher one is counted as ERROR_CODES

# Frame types and flags (RFC 9113 §6).
DATA: Final = 0
HEADERS: Final = 1
PRIORITY: Final = 2
RST_STREAM: Final = 3
SETTINGS: Final = 4
PUSH_PROMISE: Final = 5
PING: Final = 6
GOAWAY: Final = 7
WINDOW_UPDATE: Final = 8
CONTINUATION: Final = 9
END_STREAM: Final = 0x1
ACK: Final = 0x1
END_HEADERS: Final = 0x4
PADDED: Final = 0x8
PRIORITY_FLAG: Final = 0x20
_SELF_DEPENDENT: Final = 0x100  # not a wire flag: marks a HEADERS frame whose stream depends on itself

# Settings (RFC 9113 §6.5.2, RFC 8441).
HEADER_TABLE_SIZE: Final = 0x1
ENABLE_PUSH: Final = 0x2
MAX_CONCURRENT_STREAMS: Final = 0x3
INITIAL_WINDOW_SIZE: Final = 0x4
MAX_FRAME_SIZE: Final = 0x5
MAX_HEADER_LIST_SIZE: Final = 0x6
ENABLE_CONNECT_PROTOCOL: Final = 0x8

MAX_WINDOW: Final = 2**31 - 1
DEFAULT_WINDOW: Final = 65535
FRAME_SIZE: Final = 16384  # our SETTINGS_MAX_FRAME_SIZE: the default, never changed
MAX_CONTINUATIONS: Final = 64
_SETTING: Final = struct.Struct(">HL")

# Fields that are meaningless (and forbidden) in HTTP/2 (RFC 9113 §8.2.2).
_CONNECTION_HEADERS: Final = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
_PSEUDO: Final = frozenset((b":method", b":scheme", b":authority", b":path", b":protocol"))
_NAME: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")  # a token, lower case (RFC 9113 §8.2.1)
_BAD_VALUE: Final = re.compile(rb"[\0\r\n]|^[ \t]|[ \t]\Z")
_STATUS: Final = {code: str(code).encode() for code in range(100, 600)}
_NO_CONTENT: Final = frozenset((204, 304))  # responses without content (RFC 9110 §15.3.5, §15.4.5)
_METHODS: Final = {
    m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT")
}
_REQUEST_CACHE_MAX: Final = 32
_HEADS_MAX: Final = 64
_CACHEABLE_BLOCK: Final = 512  # longer blocks are not cached (nor blocks decoding to more than this x 16)


class LocalProtocolError(Exception):
    """An outgoing event that cannot be sent (unknown stream, wrong order)."""


class _ConnectionError(Exception):
    """Raised inside frame handlers: GOAWAY with ``code``."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code = code


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved; ``take()`` is False when empty."""

    __slots__ = ("rate", "burst", "tokens", "stamp", "clock")

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.clock = clock
        self.stamp = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= 1
        return self.tokens >= 0


class RecentIds:
    """The last ``size`` stream ids added, for membership tests, each in O(1). (A dict trimmed with
    ``del d[next(iter(d))]`` rescans its deleted head at every trim: 0.67 µs per closed stream.)
    The order is a ring of ``size`` slots (a list: compiled, its operations are native, where a
    deque's are method calls); 0 marks a free slot, as no stream has id 0."""

    __slots__ = ("_ids", "_ring", "_next")

    def __init__(self, size: int) -> None:
        self._ids: set[int] = set()
        self._ring: list[int] = [0] * size
        self._next = 0

    def add(self, sid: int) -> None:
        """Remember ``sid``, forgetting the oldest id past ``size``."""
        ids = self._ids
        if sid in ids:
            return
        ring = self._ring
        at = self._next
        oldest = ring[at]
        if oldest:
            ids.discard(oldest)
        ring[at] = sid
        self._next = at + 1 if at + 1 < len(ring) else 0
        ids.add(sid)

    def has(self, sid: int) -> bool:
        """``sid`` is among the last ``size`` ids added."""
        return sid in self._ids


class _Stream:
    """One open stream: its state, its windows, and its response as far as it is not framed yet."""

    __slots__ = (
        "sid",
        "remote_open",
        "local_open",
        "send_window",
        "recv_window",
        "unacked",
        "expected",
        "received",
        "response",
        "head",
        "chunks",
        "size",
        "end",
        "trailers",
        "no_content",
    )

    def __init__(self, sid: int, send_window: int, recv_window: int) -> None:
        self.sid = sid
        self.remote_open = True
        self.local_open = True
        self.send_window = send_window
        self.recv_window = recv_window
        self.unacked = 0  # body bytes read by the app, not yet announced in a WINDOW_UPDATE
        self.expected: int | None = None  # the request's Content-Length
        self.received = 0
        self.response = False  # a response was started
        self.head: bytes | None = None  # the response head's HPACK block, until framed
        self.chunks: list[bytes] = []  # (a list: compiled, its operations are native)
        self.size = 0
        self.end = False
        self.trailers: Headers | None = None
        self.no_content = False  # a response to HEAD, or a 204 or 304: body data is dropped


def _forget(table: dict[int, _Stream], sid: int) -> None:
    """Drop ``sid`` from ``table`` if it is there (compiled, ``in`` and ``del`` are native where
    ``dict.pop(key, None)`` is a method call)."""
    if sid in table:
        del table[sid]  # noqa: RUF051 - pop(sid, None) is the method call this avoids


def _frame(kind: int, flags: int, sid: int, payload: bytes) -> bytes:
    # The 9-byte head as one int: compiled, the shifts are native up to 16 KiB payloads (wider,
    # exact all the same) and to_bytes is a primitive, where Struct.pack is a method call with
    # five boxed ints (1,604 -> 887 instructions a frame, compiled, under callgrind).
    return (len(payload) << 48 | kind << 40 | flags << 32 | sid).to_bytes(9, "big") + payload


def _frame_end(data: bytes) -> int:
    """The length of the frame that ``data`` starts (9 while its header is incomplete)."""
    return 9 + int.from_bytes(data[:3], "big") if len(data) >= 9 else 9


def _strip_padding(payload: bytes) -> bytes:
    """The payload of a PADDED frame without its padding. Raises _ConnectionError (§6.1)."""
    if not payload or payload[0] >= len(payload):
        raise _ConnectionError(PROTOCOL_ERROR, "padding longer than the frame")
    return payload[1 : len(payload) - payload[0]]


def parse_settings(payload: bytes) -> dict[int, int]:
    """The settings of a SETTINGS payload, checked (§6.5.2). Raises _ConnectionError."""
    if len(payload) % 6:
        raise _ConnectionError(FRAME_SIZE_ERROR, "SETTINGS length not a multiple of 6")
    settings = dict(_SETTING.iter_unpack(payload))
    for key in (ENABLE_PUSH, ENABLE_CONNECT_PROTOCOL):
        if settings.get(key, 0) > 1:
            raise _ConnectionError(PROTOCOL_ERROR, f"setting {key} must be 0 or 1")
    if settings.get(INITIAL_WINDOW_SIZE, 0) > MAX_WINDOW:
        raise _ConnectionError(FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE too large")
    if not FRAME_SIZE <= settings.get(MAX_FRAME_SIZE, FRAME_SIZE) <= 2**24 - 1:
        raise _ConnectionError(PROTOCOL_ERROR, "SETTINGS_MAX_FRAME_SIZE out of range")
    return settings


class _RequestHead(NamedTuple):
    """A checked request header block, as cached by its bytes."""

    method: str
    raw_path: bytes
    query: bytes
    headers: Headers
    protocol: bytes | None
    length: int | None


def parse_request(fields: list[tuple[bytes, bytes]]) -> _RequestHead | str:
    """Check a request header block (RFC 9113 §8.2, §8.3); the request, or why it is malformed."""
    pseudo: dict[bytes, bytes] = {}
    headers: Headers = []
    cookies: list[bytes] = []
    host = length = None
    bad_value = _BAD_VALUE.search
    for name, value in fields:
        if bad_value(value):
            return f"invalid value in field {name!r}"
        if name[:1] == b":":
            if headers or cookies or host is not None:
                return f"pseudo-header {name!r} after a regular field"
            if name not in _PSEUDO or name in pseudo:
                return f"unknown or repeated pseudo-header {name!r}"
            pseudo[name] = value
            continue
        if not _NAME.fullmatch(name):
            return f"invalid field name {name!r}"
        if name in _CONNECTION_HEADERS or (name == b"te" and value.lower() != b"trailers"):
            return f"connection-specific field {name!r}"
        if name == b"cookie":
            cookies.append(value)
            continue
        if name == b"host":
            if host is not None:
                return "more than one Host"
            host = value
        elif name == b"content-length":
            if not value.isdigit() or (length is not None and int(value) != length):
                return "invalid Content-Length"
            length = int(value)
        headers.append((name, value))
    return _request_head(pseudo, headers, cookies, host, length)


def _request_head(
    pseudo: dict[bytes, bytes], headers: Headers, cookies: list[bytes], host: bytes | None, length: int | None
) -> _RequestHead | str:
    method = pseudo.get(b":method")
    path = pseudo.get(b":path")
    protocol = pseudo.get(b":protocol")
    authority = pseudo.get(b":authority")
    if method is None:
        return "no :method"
    if method == b"CONNECT" and protocol is None:
        return "CONNECT (a tunnel) is not served"
    if protocol is not None and method != b"CONNECT":
        return ":protocol without CONNECT"
    if b":scheme" not in pseudo or not path:
        return "no :scheme, or no or an empty :path"
    if authority is None and host is None:
        return "neither :authority nor Host"
    if authority is not None:
        if host is not None:
            if host != authority:
                return ":authority and Host differ"
            headers = [item for item in headers if item[0] != b"host"]
        headers.insert(0, (b"host", authority))
    if cookies:
        headers.append((b"cookie", b"; ".join(cookies)))
    raw_path, _, query = path.partition(b"?")
    name = _METHODS.get(method) or method.decode("ascii", "replace")
    return _RequestHead(name, raw_path, query, headers, protocol.lower() if protocol else None, length)


class H2Server:
    """The server side of one HTTP/2 connection. See the module docstring.

    ``default_headers`` returns the HTTP/1.1-style ``name: value\\r\\n`` block (Date, Server,
    ``--header``) that every response starts with; it is parsed once per change.
    """

    def __init__(
        self,
        *,
        max_concurrent_streams: int = 100,
        max_header_list_size: int = 65536,
        initial_window_size: int = 262144,
        connection_window_size: int | None = None,
        max_reset_rate: float = 100,
        max_control_rate: float = 100,
        enable_connect_protocol: bool = False,
        default_headers: Callable[[], bytes] = lambda: b"",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = {
            MAX_CONCURRENT_STREAMS: max_concurrent_streams,
            INITIAL_WINDOW_SIZE: initial_window_size,
            MAX_HEADER_LIST_SIZE: max_header_list_size,
        }
        if enable_connect_protocol:
            self._settings[ENABLE_CONNECT_PROTOCOL] = 1
        self._max_streams = max_concurrent_streams
        self._max_block = max_header_list_size + 1024
        self._stream_window = initial_window_size
        self._recv_initial = DEFAULT_WINDOW  # a new stream's receive window: ours once acknowledged
        self._connection_window = max(connection_window_size or 4 * initial_window_size, DEFAULT_WINDOW)
        self._decoder = BlockDecoder(max_header_list_size)
        self._generation = 0
        self._requests: dict[bytes, _RequestHead | str] = {}
        self._table_update = TABLE_SIZE_ZERO  # leads our first header block
        self._default_headers = default_headers
        self._defaults_block = b"\0"
        self._defaults: list[tuple[bytes, bytes]] = []
        self._heads: dict[tuple[object, ...], bytes] = {}  # recent response heads, encoded
        self._streams: dict[int, _Stream] = {}
        self._blocked: dict[int, _Stream] = {}  # streams with data waiting for window
        self._reset_by_us = RecentIds(1024)  # recently: their late frames are ignored
        self._closed = RecentIds(1024)  # recently closed otherwise
        self._inbound = 0  # open client-initiated streams
        self._outbound = 0  # open pushed streams
        self._highest_in = 0
        self._next_push = 2
        self._peer_push = True
        self._peer_max_streams = MAX_WINDOW
        self._peer_window = DEFAULT_WINDOW  # the client's SETTINGS_INITIAL_WINDOW_SIZE
        self._peer_frame = FRAME_SIZE
        self._send_window = DEFAULT_WINDOW
        self._recv_window = DEFAULT_WINDOW
        self._recv_unacked = 0
        self._state = 0  # 0: expecting the preface, 1: expecting SETTINGS, 2: open
        self._buffer = bytearray()  # an incomplete frame
        self._need = 0  # the buffer's length at which it holds a whole frame
        self._block: list[bytes] | None = None  # a header block waiting for CONTINUATION
        self._block_sid = 0
        self._block_size = 0
        self._block_flags = 0
        self._resets = TokenBucket(max_reset_rate, 2 * max_reset_rate, clock)
        self._control = TokenBucket(max_control_rate, 2 * max_control_rate, clock)
        self._output: list[bytes] = []
        self._events: list[Event] = []
        self.last_stream_id = 0  # highest stream handed on as a Request
        self.going_away = False  # we sent GOAWAY: streams above last_stream_id are refused
        self.closed = False  # a connection error: nothing more is read
        self.peer_going_away = False  # the client sent GOAWAY: no push
        # Frames counted by error code (index: the code, capped at ERROR_CODES): for the metrics.
        self.resets_sent = [0] * (ERROR_CODES + 1)
        self.resets_received = [0] * (ERROR_CODES + 1)
        self.goaways_sent = [0] * (ERROR_CODES + 1)

    # ---------------------------------------------------------------- setup

    def initiate(self) -> None:
        """Queue the server preface (SETTINGS) and open the connection window."""
        payload = b"".join(_SETTING.pack(key, value) for key, value in self._settings.items())
        self._output.append(_frame(SETTINGS, 0, 0, payload))
        extra = self._connection_window - DEFAULT_WINDOW
        if extra > 0:
            self._output.append(_frame(WINDOW_UPDATE, 0, 0, extra.to_bytes(4, "big")))
            self._recv_window += extra

    def initiate_upgrade(self, settings_header: bytes) -> None:
        """After ``101`` to ``Upgrade: h2c``: apply the client's HTTP2-Settings (base64url) and queue
        the preface; stream 1 is the upgrade request, half-closed by the client.
        Raises ValueError for a malformed settings header."""
        try:
            padded = settings_header + b"=" * (-len(settings_header) % 4)
            # validate: a character outside base64url is an error, not skipped (RFC 9113 §3.2.1)
            payload = base64.b64decode(padded, altchars=b"-_", validate=True)
            self._apply_settings(parse_settings(payload))
        except (binascii.Error, ValueError, _ConnectionError) as exc:
            raise ValueError(f"bad HTTP2-Settings: {exc}") from None
        self.initiate()
        stream = self._open(1)
        stream.remote_open = False
        self.last_stream_id = 1

    # ---------------------------------------------------------------- incoming

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; return the events they complete. Never raises."""
        events = self._events = []
        if self.closed:
            return events
        buffer = self._buffer
        if buffer:
            buffer += data
            if len(buffer) < self._need:
                return events  # a frame still arriving is neither copied nor cut again (linear)
            data = bytes(buffer)
            buffer.clear()
        try:
            rest = self._frames(data)
        except _ConnectionError as exc:
            self._fail(f"protocol error: {exc}", exc.code)
            return events
        if rest:
            buffer += rest
            self._need = _frame_end(rest) if self._state else 0  # the preface is checked as it comes
        return events

    def _frames(self, data: bytes) -> bytes:
        """Handle every complete frame of ``data``; return the incomplete rest."""
        pos = 0
        if self._state == 0:
            if len(data) < 24:
                if not PREFACE.startswith(data):
                    raise _ConnectionError(PROTOCOL_ERROR, "not the HTTP/2 preface")
                return data
            if data[:24] != PREFACE:
                raise _ConnectionError(PROTOCOL_ERROR, "not the HTTP/2 preface")
            self._state = 1
            pos = 24
        end = len(data)
        handlers = _FRAMES
        while end - pos >= 9:
            # The head read byte by byte: compiled, indexing bytes and the shifts are native,
            # where Struct.unpack_from is a method call and a tuple of boxed ints.
            length = data[pos] << 16 | data[pos + 1] << 8 | data[pos + 2]
            kind = data[pos + 3]
            flags = data[pos + 4]
            sid = data[pos + 5] << 24 | data[pos + 6] << 16 | data[pos + 7] << 8 | data[pos + 8]
            if length > FRAME_SIZE:
                raise _ConnectionError(FRAME_SIZE_ERROR, f"a frame of {length} bytes")
            if end - pos - 9 < length:
                break
            payload = data[pos + 9 : pos + 9 + length]
            pos += 9 + length
            sid &= 0x7FFFFFFF
            if self._block is not None and kind != CONTINUATION:
                raise _ConnectionError(PROTOCOL_ERROR, "a header block interrupted")
            if self._state == 1:
                if kind != SETTINGS or flags & ACK:
                    raise _ConnectionError(PROTOCOL_ERROR, "the preface is not followed by SETTINGS")
                self._state = 2
            if kind < 10:
                handlers[kind](self, flags, sid, payload)
                if self.closed:
                    return b""
        return data[pos:]

    def _fail(self, detail: str, code: int | None = None) -> None:
        if code is not None:
            self._goaway(code, detail.encode("ascii", "replace")[:128])
        self.closed = True
        self._events.append(Rejected(0, 400, detail))

    def _idle(self, sid: int) -> bool:
        """True for a stream id the client has not used yet (nor we, for even ones)."""
        return sid > self._highest_in if sid & 1 else sid >= self._next_push

    # --- HEADERS, CONTINUATION

    def _on_headers(self, flags: int, sid: int, payload: bytes) -> None:
        if not sid:
            raise _ConnectionError(PROTOCOL_ERROR, "HEADERS on stream 0")
        if flags & PADDED:
            payload = _strip_padding(payload)
        if flags & PRIORITY_FLAG:
            if len(payload) < 5:
                raise _ConnectionError(FRAME_SIZE_ERROR, "HEADERS too short for its priority")
            if int.from_bytes(payload[:4], "big") & 0x7FFFFFFF == sid:
                flags |= _SELF_DEPENDENT  # a stream error, once the block is decoded
            payload = payload[5:]
        if flags & END_HEADERS:
            self._on_block(flags, sid, payload)
        else:
            self._block, self._block_sid, self._block_flags = [payload], sid, flags
            self._block_size = len(payload)

    def _on_continuation(self, flags: int, sid: int, payload: bytes) -> None:
        block = self._block
        if block is None or sid != self._block_sid:
            raise _ConnectionError(PROTOCOL_ERROR, "CONTINUATION without a header block to continue")
        block.append(payload)
        self._block_size += len(payload)
        if len(block) > MAX_CONTINUATIONS or self._block_size > self._max_block:
            raise _ConnectionError(ENHANCE_YOUR_CALM, "header block too long (CONTINUATION flood)")
        if flags & END_HEADERS:
            self._block = None
            self._on_block(self._block_flags, sid, b"".join(block))

    def _on_block(self, flags: int, sid: int, block: bytes) -> None:
        """A complete header block: a new request, or trailers."""
        stream = self._streams.get(sid)
        if stream is None and sid & 1 and sid > self._highest_in:
            head = self._requests.get(block)
            if head is None:
                head = self._decode_request(block)
            self._highest_in = sid
            self._on_request(flags, sid, head)
            return
        fields = self._decode(block)
        if stream is None:
            if not sid & 1:
                raise _ConnectionError(PROTOCOL_ERROR, f"HEADERS on even stream {sid}")
            if self._reset_by_us.has(sid):
                return  # a late frame (§5.1)
            if self._closed.has(sid):
                raise _ConnectionError(STREAM_CLOSED, f"HEADERS on closed stream {sid}")
            raise _ConnectionError(PROTOCOL_ERROR, f"HEADERS on stream {sid}, below a newer one")
        elif not stream.remote_open:
            self._stream_error(sid, STREAM_CLOSED)
        elif not flags & END_STREAM or any(name[:1] == b":" for name, _ in fields):
            self._stream_error(sid, PROTOCOL_ERROR)  # trailers must end the stream, without pseudo-headers
        else:
            self._on_end(stream)  # request trailers are not passed on

    def _decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        decoder = self._decoder
        try:
            fields = decoder.decode(block)
        except HeaderListTooLarge:
            raise _ConnectionError(ENHANCE_YOUR_CALM, "header list too large") from None
        except BadHeaderBlock as exc:
            raise _ConnectionError(COMPRESSION_ERROR, f"HPACK: {exc}") from None
        finally:
            if decoder.generation != self._generation:
                self._generation = decoder.generation
                self._requests.clear()
        return fields

    def _decode_request(self, block: bytes) -> _RequestHead | str:
        generation = self._decoder.generation
        fields = self._decode(block)
        head = parse_request(fields)
        if (
            generation == self._generation
            and len(block) <= _CACHEABLE_BLOCK
            and sum(len(n) + len(v) for n, v in fields) <= 16 * _CACHEABLE_BLOCK
        ):
            if len(self._requests) >= _REQUEST_CACHE_MAX:
                self._requests.clear()
            self._requests[block] = head
        return head

    def _on_request(self, flags: int, sid: int, head: _RequestHead | str) -> None:
        if flags & _SELF_DEPENDENT:  # §5.3.1
            self._stream_error(sid, PROTOCOL_ERROR, new=True)
            return
        if self.going_away and sid > self.last_stream_id:
            self._send_reset(sid, REFUSED_STREAM)  # the client had not seen our GOAWAY: not metered
            return
        if self._inbound >= self._max_streams:
            self._stream_error(sid, REFUSED_STREAM, new=True)
            return
        if type(head) is str:
            self._stream_error(sid, PROTOCOL_ERROR, new=True)
            return
        assert isinstance(head, _RequestHead)
        if flags & END_STREAM and head.length:
            self._stream_error(sid, PROTOCOL_ERROR, new=True)  # §8.1.1: a content-length, no DATA
            return
        stream = self._open(sid)
        stream.expected = head.length
        stream.no_content = head.method == "HEAD"
        self.last_stream_id = sid
        method, raw_path, query, headers, protocol, _ = head
        self._events.append(Request(sid, method, raw_path, query, "2", list(headers), False, protocol))
        if flags & END_STREAM:
            self._on_end(stream)

    def _open(self, sid: int) -> _Stream:
        stream = self._streams[sid] = _Stream(sid, self._peer_window, self._recv_initial)
        if sid & 1:
            self._inbound += 1
            self._highest_in = max(self._highest_in, sid)
        else:
            self._outbound += 1
        return stream

    def _on_end(self, stream: _Stream) -> None:
        """The client ended the stream (END_STREAM)."""
        if stream.expected is not None and stream.expected != stream.received:
            self._stream_error(stream.sid, PROTOCOL_ERROR)  # body shorter than Content-Length
            return
        stream.remote_open = False
        self._events.append(EndBody(stream.sid))
        if not stream.local_open:
            self._close(stream)

    # --- DATA

    def _on_data(self, flags: int, sid: int, payload: bytes) -> None:
        if not sid:
            raise _ConnectionError(PROTOCOL_ERROR, "DATA on stream 0")
        size = len(payload)
        data = _strip_padding(payload) if flags & PADDED else payload
        self._recv_window -= size
        if self._recv_window < 0:
            raise _ConnectionError(FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        stream = self._streams.get(sid)
        if stream is None or not stream.remote_open:
            if self._idle(sid):
                raise _ConnectionError(PROTOCOL_ERROR, f"DATA on idle stream {sid}")
            self._consumed(None, size)  # nobody will read it
            if stream is not None or not self._reset_by_us.has(sid):
                self._stream_error(sid, STREAM_CLOSED)
            return
        stream.recv_window -= size
        if stream.recv_window < 0:
            raise _ConnectionError(FLOW_CONTROL_ERROR, f"DATA beyond the window of stream {sid}")
        if size != len(data):
            self._consumed(stream, size - len(data))  # padding: nobody will read it
        stream.received += len(data)
        if stream.expected is not None and stream.received > stream.expected:
            self._consumed(None, len(data))
            self._stream_error(sid, PROTOCOL_ERROR)  # body longer than Content-Length
            return
        if data:
            self._events.append(Body(sid, data))
        elif not flags & END_STREAM and not self._control.take():
            raise _ConnectionError(ENHANCE_YOUR_CALM, "empty DATA frame flood")
        if flags & END_STREAM:
            self._on_end(stream)

    def _consumed(self, stream: _Stream | None, size: int) -> None:
        """``size`` received bytes are done with: give the window back, in WINDOW_UPDATEs of at least
        half a window."""
        if stream is not None:
            stream.unacked += size
            if stream.unacked >= self._stream_window >> 1:
                stream.recv_window += stream.unacked
                self._output.append(_frame(WINDOW_UPDATE, 0, stream.sid, stream.unacked.to_bytes(4, "big")))
                stream.unacked = 0
        self._recv_unacked += size
        if self._recv_unacked >= self._connection_window >> 1:
            self._recv_window += self._recv_unacked
            self._output.append(_frame(WINDOW_UPDATE, 0, 0, self._recv_unacked.to_bytes(4, "big")))
            self._recv_unacked = 0

    # --- control frames

    def _on_priority(self, flags: int, sid: int, payload: bytes) -> None:
        if not sid:
            raise _ConnectionError(PROTOCOL_ERROR, "PRIORITY on stream 0")
        if len(payload) != 5:
            code, detail = FRAME_SIZE_ERROR, "PRIORITY of the wrong length"
        elif int.from_bytes(payload[:4], "big") & 0x7FFFFFFF == sid:
            code, detail = PROTOCOL_ERROR, "a stream depending on itself"
        else:
            return
        if sid not in self._streams:
            raise _ConnectionError(code, detail)  # no stream to reset
        self._stream_error(sid, code)

    def _on_rst_stream(self, flags: int, sid: int, payload: bytes) -> None:
        if not sid:
            raise _ConnectionError(PROTOCOL_ERROR, "RST_STREAM on stream 0")
        if len(payload) != 4:
            raise _ConnectionError(FRAME_SIZE_ERROR, "RST_STREAM of the wrong length")
        stream = self._streams.get(sid)
        if stream is None:
            if self._idle(sid):
                raise _ConnectionError(PROTOCOL_ERROR, f"RST_STREAM on idle stream {sid}")
            return  # closed already
        self._close(stream)
        code = int.from_bytes(payload, "big")
        self.resets_received[min(code, ERROR_CODES)] += 1
        self._events.append(StreamReset(sid, code))
        if not self._resets.take():
            raise _ConnectionError(ENHANCE_YOUR_CALM, "too many stream resets (rapid reset)")

    def _on_settings(self, flags: int, sid: int, payload: bytes) -> None:
        if sid:
            raise _ConnectionError(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise _ConnectionError(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            self._settings_acknowledged()
            return
        settings = parse_settings(payload)
        if not self._control.take():
            raise _ConnectionError(ENHANCE_YOUR_CALM, "SETTINGS flood")
        self._output.append(_frame(SETTINGS, ACK, 0, b""))
        self._apply_settings(settings)

    def _settings_acknowledged(self) -> None:
        """The client applies our SETTINGS from now on: our stream window becomes its limit."""
        delta = self._stream_window - self._recv_initial
        if delta:
            self._recv_initial = self._stream_window
            for stream in self._streams.values():
                stream.recv_window += delta

    def _apply_settings(self, settings: dict[int, int]) -> None:
        self._peer_push = bool(settings.get(ENABLE_PUSH, self._peer_push))
        self._peer_max_streams = settings.get(MAX_CONCURRENT_STREAMS, self._peer_max_streams)
        self._peer_frame = settings.get(MAX_FRAME_SIZE, self._peer_frame)
        window = settings.get(INITIAL_WINDOW_SIZE)
        if window is not None and window != self._peer_window:
            delta = window - self._peer_window
            self._peer_window = window
            for stream in self._streams.values():
                stream.send_window += delta
                if stream.send_window > MAX_WINDOW:
                    raise _ConnectionError(FLOW_CONTROL_ERROR, "a stream window past 2^31-1")
            self._pump_all()

    def _on_push_promise(self, flags: int, sid: int, payload: bytes) -> None:
        raise _ConnectionError(PROTOCOL_ERROR, "PUSH_PROMISE from a client")

    def _on_ping(self, flags: int, sid: int, payload: bytes) -> None:
        if sid:
            raise _ConnectionError(PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise _ConnectionError(FRAME_SIZE_ERROR, "PING of the wrong length")
        if flags & ACK:
            return
        if not self._control.take():
            raise _ConnectionError(ENHANCE_YOUR_CALM, "PING flood")
        self._output.append(_frame(PING, ACK, 0, payload))

    def _on_goaway(self, flags: int, sid: int, payload: bytes) -> None:
        if sid:
            raise _ConnectionError(PROTOCOL_ERROR, "GOAWAY on a stream")
        if len(payload) < 8:
            raise _ConnectionError(FRAME_SIZE_ERROR, "GOAWAY too short")
        self.peer_going_away = True
        self._events.append(PeerGoingAway(0, int.from_bytes(payload[4:8], "big")))

    def _on_window_update(self, flags: int, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise _ConnectionError(FRAME_SIZE_ERROR, "WINDOW_UPDATE of the wrong length")
        increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
        if not sid:
            if not increment:
                raise _ConnectionError(PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self._send_window += increment
            if self._send_window > MAX_WINDOW:
                raise _ConnectionError(FLOW_CONTROL_ERROR, "connection window past 2^31-1")
            self._pump_all()
            return
        stream = self._streams.get(sid)
        if stream is None:
            if self._idle(sid):
                raise _ConnectionError(PROTOCOL_ERROR, f"WINDOW_UPDATE on idle stream {sid}")
            return  # closed: a late update is fine (§6.9)
        if not increment:
            self._stream_error(sid, PROTOCOL_ERROR)
            return
        stream.send_window += increment
        if stream.send_window > MAX_WINDOW:
            self._stream_error(sid, FLOW_CONTROL_ERROR)
        elif sid in self._blocked:
            self._pump(stream)

    def _stream_error(self, sid: int, code: int, new: bool = False) -> None:
        """Reset ``sid`` because of what the client sent on it; metered like the client's resets.
        ``new``: the stream was never opened (it becomes closed)."""
        stream = self._streams.get(sid)
        self.reset(sid, code)
        if stream is not None:
            self._events.append(StreamReset(sid, code))
        elif new or not self._idle(sid):
            self._send_reset(sid, code)
        if not self._resets.take():
            raise _ConnectionError(ENHANCE_YOUR_CALM, "too many stream errors")

    # ---------------------------------------------------------------- outgoing

    def send(self, event: Event) -> None:
        """Frame an outgoing event. Raises LocalProtocolError if it cannot be sent; events for a
        stream the client has reset are dropped silently."""
        sid = event.stream_id
        kind = type(event)
        stream = self._streams.get(sid)
        if stream is None or not stream.local_open:
            if stream is None and self._idle(sid):
                raise LocalProtocolError(f"no request on stream {sid}")
            if kind is not Data or stream is None:
                return  # the stream is gone
            raise LocalProtocolError(f"the response on stream {sid} is complete")
        if kind is Data:
            if not stream.response:
                raise LocalProtocolError(f"no response started on stream {sid}")
            self._send_data(stream, event)  # type: ignore[arg-type]
        elif kind is Response:
            if stream.response:
                raise LocalProtocolError(f"a response was already started on stream {sid}")
            stream.response = True
            response = cast(Response, event)  # (typed: compiled, a native attribute read)
            stream.head = self._head_block(response.status, response.headers)
            if response.status in _NO_CONTENT:
                stream.no_content = True  # RFC 9110 §9.3.2, §15.3.5, §15.4.5
        elif kind is Informational:
            if not stream.response:
                head = [(b":status", _STATUS[event.status]), *event.headers]  # type: ignore[attr-defined]
                self._send_headers(sid, head, 0)
        elif kind is Trailers:
            if stream.response:
                stream.trailers = [(n, v) for n, v in event.headers if n not in _CONNECTION_HEADERS]  # type: ignore[attr-defined]
                stream.end = True
                self._pump(stream)
        else:
            raise LocalProtocolError(f"cannot send {kind.__name__} over HTTP/2")

    def _head_block(self, status: int, headers: Headers) -> bytes:
        """The HPACK block of a response head; the same head (and default headers) as a recent
        response's is not built and encoded again."""
        block = self._default_headers()
        if block is not self._defaults_block:
            self._defaults_block = block
            self._defaults = [
                (name.strip().lower(), value.strip())
                for name, _, value in (line.partition(b":") for line in block.split(b"\r\n") if line)
            ]
            self._heads.clear()
        try:
            key = (status, *headers)
            return self._heads[key]
        except KeyError:
            encoded = encode(self._head(status, headers))
            if len(encoded) <= _CACHEABLE_BLOCK:
                heads = self._heads
                if len(heads) >= _HEADS_MAX:
                    heads.clear()
                heads[key] = encoded
            return encoded
        except TypeError:  # unhashable fields
            return encode(self._head(status, headers))

    def _head(self, status: int, headers: Headers) -> list[tuple[bytes, bytes]]:
        head = [(b":status", _STATUS[status])]
        seen = set()
        for name, value in headers:
            if name in _CONNECTION_HEADERS:
                continue
            seen.add(name)
            head.append((name, value))
        head.extend(item for item in self._defaults if item[0] not in seen)
        return head

    def _send_headers(self, sid: int, fields: list[tuple[bytes, bytes]], flags: int) -> None:
        self._send_block(sid, encode(fields), flags)

    def _send_block(self, sid: int, block: bytes, flags: int) -> None:
        """Frame a header block: HEADERS, then CONTINUATION frames if it is larger than a frame."""
        if self._table_update:
            block = self._table_update + block
            self._table_update = b""
        self._output_block(HEADERS, flags, sid, block)

    def _output_block(self, kind: int, flags: int, sid: int, block: bytes) -> None:
        limit = self._peer_frame
        if len(block) <= limit:
            self._output.append(_frame(kind, flags | END_HEADERS, sid, block))
            return
        self._output.append(_frame(kind, flags, sid, block[:limit]))
        for start in range(limit, len(block), limit):
            flags = END_HEADERS if start + limit >= len(block) else 0
            self._output.append(_frame(CONTINUATION, flags, sid, block[start : start + limit]))

    def _send_data(self, stream: _Stream, event: Data) -> None:
        if stream.end:
            raise LocalProtocolError(f"the response on stream {stream.sid} is complete")
        data = event.data
        if data and not stream.no_content:
            stream.chunks.append(data)
            stream.size += len(data)
        if event.end:
            stream.end = True
        if stream.head is not None and not stream.size and stream.end and stream.trailers is None:
            head, stream.head = stream.head, None
            self._send_block(stream.sid, head, END_STREAM)
            self._local_end(stream)
            return
        self._pump(stream)

    def _pump(self, stream: _Stream) -> None:
        """Frame as much of ``stream``'s response as the windows allow."""
        sid = stream.sid
        if stream.head is not None:
            head, stream.head = stream.head, None
            self._send_block(sid, head, 0)
        chunks = stream.chunks
        output = self._output
        while chunks:
            # Two min()s of two: compiled, those are native; a min() of three is a generic call.
            window = min(self._send_window, stream.send_window)
            window = min(window, self._peer_frame)
            if window <= 0:
                self._blocked[sid] = stream
                return
            chunk = chunks[0]
            size = len(chunk)
            if size > window:
                chunks[0] = chunk[window:]
                chunk = chunk[:window]
                size = window
            else:
                chunks.pop(0)  # few: the app waits in drain() while a stream holds data back
            self._send_window -= size
            stream.send_window -= size
            stream.size -= size
            last = not chunks and stream.end and stream.trailers is None
            output.append(_frame(DATA, END_STREAM if last else 0, sid, chunk))
            if last:
                self._local_end(stream)
                return
        _forget(self._blocked, sid)
        if stream.end:
            if stream.trailers is not None:
                self._send_headers(sid, stream.trailers, END_STREAM)
            else:
                output.append(_frame(DATA, END_STREAM, sid, b""))
            self._local_end(stream)

    def _local_end(self, stream: _Stream) -> None:
        """We sent END_STREAM."""
        stream.local_open = False
        _forget(self._blocked, stream.sid)
        if not stream.remote_open:
            self._close(stream)

    def _close(self, stream: _Stream) -> None:
        sid = stream.sid
        streams = self._streams
        if sid not in streams:
            return
        del streams[sid]
        _forget(self._blocked, sid)
        if stream.chunks:
            stream.chunks.clear()
        stream.size = 0
        stream.local_open = stream.remote_open = False
        if sid & 1:
            self._inbound -= 1
        else:
            self._outbound -= 1
        self._closed.add(sid)

    def _pump_all(self) -> None:
        for stream in list(self._blocked.values()):
            self._pump(stream)

    def _send_reset(self, sid: int, code: int) -> None:
        self._output.append(_frame(RST_STREAM, 0, sid, code.to_bytes(4, "big")))
        self.resets_sent[min(code, ERROR_CODES)] += 1
        self._reset_by_us.add(sid)

    @property
    def push_enabled(self) -> bool:
        """The client allows server push (its SETTINGS_ENABLE_PUSH) and neither side is going away."""
        return self._peer_push and not self.going_away and not self.peer_going_away and not self.closed

    def push(
        self, stream_id: int, path: bytes, headers: Headers, authority: bytes, scheme: bytes
    ) -> Request | None:
        """Promise a GET of ``path`` on ``stream_id`` (PUSH_PROMISE); return the promised stream's
        request, or None when push is off, the stream is gone, or the client's stream limit is hit."""
        parent = self._streams.get(stream_id)
        if not self.push_enabled or parent is None or not parent.local_open:
            return None
        if self._outbound >= self._peer_max_streams:
            return None
        fields = [(n, v) for n, v in headers if n[:1] != b":" and n not in _CONNECTION_HEADERS]
        head = [(b":method", b"GET"), (b":path", path), (b":scheme", scheme), (b":authority", authority)]
        promised = self._next_push
        self._next_push += 2
        block = encode([*head, *fields])
        if self._table_update:
            block = self._table_update + block
            self._table_update = b""
        self._output_block(PUSH_PROMISE, 0, stream_id, promised.to_bytes(4, "big") + block)
        self._open(promised).remote_open = False
        raw_path, _, query = path.partition(b"?")
        return Request(promised, "GET", raw_path, query, "2", [(b"host", authority), *fields])

    def receiving(self, stream_id: int) -> bool:
        """The client may send request body on ``stream_id`` now: it has not ended it, and both the
        stream's and the connection's receive windows are open."""
        stream = self._streams.get(stream_id)
        return stream is not None and stream.remote_open and stream.recv_window > 0 and self._recv_window > 0

    def pending(self, stream_id: int) -> int:
        """Response bytes queued on ``stream_id`` waiting for flow-control window."""
        stream = self._blocked.get(stream_id)
        return stream.size if stream is not None else 0

    @property
    def blocked_streams(self) -> list[int]:
        """Streams whose response waits for window."""
        return list(self._blocked)

    def acknowledge(self, stream_id: int, size: int) -> None:
        """The application has read ``size`` body bytes of ``stream_id``: the client may send more."""
        if size and not self.closed:
            self._consumed(self._streams.get(stream_id), size)

    def reset(self, stream_id: int, code: int = CANCEL) -> None:
        """Reset a stream (RST_STREAM); its queued output is dropped."""
        stream = self._streams.get(stream_id)
        if stream is not None:
            self._close(stream)
            self._send_reset(stream_id, code)

    def refuse(self, stream_id: int) -> None:
        """Refuse a stream the connection cannot serve (REFUSED_STREAM: safe to retry); counted like
        a client reset, so a client that keeps opening streams past the limit gets GOAWAY."""
        self.reset(stream_id, REFUSED_STREAM)  # unless the client has reset it meanwhile
        if not self._resets.take() and not self.closed:
            self._fail("too many refused streams", ENHANCE_YOUR_CALM)

    def graceful_shutdown(self) -> None:
        """GOAWAY(NO_ERROR) naming the last stream served; open streams may finish."""
        if not self.going_away and not self.closed:
            self._goaway(NO_ERROR, b"")

    def close(self, code: int = NO_ERROR, detail: bytes = b"") -> None:
        """GOAWAY with ``code``; nothing more is read."""
        if not self.closed:
            self._goaway(code, detail)
            self.closed = True

    def _goaway(self, code: int, detail: bytes) -> None:
        self.going_away = True
        self.goaways_sent[min(code, ERROR_CODES)] += 1
        payload = self.last_stream_id.to_bytes(4, "big") + int(code).to_bytes(4, "big") + detail
        self._output.append(_frame(GOAWAY, 0, 0, payload))

    @property
    def header_block_open(self) -> bool:
        """A header block has begun and is not complete: CONTINUATION frames are awaited, or a
        HEADERS or CONTINUATION frame is partly read. (Nothing else may come in between.)"""
        if self._block is not None:
            return True
        buffered = self._buffer
        return self._state == 2 and len(buffered) >= 4 and buffered[3] in (HEADERS, CONTINUATION)

    @property
    def open_streams(self) -> int:
        """Open client-initiated streams (either direction)."""
        return self._inbound

    def data_to_send(self) -> bytes:
        """Everything framed since the last call."""
        output = self._output
        if not output:
            return b""
        data = output[0] if len(output) == 1 else b"".join(output)
        output.clear()
        return data


_FRAMES: Final[tuple[Callable[[H2Server, int, int, bytes], None], ...]] = (
    H2Server._on_data,
    H2Server._on_headers,
    H2Server._on_priority,
    H2Server._on_rst_stream,
    H2Server._on_settings,
    H2Server._on_push_promise,
    H2Server._on_ping,
    H2Server._on_goaway,
    H2Server._on_window_update,
    H2Server._on_continuation,
)
