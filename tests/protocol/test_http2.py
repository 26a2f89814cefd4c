"""HTTP/2 protocol core: bytes in, events out, with an h2 client connection as the peer."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest
from hyperframe.frame import DataFrame, HeadersFrame, SettingsFrame
from hypothesis import given, settings
from hypothesis import strategies as st

from squall.events import Body, Data, EndBody, Informational, Rejected, Request, Response
from squall.protocol.http2 import (
    PREFACE,
    H2Server,
    LocalProtocolError,
    PeerGoingAway,
    RecentIds,
    StreamReset,
    TokenBucket,
    Trailers,
)
from tests.protocol.h2pair import exchange

HEAD = [(b":method", b"GET"), (b":path", b"/p?q=1"), (b":scheme", b"https"), (b":authority", b"example.com")]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def pair(
    client_settings: dict[int, int] | None = None, **kwargs: object
) -> tuple[H2Server, h2.connection.H2Connection]:
    kwargs.setdefault("default_headers", lambda: b"date: today\r\nserver: test\r\n")
    server = H2Server(**kwargs)  # type: ignore[arg-type]
    server.initiate()
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    if client_settings:
        client.local_settings = h2.settings.Settings(client=True, initial_values=client_settings)
    client.initiate_connection()
    exchange(server, client)
    return server, client


def test_request_becomes_events() -> None:
    server, client = pair()
    client.send_headers(1, [*HEAD, (b"cookie", b"a=1"), (b"cookie", b"b=2"), (b"x-y", b"z")], end_stream=True)
    events, _ = exchange(server, client)
    assert events == [
        Request(
            1,
            "GET",
            b"/p",
            b"q=1",
            "2",
            [(b"host", b"example.com"), (b"x-y", b"z"), (b"cookie", b"a=1; b=2")],
        ),
        EndBody(1),
    ]


def test_authority_and_host_give_one_host() -> None:
    server, client = pair()
    client.send_headers(1, [*HEAD, (b"host", b"example.com")], end_stream=True)
    events, _ = exchange(server, client)
    assert isinstance(events[0], Request)
    assert [v for n, v in events[0].headers if n == b"host"] == [b"example.com"]


def test_content_length_without_data_is_malformed() -> None:
    """RFC 9113 §8.1.1: a request declaring content but ending with its HEADERS is reset."""
    server, client = pair()
    client.send_headers(1, [*HEAD, (b"content-length", b"5")], end_stream=True)
    client.send_headers(3, [*HEAD, (b"content-length", b"0")], end_stream=True)
    events, client_events = exchange(server, client)
    assert [type(e) for e in events] == [Request, EndBody] and events[0].stream_id == 3
    reset = next(e for e in client_events if isinstance(e, h2.events.StreamReset))
    assert reset.stream_id == 1 and reset.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    client.send_headers(5, HEAD, end_stream=True)
    client.reset_stream(5)
    client.send_headers(7, HEAD, end_stream=True)  # h2 forgets stream 5 before we see its request
    events, _ = exchange(server, client)
    assert [(type(e), e.stream_id) for e in events][-2:] == [(Request, 7), (EndBody, 7)]


def test_body_and_acknowledgement() -> None:
    server, client = pair(initial_window_size=65535)
    client.send_headers(1, HEAD)
    for size in (16384, 16384, 7232):
        client.send_data(1, b"x" * size)
    client.end_stream(1)
    events, _ = exchange(server, client)
    assert events[1:] == [Body(1, b"x" * 16384), Body(1, b"x" * 16384), Body(1, b"x" * 7232), EndBody(1)]
    assert client.local_flow_control_window(1) == 65535 - 40000
    server.acknowledge(1, 40000)
    exchange(server, client)
    assert client.local_flow_control_window(1) == 65535


def test_unread_body_is_not_acknowledged() -> None:
    server, client = pair(initial_window_size=65535)
    client.send_headers(1, HEAD)
    for size in (16384, 16384, 16384, 16383):
        client.send_data(1, b"x" * size)
    exchange(server, client)
    assert client.local_flow_control_window(1) == 0  # the client may not send more until read


def test_response_head_and_body_with_default_headers() -> None:
    server, client = pair()
    client.send_headers(1, HEAD, end_stream=True)
    exchange(server, client)
    server.send(
        Response(1, 200, [(b"content-type", b"text/plain"), (b"connection", b"close"), (b"server", b"app")])
    )
    server.send(Data(1, b"hello", True))
    _, events = exchange(server, client)
    response = next(e for e in events if isinstance(e, h2.events.ResponseReceived))
    assert list(response.headers) == [
        (b":status", b"200"),
        (b"content-type", b"text/plain"),
        (b"server", b"app"),
        (b"date", b"today"),
    ]
    data = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    assert data == b"hello"
    assert any(isinstance(e, h2.events.StreamEnded) for e in events)


def test_empty_response_is_one_headers_frame() -> None:
    server, client = pair()
    client.send_headers(1, HEAD, end_stream=True)
    exchange(server, client)
    server.send(Response(1, 204, []))
    server.send(Data(1, b"", True))
    _, events = exchange(server, client)
    response = next(e for e in events if isinstance(e, h2.events.ResponseReceived))
    assert response.stream_ended is not None
    assert not any(isinstance(e, h2.events.DataReceived) for e in events)


@pytest.mark.parametrize(("method", "status"), [(b"HEAD", 200), (b"GET", 204), (b"GET", 304)])
def test_responses_without_content_drop_the_body(method: bytes, status: int) -> None:
    """RFC 9110 §9.3.2, §15.3.5, §15.4.5: no content in the DATA frames (a content-length may stay)."""
    server, client = pair()
    client.send_headers(1, [(b":method", method), *HEAD[1:]], end_stream=True)
    exchange(server, client)
    server.send(Response(1, status, [(b"content-length", b"5")]))
    server.send(Data(1, b"hello", True))
    _, events = exchange(server, client)
    response = next(e for e in events if isinstance(e, h2.events.ResponseReceived))
    assert dict(response.headers)[b"content-length"] == b"5"
    assert not any(isinstance(e, h2.events.DataReceived) and e.data for e in events)
    assert any(isinstance(e, h2.events.StreamEnded) for e in events)


def test_output_waits_for_window() -> None:
    server, client = pair(client_settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1000})
    client.send_headers(1, HEAD, end_stream=True)
    exchange(server, client)
    server.send(Response(1, 200, []))
    server.send(Data(1, b"y" * 5000, True))
    assert server.pending(1) == 4000
    _, events = exchange(server, client)
    received = sum(len(e.data) for e in events if isinstance(e, h2.events.DataReceived))
    assert received == 1000
    total = received
    while server.pending(1):
        client.acknowledge_received_data(1000, 1)
        _, events = exchange(server, client)
        total += sum(len(e.data) for e in events if isinstance(e, h2.events.DataReceived))
    assert total == 5000
    assert server.blocked_streams == []


def test_trailers_and_informational() -> None:
    server, client = pair()
    client.send_headers(1, [*HEAD, (b"te", b"trailers")], end_stream=True)
    exchange(server, client)
    server.send(Informational(1, 103, [(b"link", b"</a.css>; rel=preload")]))
    server.send(Response(1, 200, []))
    server.send(Data(1, b"body", False))
    server.send(Trailers(1, [(b"x-checksum", b"abc")]))
    _, events = exchange(server, client)
    kinds = [type(e).__name__ for e in events if not isinstance(e, h2.events.SettingsAcknowledged)]
    assert kinds[:4] == [
        "InformationalResponseReceived",
        "ResponseReceived",
        "DataReceived",
        "TrailersReceived",
    ]
    trailers = next(e for e in events if isinstance(e, h2.events.TrailersReceived))
    assert list(trailers.headers) == [(b"x-checksum", b"abc")]


def test_client_reset_is_reported_and_output_dropped() -> None:
    server, client = pair()
    client.send_headers(1, HEAD, end_stream=True)
    exchange(server, client)
    server.send(Response(1, 200, []))
    client.reset_stream(1, h2.errors.ErrorCodes.CANCEL)
    events, _ = exchange(server, client)
    assert events == [StreamReset(1, h2.errors.ErrorCodes.CANCEL)]
    server.send(Data(1, b"late", True))  # dropped, no error
    assert server.pending(1) == 0


def test_send_on_unknown_stream_raises() -> None:
    server, _ = pair()
    with pytest.raises(LocalProtocolError):
        server.send(Response(7, 200, []))


def test_rapid_reset_gets_goaway() -> None:
    clock = Clock()
    server, client = pair(max_reset_rate=10, clock=clock)
    events: list[object] = []
    for n in range(30):
        sid = 2 * n + 1
        client.send_headers(sid, HEAD, end_stream=True)
        client.reset_stream(sid)
        events += server.receive_data(client.data_to_send())
    assert any(isinstance(e, Rejected) for e in events)
    _, client_events = exchange(server, client)
    goaway = next(e for e in client_events if isinstance(e, h2.events.ConnectionTerminated))
    assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


def test_resets_within_the_rate_are_fine() -> None:
    clock = Clock()
    server, client = pair(max_reset_rate=10, clock=clock)
    for n in range(100):
        clock.now += 0.2
        client.send_headers(2 * n + 1, HEAD, end_stream=True)
        client.reset_stream(2 * n + 1)
        assert not any(isinstance(e, Rejected) for e in server.receive_data(client.data_to_send()))


def test_ping_flood_gets_goaway() -> None:
    server, client = pair(max_control_rate=5, clock=Clock())
    events: list[object] = []
    for n in range(20):
        client.ping(b"%08d" % n)
        events += server.receive_data(client.data_to_send())
    assert isinstance(events[-1], Rejected)
    assert server.closed


def test_oversized_header_list_is_a_connection_error() -> None:
    server, client = pair(max_header_list_size=1000)
    client.send_headers(1, [*HEAD, (b"x-big", b"v" * 2000)], end_stream=True)
    events, _ = exchange(server, client)
    assert isinstance(events[-1], Rejected)


def goaway_code(server: H2Server, client: h2.connection.H2Connection) -> int:
    """The error code of the GOAWAY the server has queued, as the client reads it."""
    events = client.receive_data(server.data_to_send())
    return int(next(e for e in events if isinstance(e, h2.events.ConnectionTerminated)).error_code or 0)


def test_undecodable_field_block_is_compression_error() -> None:
    """RFC 9113 §4.3 (h2 itself says PROTOCOL_ERROR)."""
    server, client = pair()
    truncated = HeadersFrame(
        1, b"\x00\x0aab", flags=["END_HEADERS", "END_STREAM"]
    )  # a 10-byte name cut short
    events = server.receive_data(truncated.serialize())
    assert isinstance(events[-1], Rejected)
    assert goaway_code(server, client) == h2.errors.ErrorCodes.COMPRESSION_ERROR


def test_settings_ack_with_a_payload_is_frame_size_error() -> None:
    """RFC 9113 §6.5 (h2 itself says PROTOCOL_ERROR); a SETTINGS frame on a stream stays PROTOCOL_ERROR."""
    server, client = pair()
    ack = bytearray(SettingsFrame(0, {h2.settings.SettingCodes.MAX_FRAME_SIZE: 16384}).serialize())
    ack[4] = 0x1  # ACK, with the payload left in
    assert isinstance(server.receive_data(bytes(ack))[-1], Rejected)
    assert goaway_code(server, client) == h2.errors.ErrorCodes.FRAME_SIZE_ERROR
    server, client = pair()
    on_stream = bytearray(SettingsFrame(0).serialize())
    on_stream[8] = 1
    assert isinstance(server.receive_data(bytes(on_stream))[-1], Rejected)
    assert goaway_code(server, client) == h2.errors.ErrorCodes.PROTOCOL_ERROR


def test_preface_must_be_followed_by_settings() -> None:
    """RFC 9113 §3.4: a preface followed by another frame (a PING here) is PROTOCOL_ERROR."""
    server = H2Server()
    server.initiate()
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    client.data_to_send()
    ping = b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + b"12345678"
    opening = PREFACE + ping
    assert server.receive_data(opening[:20]) == []  # too early to tell
    assert isinstance(server.receive_data(opening[20:])[-1], Rejected)
    assert goaway_code(server, client) == h2.errors.ErrorCodes.PROTOCOL_ERROR


def test_graceful_shutdown_lets_open_streams_finish_and_refuses_new_ones() -> None:
    server, client = pair()
    client.send_headers(1, HEAD, end_stream=True)
    exchange(server, client)
    server.graceful_shutdown()
    server.send(Response(1, 200, []))
    server.send(Data(1, b"done", True))
    data = server.data_to_send()
    # the client's h2 stops at GOAWAY; check the frames with a fresh look at the bytes
    assert b"done" in data
    events = server.receive_data(b"")
    assert events == []
    assert server.going_away and server.last_stream_id == 1


def test_peer_goaway_is_reported() -> None:
    server, client = pair()
    client.close_connection()
    events, _ = exchange(server, client)
    assert events == [PeerGoingAway(0, 0)]


def test_open_streams_go_on_after_the_peer_goaway() -> None:
    """RFC 9113 §6.8: after the client's GOAWAY its open streams still send and get answers."""
    server, client = pair()
    client.send_headers(1, HEAD)
    exchange(server, client)
    assert server.push_enabled
    client.close_connection()
    tail = DataFrame(1, b"last words", flags=["END_STREAM"]).serialize()  # h2's client refuses to send it
    events = server.receive_data(client.data_to_send() + tail)
    assert events == [PeerGoingAway(0, 0), Body(1, b"last words"), EndBody(1)]
    assert not server.push_enabled
    server.send(Response(1, 200, []))
    server.send(Data(1, b"the answer", True))
    assert b"the answer" in server.data_to_send()


def test_garbage_is_a_connection_error() -> None:
    server = H2Server()
    server.initiate()
    events = server.receive_data(b"GET / HTTP/1.1\r\n\r\n" + b"x" * 30)
    assert isinstance(events[-1], Rejected)
    assert server.closed


def test_h2c_upgrade_stream_one() -> None:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    header = client.initiate_upgrade_connection()
    server = H2Server()
    server.initiate_upgrade(header)
    server.send(Response(1, 200, []))
    server.send(Data(1, b"upgraded", True))
    events = client.receive_data(server.data_to_send())
    assert b"upgraded" in b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    for bad in (b"!!!not base64!!!", b"!!!", b"AAMA!AABk", b"AAMAAABk AAQAAP__"):
        with pytest.raises(ValueError):  # RFC 9113 §3.2.1: no upgrade on a bad HTTP2-Settings
            H2Server().initiate_upgrade(bad)
    H2Server().initiate_upgrade(b"AAMAAABkAAQAAP__")  # base64url, its '=' padding omitted


def test_token_bucket() -> None:
    clock = Clock()
    bucket = TokenBucket(2, 4, clock)
    assert [bucket.take() for _ in range(5)] == [True, True, True, True, False]
    clock.now += 1.0
    assert bucket.take()


# --- hypothesis: any order of client actions leaves the server working or cleanly failed -------

ACTIONS = st.lists(
    st.sampled_from(["open", "data", "end", "reset", "ping", "settings", "window", "respond", "garbage"]),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(ACTIONS)
def test_any_client_action_order(actions: list[str]) -> None:
    server, client = pair(clock=Clock())
    open_streams: list[int] = []
    for action in actions:
        try:
            if action == "open":
                sid = client.get_next_available_stream_id()
                client.send_headers(sid, HEAD)
                open_streams.append(sid)
            elif action == "data" and open_streams:
                client.send_data(open_streams[-1], b"d" * 10)
            elif action == "end" and open_streams:
                client.end_stream(open_streams[-1])
            elif action == "reset" and open_streams:
                client.reset_stream(open_streams.pop())
            elif action == "ping":
                client.ping(b"12345678")
            elif action == "settings":
                client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 100})
            elif action == "window":
                client.increment_flow_control_window(100)
            elif action == "respond" and open_streams:
                server.send(Response(open_streams[0], 200, []))
                server.send(Data(open_streams[0], b"r" * 500, True))
            elif action == "garbage":
                client._data_to_send += b"\x00\x00\x01\x09\x00\x00\x00\x00\x07!"  # CONTINUATION out of place
        except (h2.exceptions.ProtocolError, LocalProtocolError):
            pass
        try:
            events, _ = exchange(server, client)
        except h2.exceptions.ProtocolError:
            return  # the client side gave up (GOAWAY received)
        for event in events:
            assert isinstance(event, Request | Body | EndBody | StreamReset | PeerGoingAway | Rejected)
        if server.closed:
            return


def test_recent_ids_keep_the_last_ones_added() -> None:
    recent = RecentIds(3)
    for sid in (1, 3, 5, 3):  # adding a known id again does not refresh or duplicate it
        recent.add(sid)
    assert [recent.has(sid) for sid in (1, 3, 5, 7)] == [True, True, True, False]
    recent.add(7)
    assert [recent.has(sid) for sid in (1, 3, 5, 7)] == [False, True, True, True]
    for sid in range(9, 2001, 2):
        recent.add(sid)
    assert [recent.has(sid) for sid in (1995, 1997, 1999, 1993)] == [True, True, True, False]
