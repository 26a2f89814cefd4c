"""WebSockets over HTTP/2 (RFC 8441), sans-I/O: the extended CONNECT as ``H2Server`` sees it and the
websocket framing carried as DATA, with an h2 client connection as the peer."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from websockets.frames import BINARY, CLOSE, TEXT, Close, Frame

from squall.events import Body, Data, EndBody, Request, Response, StreamReset
from squall.protocol.http2 import H2Server
from squall.protocol.websocket import CloseReceived, HandshakeError, WebSocketServer, check_handshake
from tests.protocol.h2pair import exchange

ENABLE_CONNECT_PROTOCOL = h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL
CONNECT = [
    (b":method", b"CONNECT"),
    (b":protocol", b"websocket"),
    (b":scheme", b"https"),
    (b":path", b"/chat?room=1"),
    (b":authority", b"example.com"),
    (b"sec-websocket-version", b"13"),
    (b"sec-websocket-protocol", b"chat, v2"),
]


def pair(enable: bool = True) -> tuple[H2Server, h2.connection.H2Connection]:
    server = H2Server(enable_connect_protocol=enable, default_headers=lambda: b"server: test\r\n")
    server.initiate()
    config = h2.config.H2Configuration(
        client_side=True, header_encoding=None, validate_outbound_headers=False
    )
    client = h2.connection.H2Connection(config)
    client.initiate_connection()
    exchange(server, client)
    return server, client


def masked(frame: Frame) -> bytes:
    return frame.serialize(mask=True, extensions=[])


def test_settings_advertise_extended_connect() -> None:
    _, client = pair()
    assert client.remote_settings[ENABLE_CONNECT_PROTOCOL] == 1
    _, plain = pair(enable=False)
    assert plain.remote_settings.get(ENABLE_CONNECT_PROTOCOL, 0) == 0


def test_extended_connect_becomes_request_with_upgrade() -> None:
    server, client = pair()
    client.send_headers(1, CONNECT)
    events, _ = exchange(server, client)
    assert len(events) == 1
    request = events[0]
    assert isinstance(request, Request)
    assert (request.method, request.raw_path, request.query_string) == ("CONNECT", b"/chat", b"room=1")
    assert request.http_version == "2"
    assert request.upgrade == b"websocket"
    assert (b"host", b"example.com") in request.headers
    offer = check_handshake(request.method, "2", request.headers, extended_connect=True)
    assert offer.key is None
    assert offer.subprotocols == ["chat", "v2"]
    assert offer.response_headers("chat") == [(b"sec-websocket-protocol", b"chat")]


def test_extended_connect_needs_version_13() -> None:
    headers = [(b"host", b"example.com"), (b"sec-websocket-version", b"8")]
    with pytest.raises(HandshakeError) as info:
        check_handshake("CONNECT", "2", headers, extended_connect=True)
    assert info.value.status == 400
    assert info.value.headers == [(b"sec-websocket-version", b"13")]


def test_plain_connect_is_reset() -> None:
    server, client = pair()
    client.send_headers(1, [(b":method", b"CONNECT"), (b":authority", b"example.com:443")])
    events, client_events = exchange(server, client)
    assert events == []
    assert any(isinstance(e, h2.events.StreamReset) for e in client_events)


def test_websocket_frames_travel_as_data_both_ways() -> None:
    server, client = pair()
    client.send_headers(1, CONNECT)
    exchange(server, client)
    server.send(Response(1, 200, [(b"sec-websocket-protocol", b"chat")]))
    server.send(Data(1, b"", False))
    _, client_events = exchange(server, client)
    head = next(e for e in client_events if isinstance(e, h2.events.ResponseReceived))
    assert (b":status", b"200") in head.headers
    assert not any(name == b"sec-websocket-accept" for name, _ in head.headers)
    assert not any(isinstance(e, h2.events.StreamEnded) for e in client_events)

    ws = WebSocketServer()
    client.send_data(1, masked(Frame(TEXT, b"hello")) + masked(Frame(BINARY, b"\x00\xff")))
    events, _ = exchange(server, client)
    data = b"".join(e.data for e in events if isinstance(e, Body))
    assert ws.receive_data(data) == ["hello", b"\x00\xff"]
    ws.send_text("hi")
    server.send(Data(1, ws.data_to_send(), False))
    _, client_events = exchange(server, client)
    received = b"".join(e.data or b"" for e in client_events if isinstance(e, h2.events.DataReceived))
    assert received == Frame(TEXT, b"hi").serialize(mask=False, extensions=[])

    # the closing handshake, then END_STREAM both ways
    ws.send_close(4001, "bye")
    server.send(Data(1, ws.data_to_send(), False))
    _, client_events = exchange(server, client)
    received = b"".join(e.data or b"" for e in client_events if isinstance(e, h2.events.DataReceived))
    assert Close.parse(received[2:]) == Close(4001, "bye")
    client.send_data(1, masked(Frame(CLOSE, Close(4001, "bye").serialize())), end_stream=True)
    events, _ = exchange(server, client)
    data = b"".join(e.data for e in events if isinstance(e, Body))
    assert ws.receive_data(data) == [CloseReceived(4001, "bye")]
    assert isinstance(events[-1], EndBody)
    assert ws.eof_sent
    server.send(Data(1, b"", True))
    _, client_events = exchange(server, client)
    assert any(isinstance(e, h2.events.StreamEnded) for e in client_events)


def test_denial_ends_the_stream() -> None:
    server, client = pair()
    client.send_headers(1, CONNECT)
    exchange(server, client)
    server.send(Response(1, 403, [(b"content-length", b"0")]))
    server.send(Data(1, b"", True))
    _, client_events = exchange(server, client)
    head = next(e for e in client_events if isinstance(e, h2.events.ResponseReceived))
    assert (b":status", b"403") in head.headers
    assert any(isinstance(e, h2.events.StreamEnded) for e in client_events)


def test_reset_of_a_websocket_stream() -> None:
    server, client = pair()
    client.send_headers(1, CONNECT)
    exchange(server, client)
    client.reset_stream(1)
    events, _ = exchange(server, client)
    assert events == [StreamReset(1, 0)]
