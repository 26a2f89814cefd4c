"""HTTP/2 frame layer: raw frames in, events and frames out — every rule of RFC 9113 §5, §6 and
§8.2/§8.3 that squall's own frame layer enforces, the defences, and the HPACK caches."""

from __future__ import annotations

import struct

import hpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from squall.events import Body, Data, EndBody, PeerGoingAway, Rejected, Request, Response, StreamReset
from squall.protocol.hpackblocks import BlockDecoder, encode
from squall.protocol.http2 import (
    ENHANCE_YOUR_CALM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    PREFACE,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    STREAM_CLOSED,
    H2Server,
    _frame,
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

COMPRESSION_ERROR = 0x9

HEAD = [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http"), (b":authority", b"example.com")]


def frame(kind: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", sid) + payload


def parse(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """The frames of ``data`` as (type, flags, stream id, payload)."""
    frames = []
    while data:
        length = int.from_bytes(data[:3], "big")
        frames.append((data[3], data[4], int.from_bytes(data[5:9], "big"), data[9 : 9 + length]))
        data = data[9 + length :]
    return frames


def block(fields: list[tuple[bytes, bytes]]) -> bytes:
    """A header block with every field a literal without indexing (no table state)."""
    out = b""
    for name, value in fields:
        out += b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value
    return out


def request(
    sid: int, fields: list[tuple[bytes, bytes]] = HEAD, flags: int = END_STREAM | END_HEADERS
) -> bytes:
    return frame(HEADERS, flags, sid, block(fields))


def opened(**kwargs: object) -> H2Server:
    server = H2Server(**kwargs)  # type: ignore[arg-type]
    server.initiate()
    assert server.receive_data(PREFACE + frame(SETTINGS, 0, 0) + frame(SETTINGS, ACK, 0)) == []
    server.data_to_send()
    return server


def goaway(server: H2Server) -> int | None:
    for kind, _, _, payload in parse(server.data_to_send()):
        if kind == GOAWAY:
            return int.from_bytes(payload[4:8], "big")
    return None


def resets(data: bytes) -> list[tuple[int, int]]:
    return [(sid, int.from_bytes(p, "big")) for kind, _, sid, p in parse(data) if kind == RST_STREAM]


# --- connection errors -------------------------------------------------------------------------

CONNECTION_ERRORS = {
    "frame larger than SETTINGS_MAX_FRAME_SIZE": (frame(PING, 0, 0, b"x" * 16385), FRAME_SIZE_ERROR),
    "DATA on stream 0": (frame(DATA, 0, 0, b"x"), PROTOCOL_ERROR),
    "DATA on an idle stream": (frame(DATA, 0, 1, b"x"), PROTOCOL_ERROR),
    "HEADERS on stream 0": (request(0), PROTOCOL_ERROR),
    "HEADERS on an even stream": (request(2), PROTOCOL_ERROR),
    "HEADERS below a newer stream": (request(5) + request(3), PROTOCOL_ERROR),
    "HEADERS on a closed stream": (
        request(1) + frame(RST_STREAM, 0, 1, b"\0\0\0\x08") + request(1),
        STREAM_CLOSED,
    ),
    "padding longer than the frame": (frame(HEADERS, END_HEADERS | PADDED, 1, b"\x09abc"), PROTOCOL_ERROR),
    "CONTINUATION without HEADERS": (frame(CONTINUATION, END_HEADERS, 1, block(HEAD)), PROTOCOL_ERROR),
    "a header block interrupted": (request(1, flags=0) + frame(PING, 0, 0, b"12345678"), PROTOCOL_ERROR),
    "CONTINUATION on another stream": (
        request(1, flags=0) + frame(CONTINUATION, END_HEADERS, 3, b""),
        PROTOCOL_ERROR,
    ),
    "65 CONTINUATION frames": (
        request(1, flags=0) + frame(CONTINUATION, 0, 1, b"") * 65,
        ENHANCE_YOUR_CALM,
    ),
    "malformed HPACK": (frame(HEADERS, END_HEADERS, 1, b"\xff\xff\xff\xff\xff\xff"), COMPRESSION_ERROR),
    "SETTINGS on a stream": (frame(SETTINGS, 0, 1), PROTOCOL_ERROR),
    "SETTINGS of 5 bytes": (frame(SETTINGS, 0, 0, b"\0" * 5), FRAME_SIZE_ERROR),
    "SETTINGS ACK with a payload": (frame(SETTINGS, ACK, 0, b"\0" * 6), FRAME_SIZE_ERROR),
    "ENABLE_PUSH 2": (frame(SETTINGS, 0, 0, struct.pack(">HL", 2, 2)), PROTOCOL_ERROR),
    "INITIAL_WINDOW_SIZE 2^31": (frame(SETTINGS, 0, 0, struct.pack(">HL", 4, 2**31)), FLOW_CONTROL_ERROR),
    "MAX_FRAME_SIZE 100": (frame(SETTINGS, 0, 0, struct.pack(">HL", 5, 100)), PROTOCOL_ERROR),
    "PING on a stream": (frame(PING, 0, 1, b"12345678"), PROTOCOL_ERROR),
    "PING of 7 bytes": (frame(PING, 0, 0, b"1234567"), FRAME_SIZE_ERROR),
    "RST_STREAM on stream 0": (frame(RST_STREAM, 0, 0, b"\0\0\0\x08"), PROTOCOL_ERROR),
    "RST_STREAM on an idle stream": (frame(RST_STREAM, 0, 1, b"\0\0\0\x08"), PROTOCOL_ERROR),
    "RST_STREAM of 3 bytes": (request(1) + frame(RST_STREAM, 0, 1, b"\0\0\x08"), FRAME_SIZE_ERROR),
    "WINDOW_UPDATE of 0 on the connection": (frame(WINDOW_UPDATE, 0, 0, b"\0\0\0\0"), PROTOCOL_ERROR),
    "WINDOW_UPDATE of 3 bytes": (frame(WINDOW_UPDATE, 0, 0, b"\0\0\x01"), FRAME_SIZE_ERROR),
    "WINDOW_UPDATE past 2^31-1": (
        frame(WINDOW_UPDATE, 0, 0, struct.pack(">L", 2**31 - 1)),
        FLOW_CONTROL_ERROR,
    ),
    "WINDOW_UPDATE on an idle stream": (frame(WINDOW_UPDATE, 0, 1, b"\0\0\0\x01"), PROTOCOL_ERROR),
    "PUSH_PROMISE from a client": (frame(PUSH_PROMISE, END_HEADERS, 1, b"\0\0\0\x02"), PROTOCOL_ERROR),
    "GOAWAY on a stream": (frame(GOAWAY, 0, 1, b"\0" * 8), PROTOCOL_ERROR),
    "GOAWAY of 7 bytes": (frame(GOAWAY, 0, 0, b"\0" * 7), FRAME_SIZE_ERROR),
    "PRIORITY on stream 0": (frame(PRIORITY, 0, 0, b"\0\0\0\x01\x10"), PROTOCOL_ERROR),
    "DATA beyond the stream window": (
        request(1, flags=END_HEADERS) + frame(DATA, 0, 1, b"x" * 101),
        FLOW_CONTROL_ERROR,
    ),
}


@pytest.mark.parametrize("case", CONNECTION_ERRORS)
def test_connection_error(case: str) -> None:
    data, code = CONNECTION_ERRORS[case]
    server = opened(initial_window_size=100)
    events = server.receive_data(data)
    assert isinstance(events[-1], Rejected) and server.closed
    assert goaway(server) == code
    assert server.receive_data(frame(PING, 0, 0, b"12345678")) == []  # nothing more is read


def test_first_frame_must_be_settings() -> None:
    server = H2Server()
    server.initiate()
    events = server.receive_data(PREFACE + frame(PING, 0, 0, b"12345678"))
    assert isinstance(events[-1], Rejected)


def test_preface_in_pieces_then_frames_in_pieces() -> None:
    server = H2Server()
    server.initiate()
    data = PREFACE + frame(SETTINGS, 0, 0) + request(1)
    events = [event for n in range(len(data)) for event in server.receive_data(data[n : n + 1])]
    assert [type(e) for e in events] == [Request, EndBody]


def test_a_frame_arriving_in_pieces_is_kept_until_complete() -> None:
    # linear cost: each read used to copy the partly received frame again and cut it again
    server = opened()
    assert [type(e) for e in server.receive_data(request(1, flags=END_HEADERS))] == [Request]
    data = frame(DATA, END_STREAM, 1, b"x" * 16384)
    for start in range(0, len(data) - 100, 100):
        assert server.receive_data(data[start : start + 100]) == []
        fed = start + 100
        assert len(server._buffer) == fed  # one buffer, appended to
        assert server._need == (len(data) if fed >= 9 else 9)  # parsed again only when complete
    events = server.receive_data(data[fed:])
    assert [type(e) for e in events] == [Body, EndBody] and events[0].data == b"x" * 16384  # type: ignore[union-attr]
    assert len(server._buffer) == 0


def test_stream_window_is_ours_once_the_client_acknowledged_our_settings() -> None:
    server = H2Server(initial_window_size=100_000)
    server.initiate()
    server.receive_data(
        PREFACE + frame(SETTINGS, 0, 0) + request(1, flags=END_HEADERS) + request(3, flags=END_HEADERS)
    )
    events = server.receive_data(frame(DATA, 0, 1, b"x" * 16384) * 4)  # 65536: one byte too many
    assert isinstance(events[-1], Rejected) and goaway(server) == FLOW_CONTROL_ERROR
    server = H2Server(initial_window_size=100_000)
    server.initiate()
    server.receive_data(PREFACE + frame(SETTINGS, 0, 0) + request(1, flags=END_HEADERS))
    server.receive_data(frame(SETTINGS, ACK, 0))  # stream 1 gets the difference too
    events = server.receive_data(frame(DATA, 0, 1, b"x" * 16384) * 6)
    assert events == [Body(1, b"x" * 16384)] * 6


def test_unknown_frame_types_are_ignored() -> None:
    server = opened()
    assert server.receive_data(frame(0xFA, 0xFF, 1, b"whatever") + request(1))[0] == Request(
        1, "GET", b"/", b"", "2", [(b"host", b"example.com")]
    )


def test_settings_and_ping_are_acknowledged() -> None:
    server = opened()
    server.receive_data(frame(SETTINGS, 0, 0, struct.pack(">HL", 4, 1000)) + frame(PING, 0, 0, b"abcdefgh"))
    assert parse(server.data_to_send()) == [(SETTINGS, ACK, 0, b""), (PING, ACK, 0, b"abcdefgh")]


# --- stream errors -----------------------------------------------------------------------------

MALFORMED = {
    "upper-case name": [*HEAD, (b"X-Up", b"1")],
    "space in a name": [*HEAD, (b"x y", b"1")],
    "colon in a name": [*HEAD, (b"x:y", b"1")],
    "empty name": [*HEAD, (b"", b"1")],
    "NUL in a value": [*HEAD, (b"x", b"a\0b")],
    "CR in a value": [*HEAD, (b"x", b"a\rb")],
    "LF in a value": [*HEAD, (b"x", b"a\nb")],
    "value starting with a space": [*HEAD, (b"x", b" a")],
    "value ending with a tab": [*HEAD, (b"x", b"a\t")],
    "connection": [*HEAD, (b"connection", b"keep-alive")],
    "keep-alive": [*HEAD, (b"keep-alive", b"5")],
    "proxy-connection": [*HEAD, (b"proxy-connection", b"close")],
    "transfer-encoding": [*HEAD, (b"transfer-encoding", b"chunked")],
    "upgrade": [*HEAD, (b"upgrade", b"websocket")],
    "TE other than trailers": [*HEAD, (b"te", b"gzip")],
    "unknown pseudo-header": [*HEAD, (b":foo", b"1")],
    ":status in a request": [(b":status", b"200"), *HEAD],
    "repeated pseudo-header": [*HEAD, (b":path", b"/again")],
    "pseudo-header after a regular field": [*HEAD[:3], (b"x", b"1"), HEAD[3]],
    "no :method": HEAD[1:],
    "no :scheme": [HEAD[0], HEAD[1], HEAD[3]],
    "no :path": [HEAD[0], HEAD[2], HEAD[3]],
    "empty :path": [HEAD[0], (b":path", b""), HEAD[2], HEAD[3]],
    ":protocol without CONNECT": [*HEAD, (b":protocol", b"websocket")],
    "CONNECT (a tunnel)": [(b":method", b"CONNECT"), (b":authority", b"example.com:443")],
    "neither :authority nor Host": HEAD[:3],
    ":authority and Host differ": [*HEAD, (b"host", b"other.example")],
    "two Host fields": [*HEAD[:3], (b"host", b"a"), (b"host", b"a")],
    "Content-Length not digits": [*HEAD, (b"content-length", b"12a")],
    "two Content-Length values": [*HEAD, (b"content-length", b"1"), (b"content-length", b"2")],
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_request_resets_the_stream(case: str) -> None:
    server = opened()
    assert server.receive_data(request(1, MALFORMED[case])) == []
    assert resets(server.data_to_send()) == [(1, PROTOCOL_ERROR)]
    assert not server.closed
    assert isinstance(server.receive_data(request(3))[0], Request)  # the connection goes on


@pytest.mark.parametrize(
    "fields",
    [
        [*HEAD, (b"te", b"trailers"), (b"x-e", b""), (b"host", b"example.com")],
        [*HEAD[:3], (b"host", b"example.com")],
        [(b":method", b"CONNECT"), (b":protocol", b"websocket"), *HEAD[1:]],
        [*HEAD, (b"content-length", b"0"), (b"content-length", b"0")],
    ],
)
def test_well_formed_requests_pass(fields: list[tuple[bytes, bytes]]) -> None:
    server = opened()
    events = server.receive_data(request(1, fields))
    assert isinstance(events[0], Request)
    assert [v for n, v in events[0].headers if n == b"host"] == [b"example.com"]


def test_body_longer_or_shorter_than_content_length() -> None:
    server = opened()
    head = [*HEAD, (b"content-length", b"3")]
    events = server.receive_data(request(1, head, END_HEADERS) + frame(DATA, 0, 1, b"abcd"))
    assert events[1:] == [StreamReset(1, PROTOCOL_ERROR)]
    events = server.receive_data(request(3, head, END_HEADERS) + frame(DATA, END_STREAM, 3, b"ab"))
    assert events[1:] == [Body(3, b"ab"), StreamReset(3, PROTOCOL_ERROR)]
    assert resets(server.data_to_send()) == [(1, PROTOCOL_ERROR), (3, PROTOCOL_ERROR)]


def test_trailers_must_end_the_stream_without_pseudo_headers() -> None:
    server = opened()
    server.receive_data(request(1, flags=END_HEADERS) + request(3, flags=END_HEADERS))
    trailers = frame(HEADERS, END_STREAM | END_HEADERS, 1, block([(b"x-t", b"1")]))
    assert server.receive_data(trailers) == [EndBody(1)]
    assert server.receive_data(frame(HEADERS, END_HEADERS, 3, block([(b"x-t", b"1")]))) == [
        StreamReset(3, PROTOCOL_ERROR)
    ]
    server.receive_data(request(5, flags=END_HEADERS))
    assert server.receive_data(frame(HEADERS, END_STREAM | END_HEADERS, 5, block([(b":path", b"/")]))) == [
        StreamReset(5, PROTOCOL_ERROR)
    ]


def test_frames_on_half_closed_and_closed_streams() -> None:
    server = opened()
    server.receive_data(request(1))
    server.data_to_send()
    assert server.receive_data(frame(DATA, 0, 1, b"late")) == [StreamReset(1, STREAM_CLOSED)]
    assert resets(server.data_to_send()) == [(1, STREAM_CLOSED)]
    server.receive_data(request(3))
    server.send(Response(3, 200, []))
    server.send(Data(3, b"done", True))  # stream 3 is closed now
    server.data_to_send()
    assert (
        server.receive_data(frame(WINDOW_UPDATE, 0, 3, b"\0\0\0\x01") + frame(PRIORITY, 0, 3, b"\0" * 5))
        == []
    )
    assert server.data_to_send() == b""  # late WINDOW_UPDATE and PRIORITY: fine
    assert server.receive_data(frame(DATA, 0, 3, b"late")) == []
    assert resets(server.data_to_send()) == [(3, STREAM_CLOSED)]


def test_late_frames_on_a_stream_we_reset_are_ignored_but_flow_controlled() -> None:
    server = opened(initial_window_size=65535, connection_window_size=65535)
    server.receive_data(request(1, flags=END_HEADERS))
    server.reset(1)
    server.data_to_send()
    events = server.receive_data(frame(DATA, 0, 1, b"x" * 16384) * 2 + frame(HEADERS, END_HEADERS, 1, b""))
    assert events == []
    sent = parse(server.data_to_send())
    assert sent == [(WINDOW_UPDATE, 0, 0, (32768).to_bytes(4, "big"))]  # the connection window refills


def test_stream_window_update_errors() -> None:
    server = opened()
    server.receive_data(request(1) + request(3))
    server.data_to_send()
    assert server.receive_data(frame(WINDOW_UPDATE, 0, 1, b"\0\0\0\0")) == [StreamReset(1, PROTOCOL_ERROR)]
    too_much = struct.pack(">L", 2**31 - 1)
    assert server.receive_data(frame(WINDOW_UPDATE, 0, 3, too_much)) == [StreamReset(3, FLOW_CONTROL_ERROR)]
    assert resets(server.data_to_send()) == [(1, PROTOCOL_ERROR), (3, FLOW_CONTROL_ERROR)]


def test_stream_depending_on_itself() -> None:
    server = opened()
    priority = b"\0\0\0\x01\x10"
    assert (
        server.receive_data(
            frame(HEADERS, END_STREAM | END_HEADERS | PRIORITY_FLAG, 1, priority + block(HEAD))
        )
        == []
    )
    assert resets(server.data_to_send()) == [(1, PROTOCOL_ERROR)]
    server.receive_data(request(3, flags=END_HEADERS))
    assert server.receive_data(frame(PRIORITY, 0, 3, b"\0\0\0\x03\x10")) == [StreamReset(3, PROTOCOL_ERROR)]
    assert server.receive_data(frame(PRIORITY, 0, 9, b"\0\0\0\x03\x10")) == []  # priority of an idle stream


def test_padded_headers_and_data() -> None:
    server = opened()
    padded = frame(HEADERS, END_HEADERS | PADDED, 1, b"\x03" + block(HEAD) + b"pad")
    body = frame(DATA, END_STREAM | PADDED, 1, b"\x02body" + b"\0\0")
    assert server.receive_data(padded + body)[1:] == [Body(1, b"body"), EndBody(1)]


def test_streams_beyond_the_limit_are_refused() -> None:
    server = opened(max_concurrent_streams=2)
    events = server.receive_data(request(1, flags=END_HEADERS) + request(3, flags=END_HEADERS) + request(5))
    assert [e.stream_id for e in events] == [1, 3]
    assert resets(server.data_to_send()) == [(5, REFUSED_STREAM)]


def test_streams_after_our_goaway_are_refused_unmetered() -> None:
    server = opened(max_reset_rate=1, clock=lambda: 0.0)
    server.receive_data(request(1, flags=END_HEADERS))
    server.graceful_shutdown()
    assert goaway(server) == 0
    events = server.receive_data(
        b"".join(request(2 * n + 3) for n in range(10)) + frame(DATA, END_STREAM, 1, b"x")
    )
    assert events == [Body(1, b"x"), EndBody(1)]
    assert resets(server.data_to_send()) == [(2 * n + 3, REFUSED_STREAM) for n in range(10)]


def test_stream_errors_are_metered_like_resets() -> None:
    server = opened(max_reset_rate=5, clock=lambda: 0.0)
    bad = [*HEAD, (b"connection", b"close")]
    events = server.receive_data(b"".join(request(2 * n + 1, bad) for n in range(20)))
    assert isinstance(events[-1], Rejected)
    assert goaway(server) == ENHANCE_YOUR_CALM


def test_hpack_bomb_is_a_connection_error() -> None:
    server = opened(max_header_list_size=4096)
    encoder = hpack.Encoder()
    server.receive_data(
        frame(HEADERS, END_STREAM | END_HEADERS, 1, encoder.encode([*HEAD, (b"x-b", b"a" * 3000)]))
    )
    server.data_to_send()
    bomb = encoder.encode([*HEAD, *[(b"x-b", b"a" * 3000)] * 10])
    assert len(bomb) < 100
    events = server.receive_data(frame(HEADERS, END_STREAM | END_HEADERS, 3, bomb))
    assert isinstance(events[-1], Rejected)
    assert goaway(server) == ENHANCE_YOUR_CALM


# --- HPACK caches ------------------------------------------------------------------------------


def indexed(index: int) -> bytes:
    return bytes([0x80 | index])


def incremental(name: bytes, value: bytes) -> bytes:
    """A literal with incremental indexing, new name: it adds an entry to the dynamic table."""
    return b"\x40" + bytes([len(name)]) + name + bytes([len(value)]) + value


PSEUDO = indexed(2) + indexed(4) + indexed(6) + b"\x01\x01a"  # GET, /, http, :authority a


def headers_of(server: H2Server, sid: int, block: bytes) -> list[tuple[bytes, bytes]]:
    events = server.receive_data(frame(HEADERS, END_STREAM | END_HEADERS, sid, block))
    assert isinstance(events[0], Request)
    return [h for h in events[0].headers if h[0] != b"host"]


def test_cached_block_follows_the_table() -> None:
    server = opened()
    assert headers_of(server, 1, PSEUDO + incremental(b"x-a", b"1")) == [(b"x-a", b"1")]
    reference = PSEUDO + indexed(62)  # the newest dynamic entry
    assert headers_of(server, 3, reference) == [(b"x-a", b"1")]
    assert headers_of(server, 5, reference) == [(b"x-a", b"1")]  # served from the cache
    assert headers_of(server, 7, PSEUDO + incremental(b"x-a", b"2")) == [(b"x-a", b"2")]
    assert headers_of(server, 9, reference) == [(b"x-a", b"2")]  # the same bytes, the new table


def test_block_that_changes_the_table_is_decoded_every_time() -> None:
    server = opened()
    headers_of(server, 1, PSEUDO + incremental(b"x-c", b"w"))
    adding = PSEUDO + incremental(b"x-b", b"v")
    assert headers_of(server, 3, adding) == [(b"x-b", b"v")]
    assert headers_of(server, 5, adding) == [(b"x-b", b"v")]
    # Two x-b entries now, the second (index 63) in front of x-c (64): a cached answer to the
    # second `adding` would have left x-c at 63.
    assert headers_of(server, 7, PSEUDO + indexed(62) + indexed(63) + indexed(64)) == [
        (b"x-b", b"v"),
        (b"x-b", b"v"),
        (b"x-c", b"w"),
    ]


def test_cached_request_headers_are_a_fresh_list_each_time() -> None:
    server = opened()
    first = server.receive_data(request(1))[0]
    second = server.receive_data(request(3))[0]
    assert isinstance(first, Request) and isinstance(second, Request)
    first.headers.append((b"x-app", b"changed it"))
    assert second.headers == [(b"host", b"example.com")]


def test_block_decoder_generation() -> None:
    decoder = BlockDecoder(65536)
    decoder.decode(indexed(2))
    assert decoder.generation == 0
    decoder.decode(incremental(b"x", b"y"))
    assert decoder.generation == 1
    decoder.decode(b"\x3f\xe1\x1f")  # a size update to the same 4096: no change
    assert decoder.generation == 1
    decoder.decode(b"\x20")  # to 0: the table is emptied
    assert decoder.generation == 2


def test_response_blocks_use_no_dynamic_table() -> None:
    server = opened(default_headers=lambda: b"server: squall\r\n")
    server.receive_data(request(1) + request(3))
    server.data_to_send()
    for sid in (1, 3):
        server.send(Response(sid, 200, [(b"content-type", b"text/plain")]))
        server.send(Data(sid, b"", True))
    first, second = (payload for kind, _, _, payload in parse(server.data_to_send()) if kind == HEADERS)
    assert first == b"\x20" + second  # a size update to 0 leads the first block only
    decoder = hpack.Decoder()
    fields = [(b":status", b"200"), (b"content-type", b"text/plain"), (b"server", b"squall")]
    assert decoder.decode(first, raw=True) == fields
    assert decoder.decode(second, raw=True) == fields
    assert len(decoder.header_table.dynamic_entries) == 0
    assert encode(fields) == second


def test_large_response_head_continues_in_continuation_frames() -> None:
    server = opened()
    server.receive_data(request(1))
    server.data_to_send()
    server.send(Response(1, 200, [(b"x-big", bytes(range(32, 127)) * 400)]))
    server.send(Data(1, b"", True))
    frames = parse(server.data_to_send())
    assert [(kind, flags) for kind, flags, _, _ in frames] == [
        (HEADERS, END_STREAM),
        (CONTINUATION, 0),
        (CONTINUATION, END_HEADERS),
    ]
    fields = hpack.Decoder(max_header_list_size=2**20).decode(b"".join(p for _, _, _, p in frames), raw=True)
    assert fields[1] == (b"x-big", bytes(range(32, 127)) * 400)


def test_cached_response_head_follows_the_default_headers() -> None:
    dates = [b"date: one\r\n"]
    server = opened(default_headers=lambda: dates[0])
    server.receive_data(request(1) + request(3) + request(5))
    for sid in (1, 3, 5):
        if sid == 5:
            dates[0] = b"date: two\r\n"  # a new second
        server.send(Response(sid, 200, [(b"content-type", b"text/plain")]))
        server.send(Data(sid, b"", True))
    decoder = hpack.Decoder()
    heads = [decoder.decode(p, raw=True) for kind, _, _, p in parse(server.data_to_send()) if kind == HEADERS]
    assert [dict(head)[b"date"] for head in heads] == [b"one", b"one", b"two"]
    assert heads[0] == heads[1] == [(b":status", b"200"), (b"content-type", b"text/plain"), (b"date", b"one")]


# --- hypothesis: any frames leave the server working or cleanly failed --------------------------

RANDOM_FRAMES = st.lists(
    st.tuples(
        st.integers(0, 10),
        st.sampled_from([0, END_STREAM, END_HEADERS, END_STREAM | END_HEADERS, PADDED, PRIORITY_FLAG, 0xFF]),
        st.integers(0, 7),
        st.one_of(st.binary(max_size=24), st.just(block(HEAD)), st.just(b"\0\0\0\x01")),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(RANDOM_FRAMES)
def test_any_frames(frames: list[tuple[int, int, int, bytes]]) -> None:
    server = opened(clock=lambda: 0.0)
    for kind, flags, sid, payload in frames:
        events = server.receive_data(frame(kind, flags, sid, payload))
        for event in events:
            assert isinstance(event, Request | Body | EndBody | StreamReset | PeerGoingAway | Rejected)
            if isinstance(event, Request):
                server.send(Response(event.stream_id, 200, []))
                server.send(Data(event.stream_id, b"ok", True))
        server.data_to_send()
        if server.closed:
            assert isinstance(events[-1], Rejected)
            return


@given(
    st.sampled_from([0, 1, 13, 16383, 16384, 65535, 2**24 - 1]),
    st.integers(0, 255),
    st.integers(0, 255),
    st.sampled_from([0, 1, 3, 2**16 + 1, 2**31 - 1]),
)
@settings(max_examples=60, deadline=None)
def test_frame_heads_follow_rfc_9113_layout(length: int, kind: int, flags: int, sid: int) -> None:
    # RFC 9113 §4.1: a 24-bit length, 8-bit type and flags, a 31-bit stream id, then the payload;
    # also past 16 KiB, where the head no longer fits a compiled native int.
    payload = b"\x07" * length
    head = struct.pack(">BHBBL", length >> 16, length & 0xFFFF, kind, flags, sid)
    assert _frame(kind, flags, sid, payload) == head + payload
