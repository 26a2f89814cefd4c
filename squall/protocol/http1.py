"""HTTP/1.1 server protocol, sans-I/O, over httptools (llhttp).

How it works
------------
Incoming. ``receive_data(bytes)`` feeds llhttp; its callbacks collect one request head at a time.
When a head is complete we check what llhttp leaves to us (RFC 9112: exactly one Host, a
Transfer-Encoding that is a single final ``chunked``, versions 1.0/1.1 only, size limits) and emit
``Request``; body chunks become ``Body`` and the end of the message ``EndBody``. Anything malformed
queues an error response (400/413/414/417/431/501/505), emits ``Rejected`` and stops reading input.

Limits count the current request only. A head's bytes are counted from its first byte, never the
bytes of pipelined requests before it in the same read (a head that begins mid-read is counted by
what llhttp has handed over so far, exactly once it ends). A chunked body's framing is metered:
the bytes of chunk-size lines beyond the shortest form (extensions, leading zeros) may add up to
``CHUNK_META_LIMIT`` per request; the bytes per read that are neither body nor minimal framing
are that excess (CVE-2024-22019's class: llhttp streams extensions without a limit).

Outgoing. Responses leave in request order (pipelining): ``_outgoing`` holds one ``_Exchange`` per
request whose response is not finished, oldest first. ``send(Response)`` frames the head and picks
the body framing (Content-Length, chunked, or close-delimited for HTTP/1.0); ``send(Data)`` frames
body chunks; the final ``Data`` pops the exchange and decides keep-alive. ``data_to_send()`` drains
the output buffer.

Upgrades (``Upgrade:`` + ``Connection: upgrade``) that the owner can take
(``upgrades``) stop the parser: the request is emitted with ``upgrade`` set and the bytes after
its head are left in ``trailing_data`` for the next protocol. Any other upgrade request is served
as plain HTTP. CONNECT asks for a tunnel (RFC 9110 §9.3.6), which a server for applications does
not open: 501, without the application (a 2xx would tell every proxy on the way that a tunnel is up).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Final

import httptools

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
    Trailers,
)

_HOST: Final = re.compile(rb"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(:[0-9]*)?")
_FRAMING: Final = frozenset(
    (b"host", b"content-length", b"transfer-encoding", b"expect", b"connection", b"upgrade")
)
_OWS: Final = (32, 9)
# Methods called through their class: compiled, ``x.find(...)`` looks ``find`` up on x's type at
# each call, these do not (about 100 instructions a call; bench/instructions.sh).
_find: Final = bytes.find
_partition: Final = bytes.partition
_lower: Final = bytes.lower
_feed_data: Final = httptools.HttpRequestParser.feed_data
_get_method: Final = httptools.HttpRequestParser.get_method
_CRLF: Final = (13, 10)
_METHODS: Final = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")}
_JOIN_CHUNK: Final = 2048  # a body chunk up to this size is copied into its chunked framing
_CHUNK_HEADS: Final[dict[int, bytes]] = {}  # size -> its chunk-size line, for sizes up to _JOIN_CHUNK
_RESPONSE_SPECIAL: Final = frozenset(
    (b"content-length", b"transfer-encoding", b"connection", b"server", b"date")
)
_REQUEST_LINE: Final = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}) [\x21-\x7e]+ HTTP/[0-9]\.[0-9]")
_NAMED_LIMIT: Final = {413: "--limit-request-body", 414: "--limit-request-line", 431: "--limit-request-head"}

#: Bytes of chunk-size lines beyond their shortest form (extensions, leading zeros) per request.
CHUNK_META_LIMIT: Final = 16 * 1024


_HOST_CHARS: Final = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=%"


_PLAIN_HOSTS: Final[dict[bytes, bool]] = {}  # Host values checked already (clients repeat theirs)
_PLAIN_HOSTS_MAX: Final = 1024


def _plain_host(host: bytes) -> bool:
    """Fast path of the Host check: reg-name or IPv4 with an optional port."""
    known = _PLAIN_HOSTS.get(host)
    if known is not None:
        return known
    name, _, port = host.partition(b":")
    plain = not name.translate(None, _HOST_CHARS) and (not port or port.isdigit())
    if len(_PLAIN_HOSTS) < _PLAIN_HOSTS_MAX:
        _PLAIN_HOSTS[host] = plain
    return plain


def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase.encode("ascii"))


STATUS_LINES: Final[dict[int, bytes]] = {code: _status_line(code) for code in range(100, 600)}


class _Reject(Exception):
    """Raised inside a parser callback to abort the parse with an HTTP status."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _other_method(raw_method: bytes) -> str:
    """A method outside the common table; CONNECT (a tunnel, RFC 9110 §9.3.6) is not served."""
    if raw_method == b"CONNECT":
        raise _Reject(501, "CONNECT is not served (squall opens no tunnels)")
    return raw_method.decode("ascii")


class _ChunkMeter:
    """Counts a chunked body's framing: every byte read after the head (``read``) against the body
    and the shortest framing of its chunks (``allowed``); the difference is extension bytes."""

    __slots__ = ("read", "body", "allowed", "chunk_start", "in_chunk", "start", "done")

    def __init__(self, start: int | None) -> None:
        self.read = 0
        self.body = 0
        self.allowed = 0
        self.chunk_start = 0  # body bytes before the current chunk
        self.in_chunk = False  # between a chunk's size line and its end
        self.start = start  # where the body begins in the current read; None: unknown, skip it
        self.done = False

    def new_read(self) -> None:
        self.start = 0

    def count(self, size: int) -> int:
        """Account a read of ``size`` bytes; return the excess so far."""
        if self.start is None:  # the body's start in this read is unknown: it counts as no excess
            self.read = self.body + self.allowed
        else:
            self.read += size - self.start
        return self.read - self.body - self.allowed

    @property
    def in_trailers(self) -> bool:
        """Past a size line with no data after it: the last chunk's trailer section (or, for a
        moment, a chunk whose data has not arrived: the size line was counted already)."""
        return self.in_chunk and self.body == self.chunk_start


class _Exchange:
    """Per-request response state, kept until the response's last byte is framed."""

    __slots__ = (
        "stream_id",
        "is_head",
        "http10",
        "keep_alive",
        "chunked",
        "no_body",
        "started",
        "body_done",
    )

    def __init__(self, stream_id: int, is_head: bool, http10: bool, keep_alive: bool) -> None:
        self.stream_id = stream_id
        self.is_head = is_head
        self.http10 = http10
        self.keep_alive = keep_alive
        self.chunked = False
        self.no_body = False
        self.started = False
        self.body_done = False


class LocalProtocolError(Exception):
    """The local side (the application) tried to send something HTTP/1.1 cannot carry."""


class HTTP1Server:
    """The server side of one HTTP/1.1 connection.

    ``default_headers`` returns the pre-encoded ``name: value\\r\\n`` block added to every
    response (Server, Date, ``--header``); it is called once per response.

    Public state: ``head_in_progress`` (between a request's first byte and the end of its head),
    ``input_closed`` (no further request will be read: close requested, error or upgrade),
    ``keep_alive`` and ``trailing_data`` (bytes after an upgrade request's head).
    """

    def __init__(
        self,
        *,
        max_request_line: int | None = 8190,
        max_head_size: int | None = 65536,
        max_headers: int | None = 100,
        max_body_size: int | None = 30_000_000,
        upgrades: frozenset[bytes] = frozenset(),
        default_headers: Callable[[], bytes] = lambda: b"",
    ) -> None:
        self._max_line = max_request_line or (1 << 62)
        self._max_head = max_head_size or (1 << 62)
        self._max_headers = max_headers or (1 << 62)
        self._max_body = max_body_size or (1 << 62)
        self._body_bytes = 0
        self._upgrades = upgrades
        self._default_headers = default_headers
        self._parser = httptools.HttpRequestParser(self)
        self._events: list[Event] = []
        self._output: list[bytes] = []
        # A list, not a deque: it holds one exchange but under pipelining (at most the pipeline
        # limit), and an empty deque costs 760 bytes per connection against a list's 56.
        self._outgoing: list[_Exchange] = []
        self._pending_error: bytes | None = None
        self._stream_id = 0
        self.head_in_progress = False
        self.input_closed = False
        self._chunk = b""  # the bytes being parsed
        self._fresh_chunk: bytes | None = None  # _chunk, while a message may start at its offset 0
        self._head_chunk: bytes | None = None  # the chunk the current head starts at offset 0 of
        self._in_message = False
        self._head_first = False  # the current request is the first begun in _chunk (CRLFs aside)
        self._closing = False
        self._manual_body = 0  # bytes of an unhonoured upgrade request's body still to pass on
        self._current: _Exchange | None = None
        self.trailing_data = b""
        self.keep_alive = True
        self._url = b""
        self._url_pieces: list[bytes] | None = None  # a target spanning reads, joined once whole
        self._url_length = 0
        self._headers: Headers = []
        self._special: Headers = []  # the framing headers (_FRAMING) among them
        self._head_bytes = 0
        self._deferred_end = False
        self._feeds = 0  # receive_data calls so far
        self._begin_feed = 0  # the call in which the current message began
        self._head_tail = b""  # the last bytes of the previous read, while a head is in progress
        self._meta: _ChunkMeter | None = None  # the chunked body being read (or just read)

    # ---------------------------------------------------------------- incoming

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; return the events they complete. Never raises."""
        events = self._events = []
        self._feed(data)
        return events

    def _feed(self, data: bytes) -> None:
        if self._manual_body and data:
            data = self._feed_manual_body(data)
        if self.input_closed or not data:
            return
        self._chunk = data
        self._fresh_chunk = None if self._in_message else data
        self._feeds += 1
        meter = self._meta
        if meter is not None:
            meter.new_read()
        try:
            _feed_data(self._parser, data)
        except Exception as exc:
            self._parse_error(exc, data)
        else:
            if self.head_in_progress:
                self._head_read(data)
            elif self._meta is not None:
                self._meter_read(self._meta, data)

    def _head_read(self, data: bytes) -> None:
        """A read ended inside a request head: count its bytes against the head limit."""
        if self._begin_feed != self._feeds or self._head_first:
            self._head_bytes += len(data)  # the whole read is this head's (CRLFs before it aside)
        else:  # the head began after other requests in this read: what llhttp has handed over
            self._head_bytes = self._known_head_bytes()
        self._head_tail = data[-3:]
        if self._head_bytes > self._max_head:
            self._reject(431, "request head too large (over --limit-request-head)")

    def _known_head_bytes(self) -> int:
        return self._url_length + sum(len(name) + len(value) + 4 for name, value in self._headers)

    def _meter_read(self, meter: _ChunkMeter, data: bytes) -> None:
        """A read ended inside (or just after) a chunked body: check its framing excess."""
        excess = meter.count(len(data))
        if meter.done:
            self._meta = None
        if meter.in_trailers:  # a trailer field in progress: llhttp holds it until its line ends
            if excess > CHUNK_META_LIMIT + self._max_head:
                self._reject(431, "request trailers too large (over --limit-request-head)")
            return
        if excess <= CHUNK_META_LIMIT:
            return
        if not meter.done:
            self._reject(400, "chunk extensions too long")
            return
        # The whole body arrived in this read and was handed on: take it back, then reject it.
        events = self._events
        while events and events[-1].stream_id == self._stream_id and type(events[-1]) is not Rejected:
            events.pop()
        if self._current is not None:
            self._current.body_done = False
        self._reject(400, "chunk extensions too long")

    def _parse_error(self, error: Exception, data: bytes) -> None:
        """Turn what llhttp raised into an upgrade, a rejection, or nothing."""
        if isinstance(error, httptools.HttpParserUpgrade):
            self._on_parser_upgrade(data[error.args[0] :])
        elif isinstance(error, httptools.HttpParserCallbackError):
            reject = error.__context__
            if isinstance(reject, _Reject):
                self._reject(reject.status, reject.detail)
            else:  # pragma: no cover - our callbacks only raise _Reject
                self._reject(400, f"parser callback failed: {reject!r}")
        elif isinstance(error, httptools.HttpParserInvalidMethodError):
            self._reject(*self._method_error(data))
        elif isinstance(error, httptools.HttpParserError):
            if not self.input_closed:  # data after "Connection: close" is ignored, not an error
                self._reject(400, f"malformed request: {error}")
        else:  # pragma: no cover - not a parser error: a bug, let it show
            raise error

    def _method_error(self, data: bytes) -> tuple[int, str]:
        """501 for a well-formed request line (``METHOD SP target SP HTTP/d.d CRLF``) whose method
        we do not know, else 400. The line can only be read off ``data`` when the failed request is
        the chunk's first (nothing but CRLFs before it) and the whole line is there."""
        if self._head_first:
            line, crlf, _ = data.lstrip(b"\r\n").partition(b"\r\n")
            valid = crlf and _REQUEST_LINE.fullmatch(line)
            if valid:
                return 501, f"unsupported method {valid.group(1)!r}"
        return 400, "malformed request line"

    def _feed_manual_body(self, data: bytes) -> bytes:
        take = data[: self._manual_body]
        self._manual_body -= len(take)
        self._events.append(Body(self._stream_id, take))
        if not self._manual_body:
            self._end_message()
        return data[len(take) :]

    # httptools callbacks -------------------------------------------------

    def on_message_begin(self) -> None:
        chunk = self._fresh_chunk
        self._head_first = chunk is not None
        self._head_chunk = chunk if chunk and chunk[0] not in _CRLF else None  # llhttp skips CRLFs
        self._fresh_chunk = None
        self._begin_feed = self._feeds
        self._meta = None
        self._in_message = True
        self.head_in_progress = True
        self._stream_id += 1
        self._url = b""
        self._url_pieces = None
        self._url_length = 0
        self._headers = []
        self._special = []
        self._head_bytes = 0
        self._body_bytes = 0
        self._deferred_end = False

    def on_url(self, url: bytes) -> None:
        self._url_length += len(url)
        if self._url_length > self._max_line:
            raise _Reject(414, "request target too long")
        if not self._url:
            self._url = url
            return
        # The target arrives in pieces (it spans reads): keep them, join them once at the end
        # (``self._url += url`` would copy it again per piece: quadratic without a line limit).
        pieces = self._url_pieces
        if pieces is None:
            pieces = self._url_pieces = [self._url]
        pieces.append(url)

    def _whole_url(self) -> bytes:
        """The request target, its pieces joined."""
        pieces = self._url_pieces
        if pieces is not None:
            self._url = b"".join(pieces)
            self._url_pieces = None
        return self._url

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.head_in_progress:  # a chunked trailer: counted against the limits, then dropped
            size = len(name) + len(value) + 4
            self._head_bytes += size
            if self._head_bytes > self._max_head:
                raise _Reject(431, "request trailers too large (over --limit-request-head)")
            if self._meta is not None:
                self._meta.allowed += size
            return
        name = _lower(name)
        if value and value[-1] in _OWS:
            value = value.rstrip(b" \t")
        self._headers.append((name, value))
        if name in _FRAMING:
            self._special.append((name, value))

    def on_headers_complete(self) -> None:
        self.head_in_progress = False
        parser = self._parser
        headers = self._headers
        if len(headers) > self._max_headers:
            raise _Reject(431, "too many header fields (over --limit-request-headers)")
        if self._head_bytes + len(self._chunk) > self._max_head:
            self._check_head_size()
        raw_method = _get_method(parser)
        version = self._version(raw_method)
        if version not in ("1.1", "1.0"):
            status = 505 if version[:1] not in ("0", "1") else 400
            raise _Reject(status, f"unsupported HTTP version {version}")
        method = _METHODS.get(raw_method) or _other_method(raw_method)
        special = self._special
        if len(special) == 1 and special[0][0] == b"host" and _plain_host(special[0][1]):
            # The common case: nothing but a Host. With no Connection field, HTTP/1.1 persists
            # and 1.0 does not (RFC 9112 §9.3), which is what llhttp would say.
            expect_continue, upgrade, keep_alive = False, None, version == "1.1"
        else:
            expect_continue, upgrade = self._framing(version, method)
            keep_alive = parser.should_keep_alive()
        url = self._whole_url()
        if url[:1] == b"/" and _find(url, b"#") < 0:  # (find: ``in`` on bytes raises inside first)
            raw_path, _, query = _partition(url, b"?")
        else:
            raw_path, query = self._split_target(method)
        sid = self._stream_id
        self._current = _Exchange(sid, method == "HEAD", version == "1.0", keep_alive)
        self._outgoing.append(self._current)
        self._events.append(Request(sid, method, raw_path, query, version, headers, expect_continue, upgrade))

    def _version(self, raw_method: bytes) -> str:
        """The request's HTTP version. httptools formats a new str for it each time, so the usual
        case — a head that starts at offset 0 of the chunk it ends in, with the request line
        ``METHOD SP target SP HTTP/1.1 CRLF`` — is read off those bytes instead."""
        chunk = self._head_chunk
        at = len(raw_method) + 1 + self._url_length
        if chunk is not None and chunk is self._chunk and chunk[at : at + 11] == b" HTTP/1.1\r\n":
            return "1.1"
        return self._parser.get_http_version()

    def _check_head_size(self) -> None:
        if self._known_head_bytes() > self._max_head:
            raise _Reject(431, "request head too large (over --limit-request-head)")

    def _framing(self, version: str, method: str) -> tuple[bool, bytes | None]:
        """Check the framing headers (RFC 9112 §3.2, §6); return (expect_continue, upgrade)."""
        fields: dict[bytes, list[bytes]] = {}
        for name, value in self._special:
            fields.setdefault(name, []).append(value)
        self._check_host(version, fields.get(b"host", []))
        chunked = self._check_transfer_encoding(version, fields)
        if chunked:
            self._meta = _ChunkMeter(self._body_offset())
        lengths = fields.get(b"content-length")
        if lengths and lengths[0].isdigit() and int(lengths[0]) > self._max_body:
            raise _Reject(413, f"request body too large (over --limit-request-body, {self._max_body} bytes)")
        expect_continue = False
        for expect in fields.get(b"expect", []):
            if expect.lower() != b"100-continue":
                raise _Reject(417, "unsupported Expect value")
            expect_continue = version == "1.1"
        tokens = b",".join(fields.get(b"connection", [])).lower().split(b",")
        if b"upgrade" in fields and any(t.strip() == b"upgrade" for t in tokens):
            upgrade = fields[b"upgrade"][-1].strip().lower()
        else:
            return expect_continue, None
        if upgrade in self._upgrades:
            return expect_continue, upgrade
        if chunked:
            raise _Reject(400, "chunked body on an Upgrade request")
        self._deferred_end = b"content-length" in fields  # llhttp hands that body on as upgraded
        return expect_continue, None

    def _body_offset(self) -> int | None:
        """Where the body begins in the chunk the head ends in: after the head's CRLFCRLF, found
        from where the head begins (the chunk's start, or the previous read's last bytes). None
        when the head began after another request in this chunk: that offset is not known."""
        chunk = self._chunk
        if self._begin_feed == self._feeds:
            if not self._head_first:
                return None
            start = len(chunk) - len(chunk.lstrip(b"\r\n"))
            return chunk.find(b"\r\n\r\n", start) + 4
        tail = self._head_tail
        straddling = (tail + chunk[:3]).find(b"\r\n\r\n")  # the head's end across the two reads
        if straddling >= 0:
            return straddling + 4 - len(tail)
        return chunk.find(b"\r\n\r\n") + 4

    def _check_host(self, version: str, hosts: list[bytes]) -> None:
        if len(hosts) > 1:
            raise _Reject(400, "more than one Host header")
        if not hosts:
            if version == "1.1":
                raise _Reject(400, "missing Host header")
            return
        if not _HOST.fullmatch(hosts[0]):
            raise _Reject(400, "invalid Host header")

    def _check_transfer_encoding(self, version: str, fields: dict[bytes, list[bytes]]) -> bool:
        te = fields.get(b"transfer-encoding")
        if not te:
            return False
        if version == "1.0":
            raise _Reject(400, "Transfer-Encoding in an HTTP/1.0 request")
        if b"content-length" in fields:
            raise _Reject(400, "both Content-Length and Transfer-Encoding")
        codings = [c.strip().lower() for c in b",".join(te).split(b",")]
        if codings[-1] != b"chunked" or codings.count(b"chunked") > 1:
            raise _Reject(400, "Transfer-Encoding does not end in a single chunked")
        if len(codings) > 1:
            raise _Reject(501, f"unsupported transfer coding {codings[0][:32]!r}")
        return True

    def _split_target(self, method: str) -> tuple[bytes, bytes]:
        url = self._url
        if url.find(b"#") >= 0:  # RFC 9112 §3.2: a fragment is no part of a request-target
            raise _Reject(400, "a fragment (#) in the request target")
        if url[:1] == b"/":
            raw_path, _, query = url.partition(b"?")
            return raw_path, query
        if url == b"*" and method == "OPTIONS":
            return url, b""
        try:  # Any: httptools' stub says bytes, but an absent part is None (compiled code checks)
            parsed: Any = httptools.parse_url(url)
        except httptools.HttpParserInvalidURLError:
            raise _Reject(400, "invalid request target") from None
        if parsed.schema not in (b"http", b"https") or not parsed.host:
            raise _Reject(400, "invalid request target")
        if parsed.userinfo is not None:  # RFC 9110 §4.2.4: treat it as an error
            raise _Reject(400, "userinfo in the request target")
        self._use_target_authority(url, len(parsed.schema) + 3)
        return parsed.path or b"/", parsed.query or b""

    def _use_target_authority(self, url: bytes, start: int) -> None:
        """RFC 9112 §3.2.2: with an absolute-form target, the Host field is ignored and the
        target's authority (``scheme://AUTHORITY/...``) stands in its place."""
        end = len(url)
        for delimiter in (b"/", b"?", b"#"):
            at = url.find(delimiter, start)
            if 0 <= at < end:
                end = at
        field = (b"host", url[start:end])
        headers = self._headers
        for index, (name, _) in enumerate(headers):
            if name == b"host":
                headers[index] = field
                return
        headers.append(field)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self._max_body:  # a chunked body that keeps going
            raise _Reject(413, f"request body too large (over --limit-request-body, {self._max_body} bytes)")
        meter = self._meta
        if meter is not None:
            meter.body += len(body)
        self._events.append(Body(self._stream_id, body))

    def on_chunk_header(self) -> None:
        meter = self._meta
        if meter is not None:
            meter.chunk_start = self._body_bytes
            meter.in_chunk = True

    def on_chunk_complete(self) -> None:
        meter = self._meta
        if meter is not None:  # the shortest framing of a chunk: size CRLF data CRLF (last: 0 CRLF CRLF)
            size = self._body_bytes - meter.chunk_start
            meter.in_chunk = False
            meter.allowed += len(b"%x" % size) + 4

    def on_message_complete(self) -> None:
        self._in_message = False
        if self._meta is not None:
            self._meta.done = True
        if self._deferred_end:
            return
        self._events.append(EndBody(self._stream_id))
        current = self._current
        if current is not None:  # (the body of _end_message, inlined for the hot path)
            current.body_done = True
            if not current.keep_alive or self._closing:
                self.input_closed = True

    def _end_message(self) -> None:
        self._in_message = False
        self._events.append(EndBody(self._stream_id))
        current = self._current
        if current is not None:
            current.body_done = True
            if not current.keep_alive or self._closing:
                self.input_closed = True

    def _on_parser_upgrade(self, rest: bytes) -> None:
        request = next(e for e in reversed(self._events) if isinstance(e, Request))
        if self._deferred_end:  # an upgrade we do not take, with a Content-Length body
            self._deferred_end = False
            length = next(v for n, v in request.headers if n == b"content-length")
            self._manual_body = int(length)
            if not self._manual_body:
                self._end_message()
            self._feed(rest)
        elif request.upgrade is None:  # llhttp stopped for an upgrade we do not take
            self._feed(rest)
        else:
            self.input_closed = True
            self.trailing_data = rest

    # ---------------------------------------------------------------- rejection

    def reject_body(self, status: int, detail: str) -> list[Event]:
        """Give up on the request whose body is being read (a client too slow to send it): its
        response becomes ``status`` unless one has started; input stops. Returns the events."""
        events = self._events = []
        if not self.input_closed:
            self._reject(status, detail)
        return events

    def _reject(self, status: int, detail: str) -> None:
        self.input_closed = True
        self.keep_alive = False
        error: bytes | None = self._error_response(status)
        last = self._current
        if last is not None and not last.body_done and last in self._outgoing:
            # The malformed part was the body of a request already handed on: the error becomes
            # its response unless the application has started one (then closing is all we can do).
            self._outgoing.remove(last)
            if last.started:
                error = None
        if error is not None:
            if self._outgoing:
                self._pending_error = error
            else:
                self._output.append(error)
        self._events.append(Rejected(self._stream_id, status, detail))

    def _error_response(self, status: int) -> bytes:
        body = HTTPStatus(status).phrase.encode("ascii") + b"\n"
        if status in _NAMED_LIMIT:  # say which limit, so that whoever needs more knows what to raise
            body = b"%s: over the server's %s\n" % (body[:-1], _NAMED_LIMIT[status].encode())
        return b"".join(
            (
                STATUS_LINES[status],
                self._default_headers(),
                b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n",
                b"content-length: %d\r\n\r\n" % len(body),
                body,
            )
        )

    # ---------------------------------------------------------------- outgoing

    def send(self, event: Event) -> None:
        """Frame an outgoing event. Raises LocalProtocolError if it is out of order."""
        if not self._outgoing or self._outgoing[0].stream_id != event.stream_id:
            raise LocalProtocolError(f"no response expected for stream {event.stream_id}")
        exchange = self._outgoing[0]
        if type(event) is Data:
            self._send_data(exchange, event)
        elif type(event) is Response:
            self._send_response(exchange, event)
        elif type(event) is Informational:
            self._send_informational(exchange, event)
        elif type(event) is Trailers:
            self._send_trailers(exchange, event)
        else:
            raise LocalProtocolError(f"cannot send {type(event).__name__} over HTTP/1.1")

    def _send_informational(self, exchange: _Exchange, event: Informational) -> None:
        if exchange.started:
            raise LocalProtocolError("interim response after the final response")
        if exchange.http10:
            return  # HTTP/1.0 clients do not understand 1xx
        parts = [STATUS_LINES[event.status]]
        parts.extend(name + b": " + value + b"\r\n" for name, value in event.headers)
        parts.append(b"\r\n")
        self._output.append(b"".join(parts))

    def _send_response(self, exchange: _Exchange, event: Response) -> None:
        if exchange.started:
            raise LocalProtocolError("response already started")
        exchange.started = True
        status = event.status
        close = not exchange.keep_alive
        has_length = False
        overridden = False
        parts = [STATUS_LINES[status], b""]
        for name, value in event.headers:
            if name in _RESPONSE_SPECIAL:
                if name == b"content-length":
                    if status == 204:
                        continue
                    has_length = True
                elif name == b"transfer-encoding":
                    continue  # framing is ours to choose
                elif name == b"connection":
                    if value.lower().find(b"close") >= 0:
                        close = True
                        continue  # "connection: close" is added below, once
                else:
                    overridden = True
            parts += (name, b": ", value, b"\r\n")
        parts[1] = self._defaults(event.headers) if overridden else self._default_headers()
        if exchange.is_head or status in (204, 304):
            exchange.no_body = True
        elif not has_length:
            if exchange.http10:
                close = True
            else:
                exchange.chunked = True
                parts.append(b"transfer-encoding: chunked\r\n")
        if close:
            parts.append(b"connection: close\r\n")
            exchange.keep_alive = False
        elif exchange.http10:
            parts.append(b"connection: keep-alive\r\n")
        parts.append(b"\r\n")
        self._output.append(b"".join(parts))

    def _defaults(self, headers: Headers) -> bytes:
        """The default header block without the ones the application set itself."""
        own = {name for name, _ in headers}
        lines = self._default_headers().split(b"\r\n")
        kept = [line for line in lines if line and line.split(b":", 1)[0].lower() not in own]
        return b"".join(line + b"\r\n" for line in kept)

    def _send_data(self, exchange: _Exchange, event: Data) -> None:
        if not exchange.started:
            raise LocalProtocolError("body before response start")
        data = event.data
        if data and not exchange.no_body:
            if exchange.chunked:
                size = len(data)
                if size <= _JOIN_CHUNK:  # one small piece, not three: cheaper to write
                    head = _CHUNK_HEADS.get(size)
                    if head is None:
                        head = _CHUNK_HEADS[size] = b"%x\r\n" % size
                    self._output.append(head + data + b"\r\n")  # (faster than % formatting)
                else:
                    self._output.append(b"%x\r\n" % size)
                    self._output.append(data)
                    self._output.append(b"\r\n")
            else:
                self._output.append(data)
        if event.end:
            if exchange.chunked:
                self._output.append(b"0\r\n\r\n")
            self._finish(exchange)

    def external_body(self, stream_id: int, size: int) -> bytes | None:
        """Frame ``size`` body bytes that the caller writes itself, after the pending output
        (``sendfile``): queue what precedes them and return what must follow them; None when the
        response has no body (HEAD, 204, 304) and the bytes must not be written."""
        if not self._outgoing or self._outgoing[0].stream_id != stream_id:
            raise LocalProtocolError(f"no response expected for stream {stream_id}")
        exchange = self._outgoing[0]
        if not exchange.started:
            raise LocalProtocolError("body before response start")
        if exchange.no_body:
            return None
        if exchange.chunked and size:
            self._output.append(b"%x\r\n" % size)
            return b"\r\n"
        return b""

    def _send_trailers(self, exchange: _Exchange, event: Trailers) -> None:
        """End a response with trailer fields; only chunked framing can carry them (else dropped)."""
        if not exchange.started:
            raise LocalProtocolError("trailers before response start")
        if exchange.chunked:
            fields = b"".join(name + b": " + value + b"\r\n" for name, value in event.headers)
            self._output.append(b"0\r\n" + fields + b"\r\n")
        self._finish(exchange)

    def _finish(self, exchange: _Exchange) -> None:
        self._outgoing.pop(0)
        if not exchange.body_done:  # unread request body: the connection cannot be reused
            exchange.keep_alive = False
        if not exchange.keep_alive:
            self.keep_alive = False
            self.input_closed = True
        elif not self._outgoing and self._pending_error is not None:
            self._output.append(self._pending_error)
            self._pending_error = None

    def close_after_response(self) -> None:
        """Graceful shutdown: the responses in flight say ``Connection: close``."""
        for exchange in self._outgoing:
            if not exchange.started:
                exchange.keep_alive = False
        self._closing = True
        current = self._current
        if current is None or current.body_done or current not in self._outgoing:
            self.input_closed = True  # else the body in flight is still read, then input stops

    @property
    def response_pending(self) -> bool:
        """True while some request's response is not completely framed."""
        return bool(self._outgoing)

    def take_output(self) -> list[bytes]:
        """Return and clear the pending output chunks (for ``writelines``)."""
        output = self._output
        self._output = []
        return output

    def data_to_send(self) -> bytes:
        """Return and clear the pending output as one bytes object."""
        return b"".join(self.take_output())
