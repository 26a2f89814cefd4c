"""The ASGI websocket session: through a fake channel, and through the real connection objects
(HTTP/1.1 upgrade → WebSocketConnection) over a fake transport on a real event loop."""

from __future__ import annotations

import asyncio
import base64
import os
from dataclasses import replace
from http import HTTPStatus
from typing import Any

import h2.config
import h2.connection
import pytest
from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.protocol import CLIENT, OPEN, Protocol

from squall.asgi.types import ASGIMessageError, ClientDisconnected
from squall.asgi.websocket import WebSocketSession
from squall.config import Config, WebSocketSettings
from squall.events import Headers
from squall.server.accept import serving_state
from squall.server.http1 import HTTP1Connection
from squall.server.http2 import H2Connection
from squall.server.state import ServerState, scope_template
from squall.server.websocket import WebSocketConnection

# ---------------------------------------------------------------- the session, fake channel


class FakeChannel:
    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.write_paused = False
        self.calls: list[tuple[Any, ...]] = []
        self.finished = asyncio.Event()

    def accept(self, subprotocol: str | None, headers: Headers) -> None:
        self.calls.append(("accept", subprotocol, headers))

    def send_message(self, data: str | bytes) -> None:
        self.calls.append(("send", data))

    def close(self, code: int, reason: str) -> None:
        self.calls.append(("close", code, reason))

    def respond(self, status: int, headers: Headers, body: bytes, more: bool) -> None:
        self.calls.append(("respond", status, headers, body, more))

    def respond_body(self, body: bytes, more: bool) -> None:
        self.calls.append(("body", body, more))

    async def drain(self) -> None:
        self.calls.append(("drain",))

    def message_consumed(self) -> None:
        self.calls.append(("consumed",))

    def abort(self) -> None:
        self.calls.append(("abort",))

    def session_finished(self, session: WebSocketSession) -> None:
        self.finished.set()


SCOPE = {"type": "websocket", "subprotocols": ["chat"], "path": "/"}


async def run_session(app: Any, feed: Any = None) -> tuple[FakeChannel, WebSocketSession]:
    channel = FakeChannel()
    session = WebSocketSession(channel, app, dict(SCOPE))
    session.start()
    for _ in range(5):  # let the app reach its first wait (tasks start lazily before 3.12)
        await asyncio.sleep(0)
    if feed is not None:
        feed(session)
    await asyncio.wait_for(channel.finished.wait(), 5)
    return channel, session


async def test_connect_accept_messages_disconnect() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(await receive())
        await send({"type": "websocket.accept", "subprotocol": "chat", "headers": [(b"X-A", b"1")]})
        while True:
            message = await receive()
            seen.append(message)
            if message["type"] == "websocket.disconnect":
                return

    def feed(session: WebSocketSession) -> None:
        session.on_message("hi")
        session.on_message(b"\x00")
        session.on_close(4000, "bye")

    channel, _ = await run_session(app, feed)
    assert seen == [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "hi"},
        {"type": "websocket.receive", "bytes": b"\x00"},
        {"type": "websocket.disconnect", "code": 4000, "reason": "bye"},
    ]
    assert channel.calls[0] == ("accept", "chat", [(b"x-a", b"1")])
    assert ("consumed",) in channel.calls
    assert not any(call[0] == "close" for call in channel.calls)  # the peer closed first


async def test_messages_reach_a_waiting_receive() -> None:
    got: list[Any] = []
    ready = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        ready.set()
        got.append(await receive())

    channel = FakeChannel()
    session = WebSocketSession(channel, app, dict(SCOPE))
    session.start()
    await ready.wait()
    await asyncio.sleep(0)  # let the app block in receive()
    session.on_message("late")
    await asyncio.wait_for(channel.finished.wait(), 5)
    assert got == [{"type": "websocket.receive", "text": "late"}]
    assert channel.calls[-1] == ("close", 1000, "")  # returned after accept: close 1000


async def test_close_before_accept_is_403() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 1000, "reason": "no"})

    channel, _ = await run_session(app)
    assert channel.calls[0][:2] == ("respond", 403)


async def test_int_enum_close_code_and_denial_status_count_as_their_values() -> None:
    async def closes(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": CloseCode.GOING_AWAY})

    channel, _ = await run_session(closes)
    assert channel.calls[-1] == ("close", 1001, "") and type(channel.calls[-1][1]) is int

    async def denies(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": HTTPStatus.FORBIDDEN})
        await send({"type": "websocket.http.response.body", "body": b"no"})

    channel, _ = await run_session(denies)
    assert channel.calls[0][:2] == ("respond", 403)


async def test_raise_before_accept_is_500_and_after_is_1011() -> None:
    async def before(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    async def after(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        raise RuntimeError("boom")

    channel, _ = await run_session(before)
    assert channel.calls[0][:2] == ("respond", 500)
    channel, _ = await run_session(after)
    assert channel.calls[-1] == ("close", 1011, "")


async def test_return_without_accepting_is_500() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()

    channel, _ = await run_session(app)
    assert channel.calls[0][:2] == ("respond", 500)


async def test_denial_response() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 401, "headers": [(b"a", b"b")]})
        await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"way"})

    channel, _ = await run_session(app)
    assert channel.calls == [
        ("respond", 401, [(b"a", b"b")], b"", True),
        ("body", b"no ", True),
        ("body", b"way", False),
    ]


async def test_unfinished_denial_response_aborts() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 401})

    channel, _ = await run_session(app)
    assert channel.calls[-1] == ("abort",)


async def test_send_after_disconnect_or_close_raises_oserror() -> None:
    errors: list[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4001, "reason": "r"})
        try:
            await send({"type": "websocket.send", "text": "x"})
        except OSError as exc:
            errors.append(exc)
        message = await receive()  # waits for the peer's answer
        errors.append(AssertionError(message))
        try:
            await send({"type": "websocket.send", "text": "x"})
        except OSError as exc:
            errors.append(exc)

    channel = FakeChannel()
    session = WebSocketSession(channel, app, dict(SCOPE))
    session.start()
    await asyncio.sleep(0)
    session.on_close(4001, "r")
    await asyncio.wait_for(channel.finished.wait(), 5)
    assert isinstance(errors[0], ClientDisconnected) and isinstance(errors[0], OSError)
    assert errors[1].args[0] == {"type": "websocket.disconnect", "code": 4001, "reason": "r"}
    assert isinstance(errors[2], ClientDisconnected)
    assert channel.calls[-1] == ("close", 4001, "r")


BAD_MESSAGES = [
    ({"type": "websocket.send", "text": "x"}, None, "before 'websocket.accept'"),
    ({"no": "type"}, None, "'type' key"),
    ({"type": "websocket.bogus"}, None, "expected 'websocket.accept'"),
    ({"type": "websocket.accept", "subprotocol": 3}, None, "token str"),
    ({"type": "websocket.accept", "headers": [(b"upgrade", b"x")]}, None, "set by the server"),
    ({"type": "websocket.accept", "headers": [("str", "str")]}, None, "must be bytes"),
    ({"type": "websocket.http.response.start", "status": 99}, None, "'status'"),
    ({"type": "websocket.close", "code": 1005}, None, "cannot be sent"),
    ({"type": "websocket.send"}, "accepted", "'bytes' or 'text'"),
    ({"type": "websocket.send", "text": "a", "bytes": b"b"}, "accepted", "both"),
    ({"type": "websocket.send", "text": b"a"}, "accepted", "'text' must be a str"),
    ({"type": "websocket.send", "bytes": "a"}, "accepted", "'bytes' must be bytes"),
    ({"type": "websocket.accept"}, "accepted", "expected 'websocket.send' or 'websocket.close'"),
    ({"type": "websocket.close", "code": "1000"}, "accepted", "'code' must be an int"),
    ({"type": "websocket.close", "code": True}, "accepted", "'code' must be an int"),
    ({"type": "websocket.close", "reason": "x" * 124}, "accepted", "123 bytes"),
    ({"type": "websocket.close", "reason": 5}, "accepted", "'reason' must be a str"),
    ({"type": "websocket.http.response.body"}, "responding", "expected 'websocket.http.response.body'"),
]


@pytest.mark.parametrize(("message", "phase", "error"), BAD_MESSAGES)
async def test_invalid_messages(message: Any, phase: str | None, error: str) -> None:
    raised: list[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        if phase == "accepted":
            await send({"type": "websocket.accept"})
        elif phase == "responding":
            await send({"type": "websocket.http.response.start", "status": 403})
            message["type"] = "websocket.send"
        try:
            await send(message)
        except ASGIMessageError as exc:
            raised.append(exc)
            raise

    await run_session(app)
    assert raised and error in str(raised[0])


async def test_bytearray_payload_and_header_subprotocol() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept", "headers": [(b"sec-websocket-protocol", b"chat")]})
        await send({"type": "websocket.send", "bytes": bytearray(b"ab")})
        await send({"type": "websocket.close", "reason": None})

    channel, _ = await run_session(app)
    assert channel.calls[0] == ("accept", "chat", [])
    assert channel.calls[1] == ("send", b"ab")
    assert channel.calls[2] == ("close", 1000, "")


# ---------------------------------------------------------------- through the real connection


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.protocol: asyncio.BaseProtocol | None = None
        self.written = bytearray()
        self.reading = True
        self.closed = False
        self.aborted = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 80)}.get(name, default)

    def write(self, data: Any) -> None:
        self.written += data

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.written += chunk

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            assert self.protocol is not None
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.aborted = True
        self.close()

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol

    def take(self) -> bytes:
        data = bytes(self.written)
        self.written.clear()
        return data


HANDSHAKE = (
    b"GET /chat?x=1 HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
)


class Peer:
    """A websockets client protocol wired to the fake transport."""

    def __init__(self, transport: FakeTransport) -> None:
        self.transport = transport
        self.ws = Protocol(CLIENT, state=OPEN, max_size=None)

    def send(self, method: str, *args: Any) -> None:
        getattr(self.ws, method)(*args)
        data = b"".join(self.ws.data_to_send())
        protocol = self.transport.get_protocol()
        protocol.data_received(data)  # type: ignore[attr-defined]

    def flush(self) -> None:
        protocol = self.transport.get_protocol()
        protocol.data_received(b"".join(self.ws.data_to_send()))  # type: ignore[attr-defined]

    def frames(self) -> list[Frame]:
        self.ws.receive_data(self.transport.take())
        return [f for f in self.ws.events_received() if isinstance(f, Frame)]


def make_server(app: Any, **ws: Any) -> ServerState:
    config = Config()
    config = replace(config, websocket=replace(WebSocketSettings(), **ws))
    return serving_state(
        config, app, asyncio.get_running_loop(), lambda: b"server: squall\r\n", {"shared": 1}
    )


async def upgrade(server: ServerState) -> tuple[FakeTransport, Peer]:
    transport = FakeTransport()
    connection = HTTP1Connection(server)
    transport.set_protocol(connection)
    connection.connection_made(transport)
    key = base64.b64encode(os.urandom(16))
    connection.data_received(HANDSHAKE + key + b"\r\n\r\n")
    for _ in range(5):
        await asyncio.sleep(0)
    head, _, rest = transport.take().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    transport.written[:0] = rest
    return transport, Peer(transport)


async def echo_app(scope: Any, receive: Any, send: Any) -> None:
    assert scope["type"] == "websocket" and scope["scheme"] == "ws"
    assert scope["path"] == "/chat" and scope["query_string"] == b"x=1"
    assert scope["state"] == {"shared": 1}
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")})


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_connection_echo_and_accounting() -> None:
    server = make_server(echo_app)
    transport, peer = await upgrade(server)
    assert server.active_requests == 1
    assert [type(c).__name__ for c in server.connections] == ["WebSocketConnection"]
    peer.send("send_text", b"hello")
    await settle()
    assert [bytes(f.data) for f in peer.frames()] == [b"hello"]
    peer.send("send_close", 1000, "done")
    await settle()
    assert transport.closed
    assert server.active_requests == 0
    assert not server.connections


async def test_a_finished_h2_websocket_session_leaves_the_running_set() -> None:
    # RFC 8441: an h2 client opens a websocket stream, exchanges a message and closes; once the
    # app has returned, nothing of the session stays in server.running (the drain's task list)
    server = make_server(echo_app)
    transport = FakeTransport()
    conn = H2Connection(server, transport, scope_template(server, transport))
    transport.set_protocol(conn)
    conn.start(b"")
    client = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None, validate_outbound_headers=False)
    )
    client.initiate_connection()

    async def exchange() -> None:
        conn.data_received(client.data_to_send())
        await settle()
        client.receive_data(transport.take())

    await exchange()
    head = [(b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"http")]
    head += [(b":path", b"/chat?x=1"), (b":authority", b"h"), (b"sec-websocket-version", b"13")]
    client.send_headers(1, head)
    await exchange()
    assert server.running  # the session runs
    client.send_data(1, Frame(Opcode.TEXT, b"hi").serialize(mask=True, extensions=[]))
    client.send_data(1, Frame(Opcode.CLOSE, Close(1000, "").serialize()).serialize(mask=True, extensions=[]))
    await exchange()
    await exchange()
    assert not conn.streams  # the stream is over and the app has returned
    assert server.active_requests == 0
    assert not server.running


async def test_max_queue_pauses_reading_until_the_app_catches_up() -> None:
    release = asyncio.Event()
    got: list[Any] = []

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await release.wait()
        while (message := await receive())["type"] == "websocket.receive":
            got.append(message["bytes"])

    server = make_server(slow, ws_max_queue=3)
    transport, peer = await upgrade(server)
    for i in range(3):
        peer.send("send_binary", b"%d" % i)
    assert not transport.reading
    release.set()
    await settle()
    assert transport.reading
    assert got == [b"0", b"1", b"2"]


async def test_write_backpressure_makes_send_wait() -> None:
    sent = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "bytes": b"x"})
        sent.set()
        await receive()

    server = make_server(app)
    transport = FakeTransport()
    connection = HTTP1Connection(server)
    transport.set_protocol(connection)
    connection.connection_made(transport)
    connection.pause_writing()  # the client is not reading
    connection.data_received(HANDSHAKE + base64.b64encode(os.urandom(16)) + b"\r\n\r\n")
    await settle()
    assert not sent.is_set()
    ws = transport.get_protocol()
    assert isinstance(ws, WebSocketConnection)
    ws.resume_writing()
    await settle()
    assert sent.is_set()
    ws.shutdown()
    await settle()


async def test_shutdown_closes_with_1001_and_the_app_sees_it() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        seen.append(await receive())

    server = make_server(app)
    transport, peer = await upgrade(server)
    for connection in list(server.connections):
        connection.shutdown()
    frames = peer.frames()
    assert frames[0].opcode is Opcode.CLOSE and Close.parse(frames[0].data).code == 1001
    peer.flush()  # the client echoes the close
    await settle()
    assert seen == [{"type": "websocket.disconnect", "code": 1001, "reason": "server shutting down"}]
    assert transport.closed and server.active_requests == 0


async def test_ping_timeout_fails_the_connection() -> None:
    server = make_server(echo_app, ws_ping_interval=0.01, ws_ping_timeout=0.01)
    transport, peer = await upgrade(server)
    while not transport.closed:
        await asyncio.sleep(0.005)
    frames = peer.frames()
    assert frames[0].opcode is Opcode.PING
    assert frames[-1].opcode is Opcode.CLOSE and Close.parse(frames[-1].data).code == 1011
    await settle()
    assert server.active_requests == 0


async def test_pong_keeps_the_connection_alive() -> None:
    server = make_server(echo_app, ws_ping_interval=0.01, ws_ping_timeout=0.05)
    transport, peer = await upgrade(server)
    pings = 0
    while pings < 3:
        await asyncio.sleep(0.005)
        for frame in peer.frames():
            assert frame.opcode is Opcode.PING
            pings += 1
            peer.send("send_pong", frame.data)
    assert not transport.closed
    peer.send("send_close", 1000, "")
    await settle()


async def test_early_frames_before_accept_are_kept() -> None:
    got: list[Any] = []
    go = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await go.wait()
        await send({"type": "websocket.accept"})
        got.append(await receive())

    server = make_server(app)
    transport = FakeTransport()
    connection = HTTP1Connection(server)
    transport.set_protocol(connection)
    connection.connection_made(transport)
    peer = Peer(transport)
    peer.ws.send_text(b"early")
    frame = b"".join(peer.ws.data_to_send())
    connection.data_received(HANDSHAKE + base64.b64encode(os.urandom(16)) + b"\r\n\r\n" + frame)
    await settle()
    go.set()
    await settle()
    assert got == [{"type": "websocket.receive", "text": "early"}]
