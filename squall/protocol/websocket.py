"""WebSocket server protocol, sans-I/O: RFC 6455 framing and RFC 7692 permessage-deflate.

How it works
------------
Handshake. ``check_handshake`` validates an upgrade request (HTTP/1.1 ``GET`` with
``Connection: upgrade``, ``Upgrade: websocket``, a 16-byte base64 ``Sec-WebSocket-Key`` and
``Sec-WebSocket-Version: 13``; or, with ``extended_connect=True``, an HTTP/2 extended CONNECT of
RFC 8441 that has neither key nor Connection/Upgrade) and returns an ``Offer`` (key, offered
subprotocols, negotiated permessage-deflate). A bad handshake raises ``HandshakeError`` carrying
the status (400) and the headers to answer with (``Sec-WebSocket-Version: 13`` when the version
is the problem). ``Offer.response_headers`` builds the 101 (or HTTP/2 200) headers.

Framing. ``WebSocketServer`` is one open connection: ``receive_data(bytes) -> list[event]``,
``send_text``/``send_bytes``/``send_ping``/``send_close``/``fail``, and ``take_output()`` /
``data_to_send()`` for the bytes to write; ``eof_sent`` says the transport must be closed once
the output is written (the server closes TCP first, RFC 6455 §7.1.1).

Events are, for speed, the message itself: ``str`` (a complete text message) or ``bytes`` (a
complete binary message); plus ``CloseReceived(code, reason)`` (the peer closed, or we failed the
connection: 1002 protocol error, 1007 invalid UTF-8, 1009 too big; the close frame is already
queued), and ``PongReceived(data)``. Pings are answered inside, fragments are reassembled.

Why the ``websockets`` package and not wsproto. Both are maintained sans-I/O libraries; for a
32-byte echo (parse one masked frame, frame the answer) ``websockets.protocol.Protocol`` costs
7.9 µs per message here and wsproto 24.5 µs (``python -m timeit``-style loop, CPython 3.11).
``websockets`` also applies the size limit while decompressing (deflate bombs stop at
``max_size`` bytes), masks with a C speedup and negotiates permessage-deflate completely.

The fast path. Even 7.9 µs is half the per-message budget of the echo benchmark, most of it in
the library's generator-based parser. So this module splits the stream into frames itself (the
2 to 14 byte header says where each frame ends) and handles the one overwhelmingly common frame
inline: complete, FIN, no RSV bits, text or binary, masked, not inside a fragmented message,
while the connection is OPEN — unmasked with the library's C ``apply_mask`` and UTF-8 checked
with ``bytes.decode``. Every other frame (control frames, fragments, compressed frames, anything
malformed or oversized) is handed, whole, to the library, which stays the authority on protocol
errors, close handling, deflate and size limits. Because only whole frames are handed over and the
fast path only runs outside fragmented messages, the library's parser is always at a frame
boundary when a fast frame goes by, so its state never goes stale. Sending is symmetric: an
uncompressed data frame's header is built inline, everything else goes through the library.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from websockets.exceptions import InvalidHandshake, NegotiationError
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import BINARY, CLOSE, CONT, PONG, TEXT, CloseCode, Frame
from websockets.headers import build_extension, parse_extension
from websockets.protocol import OPEN, SERVER, Protocol, State
from websockets.speedups import apply_mask

Headers = list[tuple[bytes, bytes]]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_VERSION_HEADERS: Headers = [(b"sec-websocket-version", b"13")]
_RESERVED_CLOSE = frozenset((1004, 1005, 1006, 1015))


class HandshakeError(Exception):
    """The upgrade request is not a valid WebSocket opening handshake."""

    def __init__(self, detail: str, headers: Headers | None = None, status: int = 400) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or []


class CloseReceived:
    """The connection is closing: the peer sent a close frame, or we failed the connection."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return f"CloseReceived(code={self.code!r}, reason={self.reason!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CloseReceived) and (self.code, self.reason) == (other.code, other.reason)

    __hash__ = None  # type: ignore[assignment]


class PongReceived:
    """The peer answered a ping (or sent an unsolicited pong)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"PongReceived(data={self.data!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PongReceived) and self.data == other.data

    __hash__ = None  # type: ignore[assignment]


WSEvent = str | bytes | CloseReceived | PongReceived


# ---------------------------------------------------------------------------------- handshake


def _tokens(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [t.strip().lower() for n, v in headers if n == name for t in v.split(b",")]


def _values(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [v for n, v in headers if n == name]


def accept_key(key: bytes) -> bytes:
    """The ``Sec-WebSocket-Accept`` value for a ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def deflate_factory() -> ServerPerMessageDeflateFactory:
    """permessage-deflate as the ``websockets`` server configures it by default: 4 KiB windows
    both ways and memLevel 5, so each connection's zlib state stays small."""
    return ServerPerMessageDeflateFactory(
        server_max_window_bits=12, client_max_window_bits=12, compress_settings={"memLevel": 5}
    )


class Offer:
    """A valid opening handshake: what the client asked for and what we negotiated."""

    __slots__ = ("key", "subprotocols", "extensions", "extensions_header")

    def __init__(
        self,
        key: bytes | None,
        subprotocols: list[str],
        extensions: list[Extension],
        extensions_header: bytes | None,
    ) -> None:
        self.key = key
        self.subprotocols = subprotocols
        self.extensions = extensions
        self.extensions_header = extensions_header

    def response_headers(self, subprotocol: str | None) -> Headers:
        """The handshake headers of the 101 response (only the extension ones on HTTP/2)."""
        headers: Headers = []
        if self.key is not None:
            headers += [
                (b"upgrade", b"websocket"),
                (b"connection", b"Upgrade"),
                (b"sec-websocket-accept", accept_key(self.key)),
            ]
        if subprotocol is not None:
            headers.append((b"sec-websocket-protocol", subprotocol.encode("ascii")))
        if self.extensions_header is not None:
            headers.append((b"sec-websocket-extensions", self.extensions_header))
        return headers


def check_handshake(
    method: str,
    http_version: str,
    headers: Sequence[tuple[bytes, bytes]],
    *,
    deflate: bool = True,
    extended_connect: bool = False,
) -> Offer:
    """Validate an opening handshake; negotiate permessage-deflate when ``deflate``.

    ``headers`` have lower-case names. Raises HandshakeError (status 400) if the request is not a
    valid WebSocket handshake.
    """
    key: bytes | None = None
    if not extended_connect:
        if method != "GET":
            raise HandshakeError(f"WebSocket handshake with method {method}, not GET")
        if http_version != "1.1":
            raise HandshakeError(f"WebSocket handshake over HTTP/{http_version}")
        if b"upgrade" not in _tokens(headers, b"connection"):
            raise HandshakeError("Connection header has no 'upgrade' token")
        if b"websocket" not in _tokens(headers, b"upgrade"):
            raise HandshakeError("Upgrade header has no 'websocket' token")
        keys = _values(headers, b"sec-websocket-key")
        if len(keys) != 1:
            raise HandshakeError(f"expected one Sec-WebSocket-Key header, got {len(keys)}")
        key = keys[0].strip()
        try:
            raw = base64.b64decode(key, validate=True)
        except binascii.Error:
            raw = b""
        if len(raw) != 16:
            raise HandshakeError("Sec-WebSocket-Key is not 16 bytes in base64")
    versions = _values(headers, b"sec-websocket-version")
    if len(versions) != 1 or versions[0].strip() != b"13":
        raise HandshakeError("unsupported or missing Sec-WebSocket-Version", list(_VERSION_HEADERS))
    subprotocols = [
        t.strip().decode("latin-1")
        for v in _values(headers, b"sec-websocket-protocol")
        for t in v.split(b",")
    ]
    subprotocols = [s for s in subprotocols if s]
    extensions, extensions_header = negotiate_extensions(
        _values(headers, b"sec-websocket-extensions") if deflate else []
    )
    return Offer(key, subprotocols, extensions, extensions_header)


def negotiate_extensions(offers: list[bytes]) -> tuple[list[Extension], bytes | None]:
    """Accept the first acceptable permessage-deflate offer among ``offers`` (header values).

    Raises HandshakeError if a header is malformed.
    """
    if not offers:
        return [], None
    try:
        parsed = [item for value in offers for item in parse_extension(value.decode("latin-1"))]
    except InvalidHandshake as exc:
        raise HandshakeError(f"invalid Sec-WebSocket-Extensions: {exc}") from None
    factory = deflate_factory()
    for name, params in parsed:
        if name != factory.name:
            continue
        try:
            response_params, extension = factory.process_request_params(params, [])
        except NegotiationError:
            continue
        return [extension], build_extension([(name, response_params)]).encode("latin-1")
    return [], None


# ---------------------------------------------------------------------------------- framing


def check_close(code: int, reason: str) -> bytes:
    """The payload of a close frame we send. Raises ValueError for an unsendable code/reason."""
    if not (1000 <= code <= 1014 or 3000 <= code <= 4999) or code in _RESERVED_CLOSE:
        raise ValueError(f"close code {code} cannot be sent")
    data = reason.encode("utf-8")
    if len(data) > 123:
        raise ValueError("close reason longer than 123 bytes in UTF-8")
    return code.to_bytes(2, "big") + data


class WebSocketServer:
    """The server side of one open WebSocket connection (after the handshake)."""

    __slots__ = (
        "max_size",
        "_lib",
        "_deflate",
        "hold_errors",
        "_buffer",
        "_need",
        "held",
        "_partial",
        "_scan",
        "_output",
        "_events",
        "_fragments",
        "_fragment_size",
        "_decoder",
        "_close_event_sent",
    )

    def __init__(
        self,
        extensions: Sequence[Extension] = (),
        max_size: int = 16 * 1024 * 1024,
        *,
        hold_errors: bool = False,
    ) -> None:
        lib = Protocol(SERVER, state=OPEN, max_size=max_size)
        lib.extensions = list(extensions)
        self._lib = lib
        self._deflate = bool(extensions)
        self.max_size = max_size
        self.hold_errors = hold_errors  # see ``held``
        self._buffer = bytearray()  # an incomplete frame (or held input)
        self._need = 0  # the buffer's length at which parsing it is worth trying again
        self.held = False  # input waits behind a frame that will likely fail the connection
        self._partial: _Partial | None = None  # a fast-path frame whose payload is arriving
        self._scan: _Partial | None = None  # the UTF-8 check of a text fragment that is arriving
        self._output: list[bytes] = []
        self._events: list[WSEvent] = []
        self._fragments: list[bytes] | None = None  # the parts of a fragmented message
        self._fragment_size = 0
        self._decoder: Any = None  # incremental UTF-8 decoder of a fragmented text message
        self._close_event_sent = False

    # ------------------------------------------------------------ state

    @property
    def state(self) -> State:
        """OPEN, CLOSING (close frame sent or received) or CLOSED."""
        return self._lib.state

    @property
    def open(self) -> bool:
        """True while data messages can be sent."""
        return self._lib.state is OPEN

    @property
    def eof_sent(self) -> bool:
        """True once the transport must be closed after writing the output."""
        return self._lib.eof_sent

    @property
    def close_sent(self) -> tuple[int, str] | None:
        """The code and reason of the close frame we sent, if any."""
        close = self._lib.close_sent
        return None if close is None else (int(close.code), close.reason)

    # ------------------------------------------------------------ incoming

    def receive_data(self, data: bytes) -> list[WSEvent]:
        """Feed bytes from the peer; return the events they complete. Never raises."""
        events = self._events = []
        if self._buffer or self._partial is not None:
            data = self._pending(data)
            if not data:
                return events
        pos = 0
        end = len(data)
        lib = self._lib
        while pos < end:
            if lib.state is not OPEN:  # closing: the library sees everything from now on
                self._to_library(data[pos:])
                return events
            if end - pos < 2:
                self._keep(data, pos, 2)
                return events
            b1 = data[pos]
            b2 = data[pos + 1]
            length = b2 & 0x7F
            header = 6
            if length == 126:
                header = 8
                if end - pos < 4:
                    self._keep(data, pos, 4)
                    return events
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
            elif length == 127:
                header = 14
                if end - pos < 10:
                    self._keep(data, pos, 10)
                    return events
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
            stop = pos + header + length
            if (
                (b1 == 0x82 or b1 == 0x81)  # noqa: PLR1714 - faster
                and b2 & 0x80
                and length <= self.max_size
                and self._fragments is None
            ):
                if stop > end:
                    self._start_partial(data, pos, header, length)
                    return events
                payload = apply_mask(data[pos + header : stop], data[pos + header - 4 : pos + header])
                if b1 == 0x82:
                    events.append(payload)
                else:
                    try:
                        events.append(payload.decode("utf-8"))
                    except UnicodeDecodeError as exc:
                        self.fail(CloseCode.INVALID_DATA, f"invalid UTF-8: {exc.reason}")
                        return events
            elif not self._other_frame(data, pos, stop, length):
                return events
            pos = stop
        return events

    def _pending(self, data: bytes) -> bytes:
        """Add ``data`` to what arrived before; return the bytes ready to cut into frames."""
        if self._partial is not None:
            data = self._receive_partial(data)
            if not data:
                return data
        buffer = self._buffer
        if buffer:
            if self._scan is not None and not self._scan_more(data):
                return b""
            buffer += data
            if self.held or len(buffer) < self._need:
                return b""  # not a byte is copied again until the awaited frame is complete
            data = bytes(buffer)
            buffer.clear()
            self._scan = None
        return data

    def _keep(self, data: bytes, pos: int, need: int) -> None:
        """Buffer ``data[pos:]`` until the buffer holds ``need`` bytes."""
        self._buffer += memoryview(data)[pos:]
        self._need = need

    def _start_partial(self, data: bytes, pos: int, header: int, length: int) -> None:
        """A fast-path frame that is not complete: stream its payload once its header is in."""
        start = pos + header
        if start > len(data):
            self._keep(data, pos, header)
            return
        self._partial = _Partial(data[start - 4 : start], length, _utf8() if data[pos] == 0x81 else None)
        self._receive_partial(data[start:])

    def _other_frame(self, data: bytes, pos: int, stop: int, length: int) -> bool:
        """Hand a frame off the fast path to the library; False once the rest of ``data`` is
        taken care of (kept, held, or handed over)."""
        lib = self._lib
        events = self._events
        b1 = data[pos]
        b2 = data[pos + 1]
        if self.hold_errors and events and self._breaks_protocol(b1, b2, length) and _messages(events):
            self.held = True  # the app answers the messages before this frame first
            self._keep(data, pos, 0)
            return False
        if length > self.max_size or not b2 & 0x80:
            self._to_library(data[pos:])  # the library fails it (1009 / 1002)
            return False
        start = stop - length
        if start > len(data):
            self._keep(data, pos, start - pos)  # the header first
            return False
        if stop > len(data):
            self._keep(data, pos, stop - pos)
            self._start_scan(data, pos, start, length)
            return False
        if b1 == 0x88 and lib.current_size is not None:
            # A close frame may interrupt a fragmented message (RFC 6455 §5.4, §5.5.1): the
            # message is dropped and the close answered; websockets would fail with 1002.
            lib.current_size = None
        self._to_library(data[pos:stop])
        return True

    def _receive_partial(self, data: bytes) -> bytes:
        """Unmask (and UTF-8 check) more of the payload of ``_partial``; return the bytes after it."""
        partial = self._partial
        assert partial is not None
        rest = b""
        if len(data) > partial.remaining:
            rest = data[partial.remaining :]
            data = data[: partial.remaining]
        payload = partial.unmask(data)
        decoder = partial.decoder
        if decoder is None:
            partial.parts.append(payload)
        else:
            try:  # fail fast: invalid UTF-8 is caught as soon as it arrives (RFC 6455 §8.1)
                partial.parts.append(decoder.decode(payload, not partial.remaining))
            except UnicodeDecodeError as exc:
                self.fail(CloseCode.INVALID_DATA, f"invalid UTF-8: {exc.reason}")
                return b""
        if not partial.remaining:
            self._partial = None
            parts = partial.parts
            self._events.append("".join(parts) if decoder is not None else b"".join(parts))
        return rest

    def _start_scan(self, data: bytes, pos: int, start: int, length: int) -> None:
        """An incomplete uncompressed text fragment, kept whole for the library: UTF-8 check its
        payload as it arrives anyway (fail fast), with a copy of the message's decoder state."""
        b1 = data[pos]
        if b1 & 0x70 or not data[pos + 1] & 0x80:
            return
        opcode = b1 & 0x0F
        message = self._decoder
        if opcode == 1 and self._fragments is None:
            decoder = _utf8()
        elif opcode == 0 and message is not None:
            decoder = _utf8()
            decoder.setstate(message.getstate())
        else:
            return
        self._scan = _Partial(data[start - 4 : start], length, decoder)
        self._scan_more(data[start:])

    def _scan_more(self, data: bytes) -> bool:
        """UTF-8 check more of the payload of ``_scan``; False if the connection failed."""
        scan = self._scan
        assert scan is not None
        payload = scan.unmask(data[: scan.remaining])
        try:
            scan.decoder.decode(payload, False)
        except UnicodeDecodeError as exc:
            self.fail(CloseCode.INVALID_DATA, f"invalid UTF-8: {exc.reason}")
            return False
        return True

    def _breaks_protocol(self, b1: int, b2: int, length: int) -> bool:
        """A guess from the frame header alone: will the library fail the connection on this
        frame? Used only to decide the order of events, never to fail anything."""
        opcode = b1 & 0x0F
        rsv = b1 & 0x70
        if rsv and not (self._deflate and rsv == 0x40 and opcode in (1, 2)):
            return True
        if not b2 & 0x80 or length > self.max_size:
            return True
        if opcode >= 8:  # control: close, ping, pong; the rest are reserved
            return opcode > 10 or not b1 & 0x80 or length > 125
        if opcode > 2:
            return True
        return (opcode == 0) != (self._lib.current_size is not None)  # continuation, or not

    def release(self) -> list[WSEvent]:
        """Process the held input (once the app has answered the messages before it)."""
        self.held = False
        self._need = 0
        return self.receive_data(b"")

    def receive_eof(self) -> None:
        """The peer closed its side of the TCP connection."""
        self._lib.receive_eof()
        self._collect()

    def _to_library(self, data: bytes) -> None:
        lib = self._lib
        if lib.reader.eof:
            return
        lib.receive_data(data)
        self._collect()

    def _collect(self) -> None:
        lib = self._lib
        for frame in lib.events_received():
            assert isinstance(frame, Frame)  # a server Protocol in OPEN state yields frames only
            opcode = frame.opcode
            if opcode is TEXT or opcode is BINARY or opcode is CONT:
                self._on_data_frame(frame)
            elif opcode is CLOSE:
                close = lib.close_rcvd
                if close is not None:
                    self._close_event(int(close.code), close.reason)
            elif opcode is PONG:
                self._events.append(PongReceived(bytes(frame.data)))
        if lib.writes:
            self._output += lib.data_to_send()
        if lib.state is not OPEN and not self._close_event_sent:
            exc = lib.parser_exc
            if isinstance(exc, EOFError) or (exc is not None and lib.close_sent is None):
                self._close_event(CloseCode.ABNORMAL_CLOSURE, "")
            elif exc is not None and lib.close_sent is not None:
                close = lib.close_sent  # we failed the connection: report our own code
                self._close_event(int(close.code), close.reason)
            elif lib.close_rcvd is not None:
                self._close_event(int(lib.close_rcvd.code), lib.close_rcvd.reason)

    def _close_event(self, code: int, reason: str) -> None:
        if not self._close_event_sent:
            self._close_event_sent = True
            self._fragments = None
            self._events.append(CloseReceived(code, reason))

    def _on_data_frame(self, frame: Frame) -> None:
        data = bytes(frame.data)
        if frame.opcode is not CONT:
            text = frame.opcode is TEXT
            if frame.fin:
                if text:
                    self._decode_whole(data)
                else:
                    self._events.append(data)
                return
            self._fragments = [data]
            self._fragment_size = len(data)
            self._decoder = _utf8() if text else None
        else:
            fragments = self._fragments
            if fragments is None:  # pragma: no cover - the library rejects this
                return
            fragments.append(data)
            self._fragment_size += len(data)
        decoder = self._decoder
        if decoder is not None:
            try:
                decoder.decode(data, frame.fin)  # fail fast: invalid UTF-8 is caught per fragment
            except UnicodeDecodeError as exc:
                self.fail(CloseCode.INVALID_DATA, f"invalid UTF-8: {exc.reason}")
                return
        if frame.fin:
            fragments = self._fragments or []
            self._fragments = None
            message = b"".join(fragments)
            self._events.append(message.decode("utf-8") if decoder is not None else message)
            self._decoder = None

    def _decode_whole(self, data: bytes) -> None:
        try:
            self._events.append(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            self.fail(CloseCode.INVALID_DATA, f"invalid UTF-8: {exc.reason}")

    # ------------------------------------------------------------ outgoing

    def send_text(self, text: str) -> None:
        """Frame a text message. Raises websockets' InvalidState unless the connection is open."""
        if self._deflate or self._lib.state is not OPEN:
            self._lib.send_text(text.encode("utf-8"))
            self._output += self._lib.data_to_send()
            return
        data = text.encode("utf-8")
        self._output.append(_header(0x81, len(data)) + data)

    def send_bytes(self, data: bytes) -> None:
        """Frame a binary message. Raises websockets' InvalidState unless the connection is open."""
        if self._deflate or self._lib.state is not OPEN:
            self._lib.send_binary(data)
            self._output += self._lib.data_to_send()
            return
        self._output.append(_header(0x82, len(data)) + data)

    def send_ping(self, data: bytes) -> None:
        """Frame a ping (allowed while open or closing)."""
        self._lib.send_ping(data)
        self._output += self._lib.data_to_send()

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake. Raises ValueError for a bad code/reason."""
        check_close(code, reason)
        if self._lib.state is OPEN:
            self._lib.send_close(code, reason)
            self._output += self._lib.data_to_send()

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection: send a close frame with ``code`` (if still open), then EOF."""
        lib = self._lib
        if lib.state is OPEN:
            self._close_event(code, reason)
        self._partial = self._scan = None
        self._buffer.clear()  # the library discards all input from now on
        lib.fail(code, reason)
        self._output += lib.data_to_send()

    def take_output(self) -> list[bytes]:
        """Return and clear the bytes to write, as chunks (EOF is ``eof_sent``, not a chunk)."""
        output = self._output
        self._output = []
        if output and not output[-1]:
            output = [chunk for chunk in output if chunk]
        return output

    def data_to_send(self) -> bytes:
        """Return and clear the bytes to write, as one bytes object."""
        return b"".join(self.take_output())


class _Partial:
    """The payload of a frame as it arrives, unmasked piece by piece: a fast-path data frame
    (FIN, masked, not fragmented, not compressed), whose pieces are kept (and for text decoded)
    once, so receiving a big frame in many reads costs linear time and invalid UTF-8 fails the
    connection as soon as it arrives; or a text fragment on its way to the library, UTF-8 checked
    only."""

    __slots__ = ("mask", "received", "remaining", "parts", "decoder")

    def __init__(self, mask: bytes, length: int, decoder: Any) -> None:
        self.mask = mask
        self.received = 0
        self.remaining = length
        self.parts: list[Any] = []  # bytes, or str pieces of a text frame
        self.decoder = decoder  # an incremental UTF-8 decoder for text, else None

    def unmask(self, data: bytes) -> bytes:
        """Unmask the next ``len(data)`` (at most ``remaining``) bytes of the payload."""
        mask = self.mask
        offset = self.received & 3
        if offset:
            mask = mask[offset:] + mask[:offset]
        self.received += len(data)
        self.remaining -= len(data)
        return apply_mask(data, mask)


def _utf8() -> Any:
    return codecs.getincrementaldecoder("utf-8")()


def _messages(events: list[WSEvent]) -> bool:
    return any(type(event) is str or type(event) is bytes for event in events)


def _header(head1: int, length: int) -> bytes:
    if length < 126:
        return bytes((head1, length))
    if length < 65536:
        return bytes((head1, 126)) + length.to_bytes(2, "big")
    return bytes((head1, 127)) + length.to_bytes(8, "big")
