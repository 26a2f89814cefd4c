"""WebSockets over HTTP/2 (RFC 8441 extended CONNECT) end to end: a raw h2 client on cleartext
prior knowledge opens a CONNECT stream with ``:protocol websocket`` and exchanges masked frames."""

from __future__ import annotations

import json
from collections.abc import Iterator

import h2.events
import h2.settings
import pytest
from websockets.frames import BINARY, CLOSE, TEXT, Close, Frame, Opcode

from .conftest import StartServer
from .h2util import H2Client, Reply
from .harness import Server

APP = "tests.e2e.ws_apps:app"
ENABLE_CONNECT_PROTOCOL = h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL


@pytest.fixture(scope="module")
def ws_server() -> Iterator[Server]:
    running = Server(["--ws-ping-interval", "off"], app=APP).start()
    try:
        yield running
    finally:
        running.stop()
        running.kill()


def parse_frames(data: bytes) -> list[Frame]:
    """Server frames (unmasked, uncompressed) from a stream's DATA."""
    frames = []
    pos = 0
    while pos < len(data):
        b1, b2 = data[pos], data[pos + 1]
        assert not b2 & 0x80, "server frames are not masked"
        length, pos = b2 & 0x7F, pos + 2
        if length == 126:
            length, pos = int.from_bytes(data[pos : pos + 2], "big"), pos + 2
        elif length == 127:
            length, pos = int.from_bytes(data[pos : pos + 8], "big"), pos + 8
        frames.append(Frame(Opcode(b1 & 0x0F), data[pos : pos + length], bool(b1 & 0x80)))
        pos += length
    return frames


class WsStream:
    """One websocket on an extended CONNECT stream of ``client``."""

    def __init__(
        self, client: H2Client, path: str = "/echo", headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self.client = client
        self.sid = client.conn.get_next_available_stream_id()
        head = [
            (b":method", b"CONNECT"),
            (b":protocol", b"websocket"),
            (b":scheme", b"http"),
            (b":path", path.encode()),
            (b":authority", b"example.com"),
            (b"sec-websocket-version", b"13"),
            *(headers or []),
        ]
        client.conn.send_headers(self.sid, head)
        client.replies[self.sid] = Reply()
        client.flush()
        self.seen = 0

    @property
    def reply(self) -> Reply:
        return self.client.replies[self.sid]

    def wait_head(self) -> Reply:
        reply = self.reply
        while not (reply.status or reply.reset is not None or self.client.closed):
            self.client.receive_once()
        return reply

    def send(self, frame: Frame, end: bool = False) -> None:
        self.client.send_body(self.sid, frame.serialize(mask=True, extensions=[]), end=end)

    def recv(self) -> Frame:
        """The next complete server frame."""
        reply = self.reply
        while True:
            frames = parse_frames(reply.body[self.seen :]) if self._complete(reply.body[self.seen :]) else []
            if frames:
                frame = frames[0]
                self.seen += len(frame.serialize(mask=False, extensions=[]))
                return frame
            assert not (reply.ended or reply.reset is not None or self.client.closed), "stream over"
            self.client.receive_once()

    @staticmethod
    def _complete(data: bytes) -> bool:
        if len(data) < 2:
            return False
        length, header = data[1] & 0x7F, 2
        if length == 126:
            header = 4
            if len(data) < header:
                return False
            length = int.from_bytes(data[2:4], "big")
        elif length == 127:
            header = 10
            if len(data) < header:
                return False
            length = int.from_bytes(data[2:10], "big")
        return len(data) >= header + length


def test_settings_advertise_extended_connect(ws_server: Server) -> None:
    client = H2Client(ws_server.port)
    while not any(isinstance(e, h2.events.RemoteSettingsChanged) for e in client.events):
        client.receive_once()
    assert client.conn.remote_settings[ENABLE_CONNECT_PROTOCOL] == 1
    client.close()


def test_echo_text_and_binary_then_client_close(ws_server: Server) -> None:
    client = H2Client(ws_server.port)
    ws = WsStream(client, "/echo", [(b"sec-websocket-protocol", b"chat, v2")])
    reply = ws.wait_head()
    assert reply.status == 200
    assert reply.header(b"sec-websocket-accept") is None
    ws.send(Frame(TEXT, "héllo".encode()))
    assert ws.recv() == Frame(TEXT, "héllo".encode())
    ws.send(Frame(BINARY, b"\x00\x01" * 40000))  # larger than one DATA frame
    assert ws.recv() == Frame(BINARY, b"\x00\x01" * 40000)
    ws.send(Frame(CLOSE, Close(1000, "done").serialize()))
    answer = ws.recv()
    assert answer.opcode == CLOSE and Close.parse(answer.data) == Close(1000, "done")
    client.wait(ws.sid)
    assert reply.ended
    ws_server.wait_for_line(r"APP disconnect 1000 'done'")
    # the connection still serves plain requests
    sid = client.request("/plain")
    assert client.wait(sid).body == b"http /plain"
    client.close()


def test_send_waits_for_the_stream_window(ws_server: Server) -> None:
    window = h2.settings.SettingCodes.INITIAL_WINDOW_SIZE
    client = H2Client(ws_server.port, settings={window: 1000})
    ws = WsStream(client)
    assert ws.wait_head().status == 200
    payload = bytes(range(256)) * 1000  # 256 times the client's stream window
    ws.send(Frame(BINARY, payload))
    ws.send(Frame(TEXT, b"after"))
    assert ws.recv() == Frame(BINARY, payload)
    assert ws.recv() == Frame(TEXT, b"after")
    data_frames = [
        e for e in client.events if isinstance(e, h2.events.DataReceived) and e.stream_id == ws.sid
    ]
    assert max(len(e.data or b"") for e in data_frames) <= 1000
    client.close()


@pytest.mark.parametrize(
    "bad_head",
    [b"\x83\x80", b"\xa1\x85"],  # reserved opcode 3; a text frame with RSV2 set (Autobahn 3.2)
    ids=["reserved-opcode", "rsv2"],
)
def test_messages_before_a_protocol_error_are_echoed_first(ws_server: Server, bad_head: bytes) -> None:
    # one DATA frame: a text message, then a frame that fails the connection, then a ping
    client = H2Client(ws_server.port)
    ws = WsStream(client)
    assert ws.wait_head().status == 200
    mark = ws_server.mark()
    bad = bad_head + b"\x00\x00\x00\x00" + b"Hello"[: bad_head[1] & 0x7F]  # zero mask
    text = Frame(TEXT, b"Hello").serialize(mask=True, extensions=[])
    ping = Frame(Opcode.PING, b"").serialize(mask=True, extensions=[])
    client.send_body(ws.sid, text + bad + ping, end=False)
    assert ws.recv() == Frame(TEXT, b"Hello")  # the app's echo leaves before the close
    close = ws.recv()
    assert close.opcode == CLOSE and Close.parse(close.data).code == 1002  # and no pong before it
    client.wait(ws.sid)
    assert ws.reply.ended
    ws_server.wait_for_line(r"APP disconnect 1002", start=mark)
    client.close()


def test_server_close_with_code_and_reason(ws_server: Server) -> None:
    client = H2Client(ws_server.port)
    ws = WsStream(client)
    assert ws.wait_head().status == 200
    ws.send(Frame(TEXT, b"close-me"))
    frame = ws.recv()
    assert frame.opcode == CLOSE and Close.parse(frame.data) == Close(4001, "bye now")
    ws.send(Frame(CLOSE, Close(4001, "bye now").serialize()))
    client.wait(ws.sid)
    assert ws.reply.ended
    ws_server.wait_for_line(r"APP after close websocket.disconnect 4001")
    client.close()


def test_subprotocol_and_scope(ws_server: Server) -> None:
    client = H2Client(ws_server.port)
    ws = WsStream(client, "/info?a=1", [(b"sec-websocket-protocol", b"chat, v2")])
    reply = ws.wait_head()
    assert reply.status == 200
    assert reply.header(b"sec-websocket-protocol") == b"chat"
    assert reply.header(b"x-squall-test") == b"yes"
    shown = json.loads(bytes(ws.recv().data))
    assert shown["type"] == "websocket"
    assert shown["http_version"] == "2"
    assert shown["scheme"] == "ws"
    assert shown["path"] == "/info"
    assert shown["query_string"] == "a=1"
    assert shown["subprotocols"] == ["chat", "v2"]
    client.close()


def test_close_before_accept_is_403(ws_server: Server) -> None:
    client = H2Client(ws_server.port)
    ws = WsStream(client, "/reject")
    reply = client.wait(ws.sid)
    assert reply.status == 403
    assert reply.ended
    client.close()


def test_denial_response(ws_server: Server) -> None:
    client = H2Client(ws_server.port)
    ws = WsStream(client, "/deny")
    reply = client.wait(ws.sid)
    assert reply.status == 401
    assert reply.header(b"x-denied") == b"1"
    assert reply.body == b"go away"
    client.close()


def test_stream_reset_is_disconnect_1006(ws_server: Server) -> None:
    client = H2Client(ws_server.port)
    ws = WsStream(client, "/hold")
    assert ws.wait_head().status == 200
    ws_server.wait_for_line(r"APP holding")
    client.conn.reset_stream(ws.sid)
    client.flush()
    ws_server.wait_for_line(r"APP hold ended websocket.disconnect 1006")
    client.close()


def test_bad_version_is_400(ws_server: Server) -> None:
    client = H2Client(ws_server.port)
    ws = WsStream(client, "/echo", [(b"sec-websocket-version", b"8")])
    reply = client.wait(ws.sid)
    assert reply.status == 400
    client.close()


def test_ws_none_refuses_extended_connect(start_server: StartServer) -> None:
    server = start_server("--ws", "none", app=APP)
    client = H2Client(server.port)
    while not any(isinstance(e, h2.events.RemoteSettingsChanged) for e in client.events):
        client.receive_once()
    assert client.conn.remote_settings.get(ENABLE_CONNECT_PROTOCOL, 0) == 0
    ws = WsStream(client)
    reply = client.wait(ws.sid)
    assert reply.reset is not None or reply.status == 400
    sid = client.request("/plain")
    assert client.wait(sid).body == b"http /plain"
    client.close()


def test_shutdown_closes_with_1001(start_server: StartServer) -> None:
    server = start_server("--ws-ping-interval", "off", app=APP)
    client = H2Client(server.port)
    ws = WsStream(client, "/hold")
    assert ws.wait_head().status == 200
    server.wait_for_line(r"APP holding")
    server.terminate()
    frame = ws.recv()
    assert frame.opcode == CLOSE and Close.parse(frame.data).code == 1001
    ws.send(Frame(CLOSE, frame.data))
    client.wait(ws.sid)
    assert ws.reply.ended
    assert server.wait_exit() == 0
    client.close()


def test_keepalive_ping_closes_a_silent_peer(start_server: StartServer) -> None:
    server = start_server("--ws-ping-interval", "0.2", "--ws-ping-timeout", "1", app=APP)
    client = H2Client(server.port)
    ws = WsStream(client, "/echo")
    assert ws.wait_head().status == 200
    ping = ws.recv()
    assert ping.opcode == Opcode.PING
    ws.send(Frame(Opcode.PONG, ping.data))  # answered: the session stays up and pings again
    ws.send(Frame(Opcode.TEXT, b"still here"))
    frames = [ws.recv(), ws.recv()]
    assert any(f.opcode == Opcode.TEXT and f.data == b"still here" for f in frames)
    assert any(f.opcode == Opcode.PING for f in frames)
    close = ws.recv()  # this time no pong: the server gives up after --ws-ping-timeout
    assert close.opcode == CLOSE and Close.parse(close.data).code == 1011
    client.close()
