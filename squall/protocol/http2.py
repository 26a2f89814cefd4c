"""HTTP/2 server protocol, sans-I/O, over the ``h2`` library.

How it works
------------
Incoming. ``receive_data(bytes)`` feeds h2 and turns its events into the shared vocabulary
(``squall.events``): a request head becomes ``Request`` (``http_version`` ``"2"``, pseudo-headers
removed, ``:authority`` → ``host``, split ``cookie`` fields joined with ``"; "``), DATA becomes
``Body``, the end of the stream ``EndBody``. Two facts have no HTTP/1.1 counterpart (defined in
``squall.events`` too): ``StreamReset`` (the client cancelled a stream) and ``PeerGoingAway``
(the client sent GOAWAY). A connection error (a protocol violation, or a flood limit below)
queues GOAWAY and emits ``Rejected`` with stream id 0: flush, then close — the same meaning as
over HTTP/1.1. Where RFC 9113 names a more precise error code than h2 does (COMPRESSION_ERROR for
an undecodable field block, FRAME_SIZE_ERROR for a SETTINGS ACK with a payload), the GOAWAY h2
queued is swapped for one with that code. h2 does not check that the client's preface is followed
by SETTINGS (§3.4): ``receive_data`` does, on the connection's first bytes.

Outgoing. ``send(Response)`` holds the head until the first ``Data`` so that a body-less response
leaves as one HEADERS frame with END_STREAM; ``send(Data)`` queues the body on the stream and frames
as much as the connection and stream windows allow (``_pump``). The rest waits in the stream's
queue until the client opens its window (WINDOW_UPDATE, SETTINGS); ``pending(stream_id)`` tells the
connection how much is queued so that the application's ``send()`` can wait instead of piling up
data; the body of a response to HEAD, and of a 204 or 304, is dropped. ``Trailers`` end the stream
with a HEADERS frame after the queued body; ``Informational`` sends a 1xx head (103 Early Hints).

Flow control for request bodies is explicit: received DATA is acknowledged (``acknowledge``) only
when the application has read it, so a stream buffers at most its window and a connection at most
the connection window, however slow the application.

Defences. h2 enforces the frame grammar, the header list size (``max_header_list_size``, the HPACK
bomb), the number of open streams (``max_concurrent_streams``) and a CONTINUATION backlog. On top:
stream resets by the client (rapid reset, CVE-2023-44487) and control frames (PING, SETTINGS,
empty DATA: the 2019 flood CVEs) are each metered by a token bucket; past it the connection gets
GOAWAY ENHANCE_YOUR_CALM.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack.exceptions
from hyperframe.exceptions import InvalidDataError
from hyperframe.frame import GoAwayFrame

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

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_OPENING = len(PREFACE) + 9  # the client preface and the header of the first frame after it
NO_ERROR = h2.errors.ErrorCodes.NO_ERROR
PROTOCOL_ERROR = h2.errors.ErrorCodes.PROTOCOL_ERROR
INTERNAL_ERROR = h2.errors.ErrorCodes.INTERNAL_ERROR
REFUSED_STREAM = h2.errors.ErrorCodes.REFUSED_STREAM
CANCEL = h2.errors.ErrorCodes.CANCEL
ENHANCE_YOUR_CALM = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
COMPRESSION_ERROR = h2.errors.ErrorCodes.COMPRESSION_ERROR
FRAME_SIZE_ERROR = h2.errors.ErrorCodes.FRAME_SIZE_ERROR

# Response headers that are meaningless (and forbidden) in HTTP/2 (RFC 9113 §8.2.2).
_CONNECTION_HEADERS = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
_STATUS = {code: str(code).encode() for code in range(100, 600)}
_NO_CONTENT = frozenset((204, 304))  # responses without content (RFC 9110 §15.3.5, §15.4.5)

# RFC 9113 §6.8: a client's GOAWAY says it opens no more streams; those it has open go on, both
# ways. h2 closes its connection state machine on any GOAWAY received, which would refuse their
# frames and our responses; these transitions keep it open.
_STATE = h2.connection.ConnectionState
_RECV_GOAWAY = h2.connection.ConnectionInputs.RECV_GOAWAY
_TRANSITIONS = {
    **h2.connection.H2ConnectionStateMachine._transitions,
    (_STATE.IDLE, _RECV_GOAWAY): (None, _STATE.IDLE),
    (_STATE.SERVER_OPEN, _RECV_GOAWAY): (None, _STATE.SERVER_OPEN),
}
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT")}


class LocalProtocolError(Exception):
    """An outgoing event that cannot be sent (unknown stream, wrong order)."""


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


class _Outbound:
    """A stream's response as far as it is not framed yet."""

    __slots__ = ("head", "chunks", "size", "end", "trailers", "done", "no_body")

    def __init__(self) -> None:
        self.head: list[tuple[bytes, bytes]] | None = None
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.end = False
        self.trailers: Headers | None = None
        self.done = False
        self.no_body = False  # HEAD, 204, 304: body data is dropped


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
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_outbound_headers=False,  # the ASGI layer validated them
            normalize_outbound_headers=False,
            validate_inbound_headers=True,
        )
        self._conn = h2.connection.H2Connection(config=config)
        self._conn.state_machine._transitions = _TRANSITIONS
        self._settings: dict[Any, int] = {
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_concurrent_streams,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: max_header_list_size,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: initial_window_size,
        }
        if enable_connect_protocol:
            self._settings[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL] = 1
        self._conn.local_settings = h2.settings.Settings(client=False, initial_values=self._settings)
        self._conn.decoder.max_header_list_size = max_header_list_size
        self._connection_window = max(connection_window_size or 4 * initial_window_size, 65535)
        self._max_streams = max_concurrent_streams
        self._default_headers = default_headers
        self._defaults_block = b"\0"
        self._defaults: list[tuple[bytes, bytes]] = []
        self._out: dict[int, _Outbound] = {}
        self._blocked: dict[int, _Outbound] = {}  # streams with data waiting for window
        self._heads: set[int] = set()  # HEAD requests not answered yet
        self._resets = TokenBucket(max_reset_rate, 2 * max_reset_rate, clock)
        self._control = TokenBucket(max_control_rate, 2 * max_control_rate, clock)
        self._output: list[bytes] = []
        self._events: list[Event] = []
        self.last_stream_id = 0  # highest stream handed on as a Request
        self.going_away = False  # we sent GOAWAY: streams above last_stream_id are refused
        self.closed = False  # a connection error: nothing more is read
        self.peer_going_away = False  # the client sent GOAWAY: no push
        self._opening: bytes | None = b""  # the client's first bytes until the first frame is checked

    # ---------------------------------------------------------------- setup

    def initiate(self) -> None:
        """Queue the server preface (SETTINGS) and open the connection window."""
        self._conn.initiate_connection()
        self._open_connection_window()

    def initiate_upgrade(self, settings_header: bytes) -> None:
        """After ``101`` to ``Upgrade: h2c``: apply the client's HTTP2-Settings (base64url) and queue
        the preface; stream 1 is the upgrade request, half-closed by the client.
        Raises ValueError for a malformed settings header."""
        try:
            self._conn.initiate_upgrade_connection(settings_header)
        except Exception as exc:  # binascii.Error, h2 errors: all mean a bad header
            raise ValueError(f"bad HTTP2-Settings: {exc}") from None
        self._open_connection_window()
        self.last_stream_id = 1

    def _open_connection_window(self) -> None:
        extra = self._connection_window - 65535
        if extra > 0:
            self._conn.increment_flow_control_window(extra)

    # ---------------------------------------------------------------- incoming

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; return the events they complete. Never raises."""
        events = self._events = []
        if self.closed:
            return events
        if self._opening is not None and not self._opening_ok(self._opening, data):
            self._fail("the client preface is not followed by SETTINGS", PROTOCOL_ERROR)
            return events
        try:
            h2_events = self._conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:  # h2 has queued GOAWAY
            self._recode_goaway(exc)
            self._fail(f"protocol error: {exc}")
            return events
        handlers = _HANDLERS
        for h2_event in h2_events:
            handler = handlers.get(type(h2_event))
            if handler is not None:
                handler(self, h2_event)
                if self.closed:
                    break
        return events

    def _opening_ok(self, opening: bytes, data: bytes) -> bool:
        """RFC 9113 §3.4: the client preface goes on with a SETTINGS frame (h2 does not check).
        True while too few bytes have come to tell."""
        opening += data[: _OPENING - len(opening)]
        if len(opening) < _OPENING:
            self._opening = opening
            return True
        self._opening = None
        return opening[len(PREFACE) + 3] == 0x4  # the frame type

    def _recode_goaway(self, exc: h2.exceptions.ProtocolError) -> None:
        """Where RFC 9113 names a more precise error code than h2, swap the GOAWAY h2 queued."""
        code = self._rfc_error_code(exc)
        if code == exc.error_code:
            return
        last = self._conn.highest_inbound_stream_id
        queued = GoAwayFrame(0, last_stream_id=last, error_code=int(exc.error_code)).serialize()
        pending = self._conn.data_to_send()
        if pending.endswith(queued):
            pending = (
                pending[: -len(queued)] + GoAwayFrame(0, last_stream_id=last, error_code=code).serialize()
            )
        self._output.append(pending)

    def _rfc_error_code(self, exc: h2.exceptions.ProtocolError) -> int:
        cause = exc.__cause__
        if isinstance(cause, hpack.exceptions.HPACKError) and not isinstance(
            cause, hpack.exceptions.OversizedHeaderListError
        ):
            return COMPRESSION_ERROR  # §4.3: a field block that cannot be decoded
        if isinstance(cause, InvalidDataError):
            head = bytes(self._conn.incoming_buffer._data[:9])  # the frame h2 could not parse
            if len(head) == 9 and head[3] == 0x4 and head[4] & 0x1:
                return FRAME_SIZE_ERROR  # §6.5: a SETTINGS ACK with a payload
        return int(exc.error_code)

    def _fail(self, detail: str, code: int | None = None) -> None:
        if code is not None:
            self._goaway(code, detail.encode("ascii", "replace")[:128])
        self.closed = True
        self._events.append(Rejected(0, 400, detail))

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        sid = event.stream_id
        if self.going_away and sid > self.last_stream_id:
            self._refuse(sid)
            return
        if event.stream_ended is not None:
            stream = self._conn.streams.get(sid)  # gone if a RST_STREAM came in the same read
            if stream is not None and stream._expected_content_length:
                self.reset(sid, PROTOCOL_ERROR)  # §8.1.1: a content-length, and no DATA (h2 misses it)
                return
        method = path = authority = protocol = None
        headers: Headers = []
        cookies: list[bytes] = []
        has_host = False
        for name, value in event.headers:
            if name[:1] == b":":
                if name == b":method":
                    method = value
                elif name == b":path":
                    path = value
                elif name == b":authority":
                    authority = value
                    headers.append((b"host", value))
                elif name == b":protocol":
                    protocol = value
            elif name == b"cookie":
                cookies.append(value)
            else:
                has_host = has_host or name == b"host"
                headers.append((name, value))
        if has_host and authority is not None:  # :authority wins (RFC 9113 §8.3.1)
            headers = [h for i, h in enumerate(headers) if h[0] != b"host" or h[1] is authority]
        if cookies:
            headers.append((b"cookie", b"; ".join(cookies)))
        if (
            method is None
            or (path is None and protocol is None)
            or (method == b"CONNECT" and protocol is None)
        ):
            self.reset(sid, PROTOCOL_ERROR)  # plain CONNECT (a tunnel) is not served
            return
        raw_path, _, query = (path or b"/").partition(b"?")
        self.last_stream_id = max(self.last_stream_id, sid)
        if method == b"HEAD":
            self._heads.add(sid)
        self._events.append(
            Request(
                sid,
                _METHODS.get(method) or method.decode("ascii", "replace"),
                raw_path,
                query,
                "2",
                headers,
                False,
                protocol.lower() if protocol is not None else None,
            )
        )
        if event.stream_ended is not None:
            self._events.append(EndBody(sid))

    def _on_data(self, event: h2.events.DataReceived) -> None:
        data = event.data or b""
        sid = event.stream_id
        padding = (event.flow_controlled_length or 0) - len(data)
        if padding:
            self._conn.acknowledge_received_data(padding, sid)
        if data:
            self._events.append(Body(sid, data))
        elif event.stream_ended is None and not self._control.take():
            self._fail("empty DATA frame flood", ENHANCE_YOUR_CALM)
            return
        if event.stream_ended is not None:
            self._events.append(EndBody(sid))

    def _on_stream_ended(self, event: h2.events.StreamEnded) -> None:
        pass  # reported with the RequestReceived/DataReceived it came with (see stream_ended)

    def _on_trailers(self, event: h2.events.TrailersReceived) -> None:
        self._events.append(EndBody(event.stream_id))  # request trailers are not passed on

    def _on_reset(self, event: h2.events.StreamReset) -> None:
        sid = event.stream_id
        self._drop(sid)
        self._events.append(StreamReset(sid, int(event.error_code or 0)))
        if not self._resets.take():
            self._fail("too many stream resets (rapid reset)", ENHANCE_YOUR_CALM)

    def _on_window(self, event: h2.events.WindowUpdated) -> None:
        sid = event.stream_id
        if sid:
            out = self._blocked.get(sid)
            if out is not None:
                self._pump(sid, out)
        else:
            self._pump_all()

    def _on_settings(self, event: h2.events.RemoteSettingsChanged) -> None:
        if not self._control.take():
            self._fail("SETTINGS flood", ENHANCE_YOUR_CALM)
            return
        if h2.settings.SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
            self._pump_all()

    def _on_ping(self, event: h2.events.PingReceived) -> None:
        if not self._control.take():
            self._fail("PING flood", ENHANCE_YOUR_CALM)

    def _on_goaway(self, event: h2.events.ConnectionTerminated) -> None:
        self.peer_going_away = True
        self._events.append(PeerGoingAway(0, int(event.error_code or 0)))

    # ---------------------------------------------------------------- outgoing

    def send(self, event: Event) -> None:
        """Frame an outgoing event. Raises LocalProtocolError if it cannot be sent; events for a
        stream the client has reset are dropped silently."""
        sid = event.stream_id
        kind = type(event)
        if kind is Data:
            out = self._out.get(sid)
            if out is None:
                if sid in self._out or self._gone(sid):
                    return
                raise LocalProtocolError(f"no response started on stream {sid}")
            self._send_data(sid, out, event)  # type: ignore[arg-type]
        elif kind is Response:
            if sid in self._out:
                raise LocalProtocolError(f"a response was already started on stream {sid}")
            if self._gone(sid):
                return
            out = self._out[sid] = _Outbound()
            out.head = self._head(event.status, event.headers)  # type: ignore[attr-defined]
            heads = self._heads
            if event.status in _NO_CONTENT or (heads and sid in heads):  # type: ignore[attr-defined]
                out.no_body = True  # RFC 9110 §9.3.2: a HEAD response has no content
                heads.discard(sid)
        elif kind is Informational:
            if sid in self._out or self._gone(sid):
                return
            head = [(b":status", _STATUS[event.status]), *event.headers]  # type: ignore[attr-defined]
            with contextlib.suppress(h2.exceptions.StreamClosedError):
                self._conn.send_headers(sid, head)
        elif kind is Trailers:
            out = self._out.get(sid)
            if out is None:
                return
            out.trailers = [(n, v) for n, v in event.headers if n not in _CONNECTION_HEADERS]  # type: ignore[attr-defined]
            out.end = True
            self._pump(sid, out)
        else:
            raise LocalProtocolError(f"cannot send {kind.__name__} over HTTP/2")

    def _gone(self, sid: int) -> bool:
        """True when the stream was reset or closed (the event is moot)."""
        try:
            stream = self._conn._get_stream_by_id(sid)
        except h2.exceptions.StreamClosedError:
            return True
        except h2.exceptions.NoSuchStreamError:
            raise LocalProtocolError(f"no request on stream {sid}") from None
        return bool(stream.closed)

    def _head(self, status: int, headers: Headers) -> list[tuple[bytes, bytes]]:
        block = self._default_headers()
        if block is not self._defaults_block:
            self._defaults_block = block
            self._defaults = [
                (name.strip().lower(), value.strip())
                for name, _, value in (line.partition(b":") for line in block.split(b"\r\n") if line)
            ]
        head = [(b":status", _STATUS[status])]
        seen = set()
        for name, value in headers:
            if name in _CONNECTION_HEADERS:
                continue
            seen.add(name)
            head.append((name, value))
        head.extend(item for item in self._defaults if item[0] not in seen)
        return head

    def _send_data(self, sid: int, out: _Outbound, event: Data) -> None:
        if out.end:
            raise LocalProtocolError(f"the response on stream {sid} is complete")
        data = event.data
        if data and not out.no_body:
            out.chunks.append(data)
            out.size += len(data)
        if event.end:
            out.end = True
        if out.head is not None and not out.size and out.end and out.trailers is None:
            head, out.head = out.head, None
            self._conn.send_headers(sid, head, end_stream=True)
            self._finish(sid, out)
            return
        self._pump(sid, out)

    def _pump(self, sid: int, out: _Outbound) -> None:
        """Frame as much of ``out`` as the windows allow."""
        conn = self._conn
        try:
            if out.head is not None:
                head, out.head = out.head, None
                conn.send_headers(sid, head)
            chunks = out.chunks
            if chunks:
                window = conn.local_flow_control_window(sid)
                frame = conn.max_outbound_frame_size
                while chunks and window > 0:
                    chunk = chunks[0]
                    size = len(chunk)
                    if size > window or size > frame:
                        take = min(window, frame)
                        chunks[0] = chunk[take:]
                        chunk = chunk[:take]
                        size = take
                    else:
                        chunks.popleft()
                    window -= size
                    out.size -= size
                    last = not chunks and out.end and out.trailers is None
                    conn.send_data(sid, chunk, end_stream=last)
                    if last:
                        self._finish(sid, out)
                        return
            if chunks:
                self._blocked[sid] = out
                return
            self._blocked.pop(sid, None)
            if out.end:
                if out.trailers is not None:
                    conn.send_headers(sid, out.trailers, end_stream=True)
                else:
                    conn.send_data(sid, b"", end_stream=True)
                self._finish(sid, out)
        except h2.exceptions.StreamClosedError:
            self._drop(sid)

    def _finish(self, sid: int, out: _Outbound) -> None:
        out.done = True
        self._blocked.pop(sid, None)
        self._out.pop(sid, None)

    def _pump_all(self) -> None:
        for sid, out in list(self._blocked.items()):
            self._pump(sid, out)

    def _drop(self, sid: int) -> None:
        self._blocked.pop(sid, None)
        if self._heads:
            self._heads.discard(sid)
        out = self._out.pop(sid, None)
        if out is not None:
            out.chunks.clear()
            out.size = 0

    @property
    def push_enabled(self) -> bool:
        """The client allows server push (its SETTINGS_ENABLE_PUSH) and neither side is going away."""
        return (
            bool(self._conn.remote_settings.enable_push)
            and not self.going_away
            and not self.peer_going_away
            and not self.closed
        )

    def push(
        self, stream_id: int, path: bytes, headers: Headers, authority: bytes, scheme: bytes
    ) -> Request | None:
        """Promise a GET of ``path`` on ``stream_id`` (PUSH_PROMISE); return the promised stream's
        request, or None when push is off, the stream is gone, or the client's stream limit is hit."""
        if not self.push_enabled:
            return None
        fields = [(n, v) for n, v in headers if n[:1] != b":" and n not in _CONNECTION_HEADERS]
        head = [(b":method", b"GET"), (b":path", path), (b":scheme", scheme), (b":authority", authority)]
        try:
            promised = self._conn.get_next_available_stream_id()
            self._conn.push_stream(stream_id, promised, [*head, *fields])
        except (h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError):
            return None
        raw_path, _, query = path.partition(b"?")
        return Request(promised, "GET", raw_path, query, "2", [(b"host", authority), *fields])

    def pending(self, stream_id: int) -> int:
        """Response bytes queued on ``stream_id`` waiting for flow-control window."""
        out = self._blocked.get(stream_id)
        return out.size if out is not None else 0

    @property
    def blocked_streams(self) -> list[int]:
        """Streams whose response waits for window."""
        return list(self._blocked)

    def acknowledge(self, stream_id: int, size: int) -> None:
        """The application has read ``size`` body bytes of ``stream_id``: the client may send more."""
        if size and not self.closed:
            self._conn.acknowledge_received_data(size, stream_id)

    def reset(self, stream_id: int, code: int = CANCEL) -> None:
        """Reset a stream (RST_STREAM); its queued output is dropped."""
        self._drop(stream_id)
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self._conn.reset_stream(stream_id, code)

    def _refuse(self, stream_id: int) -> None:
        self.reset(stream_id, REFUSED_STREAM)

    def refuse(self, stream_id: int) -> None:
        """Refuse a stream the connection cannot serve (REFUSED_STREAM: safe to retry); counted like
        a client reset, so a client that keeps opening streams past the limit gets GOAWAY."""
        self._refuse(stream_id)
        if not self._resets.take() and not self.closed:
            self._fail("too many refused streams", ENHANCE_YOUR_CALM)

    def graceful_shutdown(self) -> None:
        """GOAWAY(NO_ERROR) naming the last stream served; open streams may finish."""
        if not self.going_away and not self.closed:
            self.going_away = True
            self._goaway(NO_ERROR, b"")

    def close(self, code: int = NO_ERROR, detail: bytes = b"") -> None:
        """GOAWAY with ``code``; nothing more is read."""
        if not self.closed:
            self._goaway(code, detail)
            self.closed = True

    def _goaway(self, code: int, detail: bytes) -> None:
        # Framed by hand: h2's close_connection() would refuse all further frames, including the
        # DATA of streams we let finish after a graceful GOAWAY.
        self.going_away = True
        pending = self._conn.data_to_send()
        if pending:
            self._output.append(pending)
        frame = GoAwayFrame(
            0, last_stream_id=self.last_stream_id, error_code=int(code), additional_data=detail
        )
        self._output.append(frame.serialize())

    @property
    def open_streams(self) -> int:
        """Streams h2 counts as open (either direction)."""
        return int(self._conn.open_inbound_streams)

    def data_to_send(self) -> bytes:
        """Everything framed since the last call."""
        data = self._conn.data_to_send()
        if self._output:
            self._output.append(data)
            data = b"".join(self._output)
            self._output.clear()
        return data


_HANDLERS: dict[type, Callable[[H2Server, Any], None]] = {
    h2.events.RequestReceived: H2Server._on_request,
    h2.events.DataReceived: H2Server._on_data,
    h2.events.StreamEnded: H2Server._on_stream_ended,
    h2.events.TrailersReceived: H2Server._on_trailers,
    h2.events.StreamReset: H2Server._on_reset,
    h2.events.WindowUpdated: H2Server._on_window,
    h2.events.RemoteSettingsChanged: H2Server._on_settings,
    h2.events.PingReceived: H2Server._on_ping,
    h2.events.ConnectionTerminated: H2Server._on_goaway,
}
