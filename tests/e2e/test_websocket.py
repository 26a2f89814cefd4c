"""WebSockets end to end: a real squall process, the ``websockets`` client library and raw sockets."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import zlib
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from .conftest import StartServer
from .harness import Server

APP = "tests.e2e.ws_apps:app"


@pytest.fixture(scope="module")
def ws_server() -> Iterator[Server]:
    running = Server(app=APP).start()
    try:
        yield running
    finally:
        running.stop()
        running.kill()
        print(f"--- stderr of the websocket server:\n{running.log()}")


def ws_url(server: Server, path: str) -> str:
    return f"ws://{server.host}:{server.port}{path}"


def open_ws(server: Server, path: str = "/echo", **kwargs: object) -> ClientConnection:
    kwargs.setdefault("open_timeout", 10)
    kwargs.setdefault("close_timeout", 10)
    return connect(ws_url(server, path), **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- a raw websocket client


class RawWS:
    """Handshake and frames over a plain socket, for what a polite client never sends."""

    def __init__(self, server: Server, path: str = "/echo", headers: str | None = None) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=10)
        self.buffer = b""
        key = base64.b64encode(os.urandom(16)).decode()
        if headers is None:
            headers = (
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            )
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n{headers}\r\n".encode())
        self.head = self._read_head()

    def _read_head(self) -> bytes:
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return head

    @property
    def status(self) -> int:
        return int(self.head.split(b" ", 2)[1])

    def read_rest(self) -> bytes:
        data = self.buffer
        while chunk := self.sock.recv(65536):
            data += chunk
        return data

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True, masked: bool = True) -> None:
        self.sock.sendall(self.frame(opcode, payload, fin, masked))

    @staticmethod
    def frame(opcode: int, payload: bytes, fin: bool = True, masked: bool = True) -> bytes:
        head = bytes(((0x80 if fin else 0) | opcode,))
        mask_bit = 0x80 if masked else 0
        if len(payload) < 126:
            head += bytes((mask_bit | len(payload),))
        else:
            head += bytes((mask_bit | 127,)) + struct.pack("!Q", len(payload))
        if masked:
            mask = os.urandom(4)
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            head += mask
        return head + payload

    def _exact(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def recv_frame(self) -> tuple[int, bytes]:
        b1, b2 = self._exact(2)
        length = b2 & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._exact(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._exact(8))[0]
        return b1 & 0x0F, self._exact(length)

    def expect_close(self) -> tuple[int, str]:
        while True:
            opcode, payload = self.recv_frame()
            if opcode == 8:
                return struct.unpack("!H", payload[:2])[0], payload[2:].decode()

    def at_eof(self) -> bool:
        return self.sock.recv(1) == b""

    def close(self) -> None:
        self.sock.close()


# ---------------------------------------------------------------- messages


def test_echo_text_and_bytes(ws_server: Server) -> None:
    with open_ws(ws_server) as ws:
        ws.send("hello")
        assert ws.recv() == "hello"
        ws.send(b"\x00\xff" * 40000)
        assert ws.recv() == b"\x00\xff" * 40000
        ws.send("é" * 100)
        assert ws.recv() == "é" * 100


def test_fragmented_messages_are_reassembled(ws_server: Server) -> None:
    with open_ws(ws_server, compression=None) as ws:
        ws.send(["frag", "men", "ted é"])
        assert ws.recv() == "fragmented é"
        ws.send([b"a", b"b", b"c"])
        assert ws.recv() == b"abc"


def test_fragments_with_interleaved_ping(ws_server: Server) -> None:
    raw = RawWS(ws_server)
    assert raw.status == 101
    raw.send_frame(0x1, b"par", fin=False)
    raw.send_frame(0x9, b"are you there")
    raw.send_frame(0x0, b"ts")
    assert raw.recv_frame() == (0xA, b"are you there")
    assert raw.recv_frame() == (0x1, b"parts")
    raw.close()


def test_compression_negotiated_and_used(ws_server: Server) -> None:
    with open_ws(ws_server) as ws:
        assert ws.response is not None
        assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
        message = "squall " * 50000
        ws.send(message)
        assert ws.recv() == message


def test_no_compression_when_disabled(start_server: StartServer) -> None:
    server = start_server("--no-ws-per-message-deflate", app=APP)
    with open_ws(server) as ws:
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        ws.send("plain")
        assert ws.recv() == "plain"


def test_client_ping_answered(ws_server: Server) -> None:
    with open_ws(ws_server) as ws:
        ws.ping(b"hi").wait(10)
        ws.send("still open")
        assert ws.recv() == "still open"


# ---------------------------------------------------------------- closing


def test_server_close_code_and_reason_then_send_raises(ws_server: Server) -> None:
    mark = ws_server.mark()
    with open_ws(ws_server) as ws:
        ws.send("close-me")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv()
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (4001, "bye now")
    ws_server.wait_for_line(r"APP after close websocket.disconnect 4001", start=mark)
    ws_server.wait_for_line(r"APP send after close raised ClientDisconnected", start=mark)


def test_client_close_code_and_reason_reach_the_app(ws_server: Server) -> None:
    mark = ws_server.mark()
    with open_ws(ws_server) as ws:
        ws.close(4002, "client says bye")
    assert ws.close_code == 4002
    ws_server.wait_for_line(r"APP disconnect 4002 'client says bye'", start=mark)


def test_abrupt_disconnect_is_1006(ws_server: Server) -> None:
    mark = ws_server.mark()
    raw = RawWS(ws_server, "/hold")
    assert raw.status == 101
    ws_server.wait_for_line("APP holding", start=mark)
    raw.close()
    ws_server.wait_for_line(r"APP hold ended websocket.disconnect 1006", start=mark)


def test_invalid_utf8_closes_1007(ws_server: Server) -> None:
    raw = RawWS(ws_server)
    raw.send_frame(0x1, b"bad \xff\xfe")
    assert raw.expect_close()[0] == 1007
    assert raw.at_eof()
    raw.close()


def test_protocol_error_closes_1002(ws_server: Server) -> None:
    raw = RawWS(ws_server)
    raw.send_frame(0x2, b"unmasked", masked=False)
    assert raw.expect_close()[0] == 1002
    raw.close()


def test_messages_before_a_protocol_error_are_echoed_first(ws_server: Server) -> None:
    # Autobahn 3.2: a message, a frame with RSV2 set and a ping, in one write
    raw = RawWS(ws_server)
    raw.sock.sendall(raw.frame(0x1, b"Hello") + raw.frame(0x21, b"Hello") + raw.frame(0x9, b""))
    assert raw.recv_frame() == (0x1, b"Hello")
    assert raw.expect_close()[0] == 1002  # and no pong before it
    assert raw.at_eof()
    raw.close()


def test_close_between_fragments_is_answered_1000(ws_server: Server) -> None:
    # Autobahn 7.1.5
    raw = RawWS(ws_server)
    frames = raw.frame(0x1, b"frag", fin=False) + raw.frame(0x8, struct.pack("!H", 1000))
    raw.sock.sendall(frames + raw.frame(0x0, b"ment"))
    assert raw.recv_frame() == (0x8, struct.pack("!H", 1000))
    assert raw.at_eof()
    raw.close()


def test_invalid_utf8_closes_before_the_frame_ends(ws_server: Server) -> None:
    # Autobahn 6.4.3: the frame's last bytes are never sent; the close comes anyway
    raw = RawWS(ws_server)
    frame = raw.frame(0x1, "κόσμε".encode() + b"\xf4\x90\x80\x80" + b"edited")
    raw.sock.sendall(frame[:-6])
    assert raw.expect_close()[0] == 1007
    raw.close()


def test_oversize_message_closes_1009(start_server: StartServer) -> None:
    server = start_server("--ws-max-size", "1024", app=APP)
    with open_ws(server, compression=None) as ws:
        ws.send(b"x" * 1024)
        assert ws.recv() == b"x" * 1024
        ws.send(b"x" * 1025)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


def test_deflate_bomb_closes_1009(start_server: StartServer) -> None:
    server = start_server("--ws-max-size", "65536", app=APP)
    raw = RawWS(
        server,
        headers=(
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\n"
        ),
    )
    assert raw.status == 101
    assert b"permessage-deflate" in raw.head.lower()
    compressor = zlib.compressobj(wbits=-12)
    bomb = compressor.compress(b"\0" * 50_000_000) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert len(bomb) < 65536
    raw.send_frame(0x42, bomb[:-4])  # RSV1: compressed
    assert raw.expect_close()[0] == 1009
    raw.close()


def test_app_raising_after_accept_closes_1011(ws_server: Server) -> None:
    with open_ws(ws_server, "/raise-after") as ws:
        ws.send("go")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011


# ---------------------------------------------------------------- handshake


def test_scope_subprotocols_and_accept_headers(ws_server: Server) -> None:
    with open_ws(ws_server, "/info?a=1", subprotocols=["chat", "superchat"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "chat"
        assert ws.response is not None and ws.response.headers["x-squall-test"] == "yes"
        scope = json.loads(ws.recv())
    assert scope["type"] == "websocket"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/info"
    assert scope["raw_path"] == "/info"
    assert scope["query_string"] == "a=1"
    assert scope["http_version"] == "1.1"
    assert scope["subprotocols"] == ["chat", "superchat"]
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert scope["asgi"]["spec_version"] == "2.5"
    assert scope["has_client"]
    assert "sec-websocket-key" in scope["header_names"]


def test_denial_response(ws_server: Server) -> None:
    with pytest.raises(InvalidStatus) as info:
        open_ws(ws_server, "/deny")
    response = info.value.response
    assert response.status_code == 401
    assert response.headers["x-denied"] == "1"
    assert response.body == b"go away"


def test_close_before_accept_is_403(ws_server: Server) -> None:
    with pytest.raises(InvalidStatus) as info:
        open_ws(ws_server, "/reject")
    assert info.value.response.status_code == 403


def test_app_raising_before_accept_is_500(ws_server: Server) -> None:
    with pytest.raises(InvalidStatus) as info:
        open_ws(ws_server, "/raise-before")
    assert info.value.response.status_code == 500


@pytest.mark.parametrize(
    ("headers", "version_header"),
    [
        ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n", False),
        (
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: c2hvcnQ=\r\n"
            "Sec-WebSocket-Version: 13\r\n",
            False,
        ),
        (
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 8\r\n",
            True,
        ),
        (
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            True,
        ),
    ],
    ids=["no-key", "short-key", "version-8", "no-version"],
)
def test_bad_handshake_is_400(ws_server: Server, headers: str, version_header: bool) -> None:
    raw = RawWS(ws_server, headers=headers)
    assert raw.status == 400
    assert (b"sec-websocket-version: 13" in raw.head.lower()) == version_header
    raw.read_rest()
    raw.close()


def test_ws_none_serves_upgrade_as_http(start_server: StartServer) -> None:
    server = start_server("--ws", "none", app=APP)
    raw = RawWS(server, "/echo")
    assert raw.status == 200
    assert raw.buffer.endswith(b"http /echo") or b"http /echo" in raw.buffer + raw.sock.recv(100)
    raw.close()


def test_upgrade_pipelined_behind_http_request(ws_server: Server) -> None:
    sock = socket.create_connection((ws_server.host, ws_server.port), timeout=10)
    sock.sendall(
        b"GET /plain HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    data = b""
    while b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    first, _, second = data.partition(b"http /plain")
    assert first.startswith(b"HTTP/1.1 200")
    assert b"HTTP/1.1 101" in second
    sock.close()


# ---------------------------------------------------------------- frameworks, pings, shutdown


def test_starlette_websocket_endpoint(start_server: StartServer) -> None:
    server = start_server(app="tests.e2e.ws_apps:starlette_app")
    with open_ws(server, "/ws/squall", subprotocols=["v1"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "v1"
        ws.send("one")
        assert json.loads(ws.recv()) == {"hello": "squall", "got": "one"}
        ws.send("two")
        assert json.loads(ws.recv()) == {"hello": "squall", "got": "two"}


def test_graceful_shutdown_closes_with_1001(start_server: StartServer) -> None:
    server = start_server(app=APP)
    mark = server.mark()
    with open_ws(server, "/hold") as ws:
        server.wait_for_line("APP holding", start=mark)
        server.terminate()
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    server.wait_for_line(r"APP hold ended websocket.disconnect 1001", start=mark)
    assert server.wait_exit() == 0


def test_server_pings_and_closes_a_peer_that_never_pongs(start_server: StartServer) -> None:
    server = start_server("--ws-ping-interval", "0.2", "--ws-ping-timeout", "0.3", app=APP)
    raw = RawWS(server, "/hold")
    assert raw.status == 101
    opcode, _ = raw.recv_frame()
    assert opcode == 0x9  # a ping, which we never answer
    assert raw.expect_close()[0] == 1011
    assert raw.at_eof()
    raw.close()


def test_server_pings_answered_keep_the_connection(start_server: StartServer) -> None:
    server = start_server("--ws-ping-interval", "0.1", "--ws-ping-timeout", "0.5", app=APP)
    raw = RawWS(server)
    for _ in range(3):
        opcode, payload = raw.recv_frame()
        assert opcode == 0x9
        raw.send_frame(0xA, payload)
    raw.send_frame(0x1, b"alive")
    while (frame := raw.recv_frame())[0] == 0x9:
        raw.send_frame(0xA, frame[1])
    assert frame == (0x1, b"alive")
    raw.close()
