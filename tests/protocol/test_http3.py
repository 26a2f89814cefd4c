"""HTTP/3 sans-I/O: datagrams in, events out, with aioquic's client as the peer (no sockets)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.events import ConnectionTerminated

from squall.events import Body, Data, EndBody, Informational, Request, Response, Trailers
from squall.events import StreamReset as SquallReset
from squall.protocol.http3 import (
    H3_EXCESSIVE_LOAD,
    H3_MESSAGE_ERROR,
    H3_REQUEST_REJECTED,
    TAG_LENGTH,
    decode_forward,
    encode_forward,
    reset_token,
    stateless_reset,
    tag_of,
)

from ..h3peer import CertFiles, Pair, make_certs


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    return make_certs(Path(tmp_path_factory.mktemp("h3certs")))


def _headers(pair: Pair, sid: int) -> list[HeadersReceived]:
    return [e for e in pair.client_events if isinstance(e, HeadersReceived) and e.stream_id == sid]


def _body(pair: Pair, sid: int) -> bytes:
    return b"".join(e.data for e in pair.client_events if isinstance(e, DataReceived) and e.stream_id == sid)


def _ended(pair: Pair, sid: int) -> bool:
    return any(
        getattr(e, "stream_ended", False) for e in pair.client_events if getattr(e, "stream_id", None) == sid
    )


def test_get_becomes_request_and_response_goes_back(certs: CertFiles) -> None:
    pair = Pair(certs, default_headers=lambda: b"server: squall\r\n")
    sid = pair.request(path=b"/a%20b?x=1", headers=[(b"cookie", b"a=1"), (b"cookie", b"b=2")])
    pair.pump()
    events = pair.take_server_events()
    assert events == [
        Request(sid, "GET", b"/a%20b", b"x=1", "3", [(b"host", b"localhost"), (b"cookie", b"a=1; b=2")]),
        EndBody(sid),
    ]
    pair.server.send(Response(sid, 200, [(b"content-type", b"text/plain"), (b"connection", b"close")]))
    pair.server.send(Data(sid, b"hello", True))
    pair.pump()
    (head,) = _headers(pair, sid)
    assert head.headers == [(b":status", b"200"), (b"server", b"squall"), (b"content-type", b"text/plain")]
    assert _body(pair, sid) == b"hello"
    assert _ended(pair, sid)


def test_request_body_arrives_as_body_events(certs: CertFiles) -> None:
    pair = Pair(certs)
    sid = pair.request(b"POST", b"/upload", [(b"content-length", b"11")], body=b"hello world")
    pair.pump()
    events = pair.take_server_events()
    assert isinstance(events[0], Request) and events[0].method == "POST"
    assert b"".join(e.data for e in events if isinstance(e, Body)) == b"hello world"
    assert events[-1] == EndBody(sid)


def test_bodyless_response_is_one_headers_frame_with_fin(certs: CertFiles) -> None:
    pair = Pair(certs)
    sid = pair.request()
    pair.pump()
    pair.server.send(Response(sid, 204, []))
    pair.server.send(Data(sid, b"", True))
    pair.pump()
    (head,) = _headers(pair, sid)
    assert head.stream_ended
    assert not [e for e in pair.client_events if isinstance(e, DataReceived)]


def test_head_response_drops_the_body(certs: CertFiles) -> None:
    pair = Pair(certs)
    sid = pair.request(b"HEAD")
    pair.pump()
    pair.server.send(Response(sid, 200, [(b"x-len", b"5")]))  # (aioquic's client would check a
    pair.server.send(Data(sid, b"hello", True))  # Content-Length against the absent body)
    pair.pump()
    (head,) = _headers(pair, sid)
    assert head.stream_ended and _body(pair, sid) == b""


def test_early_hints_and_trailers(certs: CertFiles) -> None:
    pair = Pair(certs)
    sid = pair.request(headers=[(b"te", b"trailers")])
    pair.pump()
    pair.server.send(Informational(sid, 103, [(b"link", b"</s.css>; rel=preload")]))
    pair.server.send(Response(sid, 200, []))
    pair.server.send(Data(sid, b"body", False))
    pair.server.send(Trailers(sid, [(b"x-checksum", b"abc")]))
    pair.pump()
    hint, head, trailers = _headers(pair, sid)
    assert hint.headers == [(b":status", b"103"), (b"link", b"</s.css>; rel=preload")]
    assert head.headers[0] == (b":status", b"200")
    assert trailers.headers == [(b"x-checksum", b"abc")] and trailers.stream_ended
    assert _body(pair, sid) == b"body"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ([(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"localhost")], H3_MESSAGE_ERROR),
        (
            [(b":method", b"G(T"), (b":scheme", b"https"), (b":authority", b"h"), (b":path", b"/")],
            H3_MESSAGE_ERROR,
        ),
        (
            [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", b"a"),
                (b":path", b"/"),
                (b"host", b"b"),
            ],
            H3_MESSAGE_ERROR,
        ),
        (
            [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a"), (b":path", b"x")],
            H3_MESSAGE_ERROR,
        ),
        ([(b":method", b"CONNECT"), (b":authority", b"a:443")], H3_REQUEST_REJECTED),
        (
            [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", b"a"),
                (b":path", b"/"),
                (b"connection", b"close"),
            ],
            H3_MESSAGE_ERROR,
        ),
    ],
)
def test_malformed_request_resets_the_stream_only(certs: CertFiles, fields: list, code: int) -> None:
    pair = Pair(certs)
    sid = pair.client.get_next_available_stream_id()
    pair.h3.send_headers(sid, fields, end_stream=True)
    pair.pump()
    assert not [e for e in pair.take_server_events() if isinstance(e, Request)]
    assert pair.reset_code(sid) == code
    again = pair.request()  # the connection carries on
    pair.pump()
    assert next(e for e in pair.take_server_events() if isinstance(e, Request)).stream_id == again


def test_content_length_mismatch_resets_an_open_stream(certs: CertFiles) -> None:
    pair = Pair(certs)
    sid = pair.request(b"POST", headers=[(b"content-length", b"10")], body=b"abc")
    pair.pump()
    events = pair.take_server_events()
    assert EndBody(sid) not in events  # the app never sees it whole
    assert not any(isinstance(e, Request) for e in events) or SquallReset(sid, H3_MESSAGE_ERROR) in events
    assert pair.reset_code(sid) == H3_MESSAGE_ERROR


def test_header_list_over_the_limit_is_refused(certs: CertFiles) -> None:
    pair = Pair(certs, max_header_list_size=1000)
    sid = pair.request(headers=[(b"x-big", b"a" * 2000)])
    pair.pump()
    assert not [e for e in pair.take_server_events() if isinstance(e, Request)]
    assert pair.reset_code(sid) == H3_EXCESSIVE_LOAD


def test_request_body_is_acknowledged_only_as_the_app_reads(certs: CertFiles) -> None:
    window = 64 * 1024
    pair = Pair(certs, stream_window=window)
    sid = pair.request(b"POST", body=b"x" * (1024 * 1024), end=True)
    pair.pump()
    received = sum(len(e.data) for e in pair.take_server_events() if isinstance(e, Body))
    assert received <= window  # the app read nothing: the client may not send past the window
    assert pair.client._streams[sid].sender._buffer_stop - pair.client._streams[sid].sender._buffer_start > 0
    total = received
    while total < 1024 * 1024:
        pair.server.acknowledge(sid, received)
        pair.pump()
        received = sum(len(e.data) for e in pair.server_events if isinstance(e, Body))
        assert received <= window
        assert received, "acknowledging must let more body in"
        total += received
        done = EndBody(sid) in pair.take_server_events()
    assert done and total == 1024 * 1024


def test_pending_counts_bytes_the_client_has_not_acknowledged(certs: CertFiles) -> None:
    pair = Pair(certs)
    sid = pair.request()
    pair.pump()
    pair.server.send(Response(sid, 200, []))
    pair.server.send(Data(sid, b"y" * 300_000, False))
    pair.deliver_to_client = False  # a client that does not read: no acknowledgement comes back
    pair.pump(rounds=5)
    assert pair.server.pending(sid) >= 300_000
    pair.deliver_to_client = True
    for _ in range(50):
        pair.pump()
        if pair.server.pending(sid) == 0:
            break
    assert pair.server.pending(sid) == 0
    assert len(_body(pair, sid)) == 300_000


def test_concurrent_streams_are_limited_by_max_streams(certs: CertFiles) -> None:
    pair = Pair(certs, max_concurrent_streams=5)
    sids = [pair.request() for _ in range(8)]
    pair.pump()
    requests = [e.stream_id for e in pair.take_server_events() if isinstance(e, Request)]
    assert requests == sids[:5]
    for sid in requests[:3]:
        pair.server.send(Response(sid, 200, []))
        pair.server.send(Data(sid, b"", True))
    pair.pump()
    requests = [e.stream_id for e in pair.take_server_events() if isinstance(e, Request)]
    assert requests == sids[5:]


def test_client_reset_is_a_stream_reset_event(certs: CertFiles) -> None:
    pair = Pair(certs)
    sid = pair.request(b"POST", body=b"abc", end=False)
    pair.pump()
    pair.take_server_events()
    pair.client.reset_stream(sid, 0x10C)
    pair.pump()
    assert SquallReset(sid, 0x10C) in pair.take_server_events()


def test_rapid_reset_closes_the_connection(certs: CertFiles) -> None:
    pair = Pair(certs, max_reset_rate=5)
    for _ in range(30):
        sid = pair.request(b"POST", body=b"a", end=False)
        pair.pump()
        pair.client.reset_stream(sid, 0x10C)
        pair.pump()
        if pair.server.terminated:
            break
    closing = [e for e in pair.client._events if isinstance(e, ConnectionTerminated)]
    assert pair.server.quic._close_event is not None or closing
    assert (
        pair.server.quic._close_event.error_code == H3_EXCESSIVE_LOAD
        or closing[0].error_code == H3_EXCESSIVE_LOAD
    )


def test_graceful_shutdown_sends_goaway_and_lets_open_streams_finish(certs: CertFiles) -> None:
    pair = Pair(certs)
    first = pair.request()
    pair.pump()
    pair.take_server_events()
    pair.server.graceful_shutdown()
    pair.pump()
    late = pair.request()
    pair.pump()
    assert not [e for e in pair.take_server_events() if isinstance(e, Request)]
    assert pair.reset_code(late) == H3_REQUEST_REJECTED
    pair.server.send(Response(first, 200, []))
    pair.server.send(Data(first, b"done", True))
    pair.pump()
    assert _body(pair, first) == b"done" and _ended(pair, first)
    assert pair.server.open_streams == 0


def test_idle_timeout_terminates_the_connection(certs: CertFiles) -> None:
    pair = Pair(certs, idle_timeout=2.0)
    assert not pair.server.terminated
    pair.now += 10
    pair.server.handle_timer(pair.now)
    assert pair.server.terminated


def test_connection_ids_carry_reset_tokens_derived_from_the_shared_secret(certs: CertFiles) -> None:
    secret = b"s" * 32
    pair = Pair(certs, reset_secret=secret)
    sid = pair.request()
    pair.pump()
    peer_ids = [pair.client._peer_cid, *pair.client._peer_cid_available]
    assert len(peer_ids) > 1  # the first id (transport parameter) and NEW_CONNECTION_ID ones
    for entry in peer_ids:
        assert entry.stateless_reset_token == reset_token(secret, entry.cid)
    packet = stateless_reset(secret, pair.client._peer_cid.cid, 1200)
    assert packet is not None and len(packet) < 1200 and packet[0] & 0xC0 == 0x40
    assert packet[-16:] == pair.client._peer_cid.stateless_reset_token
    assert stateless_reset(secret, b"12345678", 21) is None  # never as long as what came
    assert sid == 0


def test_oversized_headers_frame_is_refused_before_it_is_buffered(certs: CertFiles) -> None:
    """A HEADERS frame announcing more than the limit resets the stream at once, before its
    bytes pile up waiting for the end of the frame."""
    pair = Pair(certs, max_header_list_size=1000)
    sid = pair.client.get_next_available_stream_id()
    frame_head = bytes([0x01]) + (0x80000000 | 100_000).to_bytes(4, "big")  # HEADERS, 100 kB (varint)
    pair.client.send_stream_data(sid, frame_head + b"\0" * 500)
    pair.pump()
    assert pair.reset_code(sid) == H3_EXCESSIVE_LOAD


def test_every_connection_id_issued_carries_the_worker_tag(certs: CertFiles) -> None:
    """The id the client sends to after the first flight, and every NEW_CONNECTION_ID one, begin
    with the tag: whichever worker receives a packet can tell which worker holds its connection."""
    tag = b"\x01\x02\x03\x04"
    pair = Pair(certs, cid_tag=tag, reset_secret=b"s" * 32)
    pair.request()
    pair.pump()
    peer_ids = [pair.client._peer_cid, *pair.client._peer_cid_available]
    assert len(peer_ids) > 1
    assert all(tag_of(entry.cid) == tag for entry in peer_ids)
    assert all(entry.stateless_reset_token == reset_token(b"s" * 32, entry.cid) for entry in peer_ids)
    assert set(pair.server.host_cids) >= {entry.cid for entry in peer_ids}
    assert len(tag) == TAG_LENGTH and tag_of(b"short") is None


@pytest.mark.parametrize(
    "addr",
    [("127.0.0.1", 443), ("203.0.113.9", 65535), ("::1", 8443, 0, 0), ("fe80::1", 1, 7, 2)],
)
def test_forward_header_round_trip(addr: tuple) -> None:
    datagram = b"\x40" + bytes(range(60))
    message = encode_forward(addr) + datagram
    assert decode_forward(message) == (addr, datagram)


def test_forward_header_refuses_what_it_did_not_write() -> None:
    good = encode_forward(("127.0.0.1", 443)) + b"x"
    assert decode_forward(good[:20]) is None  # shorter than the header
    assert decode_forward(b"\x02" + good[1:]) is None  # another version
    assert decode_forward(good[:1] + b"\x05" + good[2:]) is None  # no such family
