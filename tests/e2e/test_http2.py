"""HTTP/2 end to end: httpx over TLS (ALPN h2), a raw h2 client over cleartext prior knowledge,
the h2c upgrade, flow control both ways, many streams, and the defences (floods, bombs, resets,
stalls, limits) answered with GOAWAY or RST_STREAM."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import socket
from collections.abc import Iterator

import h2.errors
import h2.events
import h2.settings
import httpx
import pytest
from hpack import Encoder
from hyperframe.frame import ContinuationFrame, HeadersFrame, PingFrame, RstStreamFrame, SettingsFrame

from .conftest import StartServer
from .h2util import PREFACE, Certs, H2Client, certs, https_client
from .harness import Server

__all__ = ["certs"]

ENHANCE_YOUR_CALM = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


@pytest.fixture(scope="module")
def h2c_server() -> Iterator[Server]:
    """A squall with the (deprecated, off by default) h2c upgrade turned on."""
    running = Server(["--h2c-upgrade", "--limit-request-body", "off"]).start()
    try:
        yield running
    finally:
        running.kill()


def test_httpx_h2_over_tls_many_concurrent_streams(start_server: StartServer, certs: Certs) -> None:
    server = start_server(*certs.args())

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, verify=certs.ssl_context(), http2=True) as client:
            return await asyncio.gather(*(client.get(f"/echo?n={n}") for n in range(60)))

    responses = asyncio.run(run())
    assert all(r.status_code == 200 and r.http_version == "HTTP/2" for r in responses)
    clients = {server.wait_for_line(rf'(\S+) - "GET /echo\?n={n} HTTP/2" 200')[1] for n in range(60)}
    assert len(clients) == 1  # one connection, 60 streams


def test_large_bodies_both_ways_over_tls(start_server: StartServer, certs: Certs) -> None:
    server = start_server(*certs.args())
    payload = bytes(range(256)) * 4096 * 5  # 5 MiB
    with https_client(server, certs, http2=True) as client:
        info = client.post("/body-info", content=payload).json()
        download = client.get("/big?mib=5")
    assert info["length"] == len(payload)
    assert info["sha256"] == hashlib.sha256(payload).hexdigest()
    assert len(download.content) == 5 * 1024 * 1024


def test_prior_knowledge_scope(server: Server) -> None:
    client = H2Client(server.port)
    sid = client.request("/scope?x=1", headers=[(b"cookie", b"a=1"), (b"cookie", b"b=2")])
    reply = client.wait(sid)
    client.close()
    assert reply.status == 200
    scope = json.loads(reply.body)
    assert scope["http_version"] == "2"
    assert scope["scheme"] == "http"
    assert scope["query_string"] == "x=1"
    headers = dict(scope["headers"])
    assert headers["host"] == "example.com"
    assert headers["cookie"] == "a=1; b=2"
    assert not any(name.startswith(":") for name, _ in scope["headers"])
    assert "tls" not in scope.get("extensions", {})
    assert reply.header(b"server") == b"squall"


def test_prior_knowledge_preface_split_across_reads(server: Server) -> None:
    client = H2Client(server.port, connect=False)
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.conn.initiate_connection()
    opening = client.conn.data_to_send()
    assert opening.startswith(PREFACE)
    for piece in (opening[:3], opening[3:17], opening[17:]):
        client.sock.sendall(piece)
    sid = client.request("/")
    assert client.wait(sid).body == b"hello"
    client.close()


def test_http11_still_served_with_http2_on(server: Server) -> None:
    assert httpx.get(server.url + "/").text == "hello"


def _upgrade_head(path: bytes, settings: bytes, length: int) -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: %s\r\nContent-Length: %d\r\n\r\n" % (path, settings, length)
    )


def _upgraded_client(server: Server, path: bytes, body: bytes) -> H2Client:
    """POST ``body`` to ``path`` with Upgrade: h2c; the HTTP/2 client once 101 has come back."""
    import h2.connection

    peer = h2.connection.H2Connection()
    settings = peer.initiate_upgrade_connection()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(_upgrade_head(path, settings, len(body)) + body)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    client = H2Client.__new__(H2Client)
    H2Client.__init__(client, server.port, connect=False)
    client.sock.close()
    client.sock, client.conn = sock, peer
    sock.sendall(peer.data_to_send())
    events = peer.receive_data(rest) if rest else []
    for event in events:
        client._apply(event)
    return client


def test_h2c_upgrade_is_off_by_default(server: Server) -> None:
    """RFC 9113 §3.1 deprecates Upgrade: h2c, and behind a proxy that forwards Upgrade it tunnels
    HTTP/2 past the proxy's rules (h2c smuggling): by default the request is plain HTTP/1.1."""
    import h2.connection

    settings = h2.connection.H2Connection().initiate_upgrade_connection()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_upgrade_head(b"/echo", settings, 5) + b"hello")
        data = b""
        while not data.endswith(b"hello"):
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 ") and b"\r\nupgrade:" not in data.lower()


def test_h2c_upgrade_with_body(h2c_server: Server) -> None:
    body = b"upgrade body"
    client = _upgraded_client(h2c_server, b"/echo", body)
    reply = client.wait(1)
    assert reply.status == 200 and reply.body == body
    sid = client.request("/scope")
    assert json.loads(client.wait(sid).body)["http_version"] == "2"
    client.close()


def test_h2c_upgrade_body_unread_by_the_app_is_not_buffered(h2c_server: Server) -> None:
    """The upgrade request's body is HTTP/1.1 bytes, outside HTTP/2 flow control: while the app does
    not read it, squall stops reading (it buffered all of it, up to --limit-request-body)."""
    size = 64 << 20
    with socket.create_connection(("127.0.0.1", h2c_server.port), timeout=10) as sock:
        sock.sendall(_upgrade_head(b"/forever", b"AAMAAABkAAQAAP__", size))
        sock.settimeout(1.0)
        sent = 0
        with pytest.raises(TimeoutError):
            while sent < size:
                sent += sock.send(bytes(1 << 20))
    assert sent < size // 2


def test_h2c_upgrade_body_read_slowly_arrives_whole(h2c_server: Server) -> None:
    """Reading pauses while the app holds the upgrade body unread, and resumes as it reads."""
    body = bytes(range(256)) * (16 << 10)  # 4 MiB
    client = _upgraded_client(h2c_server, b"/slow-read", body)
    reply = client.wait(1)
    assert reply.status == 200 and json.loads(reply.body)["length"] == len(body)
    client.close()


def test_h2c_upgrade_without_settings_is_refused(h2c_server: Server) -> None:
    response = httpx.get(h2c_server.url + "/", headers={"Connection": "Upgrade", "Upgrade": "h2c"})
    assert response.status_code == 400


def test_flow_control_small_client_window(server: Server) -> None:
    client = H2Client(server.port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 4096})
    sid = client.request("/big?mib=1")
    reply = client.wait(sid)  # h2 raises FlowControlError if the server overran a window
    client.close()
    assert len(reply.body) == 1024 * 1024


def test_upload_is_flow_controlled(server: Server) -> None:
    client = H2Client(server.port)
    payload = b"z" * (3 * 1024 * 1024)
    sid = client.request("/body-info", method="POST", body=payload)
    info = json.loads(client.wait(sid).body)
    client.close()
    assert info["length"] == len(payload)


def test_zero_window_stall_resets_the_stream(start_server: StartServer) -> None:
    server = start_server("--h2-timeout-stalled", "0.3")
    client = H2Client(server.port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    sid = client.request("/big?mib=2")
    reply = client.wait(sid)
    client.close()
    assert reply.reset == h2.errors.ErrorCodes.CANCEL
    server.wait_for_line("zero window stall")


def test_stalled_request_body_resets_the_stream(start_server: StartServer) -> None:
    """Slowloris over HTTP/2: a request body that stops coming while the app waits for it is cut
    off after --timeout-request-body (RST_STREAM CANCEL, the app reads http.disconnect), as over
    HTTP/1.1; the stream and its app were held forever. An app that does not read is left be."""
    server = start_server("--timeout-request-body", "0.4")
    client = H2Client(server.port)
    stalled = client.request("/long-poll?id=stalled", method="POST", body=b"abc", end=False)
    unread = client.request("/sleep?s=1.2", method="POST", body=b"never read", end=False)
    assert client.wait(stalled).reset == h2.errors.ErrorCodes.CANCEL
    assert client.wait(unread).status == 200
    client.close()
    server.wait_for_line(r"stream 1 from .*request body timeout")
    assert httpx.get(server.url + "/report?id=stalled").json() == {"disconnected": True}


def test_streams_beyond_the_limit_are_refused(start_server: StartServer) -> None:
    server = start_server("--h2-max-concurrent-streams", "3")
    client = H2Client(server.port)
    client.receive_once()  # the server's SETTINGS
    client.conn.remote_settings = h2.settings.Settings(client=False, initial_values={})  # ignore its limit
    sids = [client.request(f"/forever?n={n}") for n in range(4)]
    while client.replies[sids[3]].reset is None and client.goaway is None and not client.closed:
        client.receive_once()
    refused = client.replies[sids[3]].reset
    assert refused in (h2.errors.ErrorCodes.REFUSED_STREAM, None)
    if refused is None:
        assert client.goaway is not None
    client.close()


def test_max_requests_per_connection_goaway(start_server: StartServer) -> None:
    server = start_server("--h2-max-requests", "2")
    client = H2Client(server.port)
    first, second = client.request("/"), client.request("/")
    assert client.wait(first).body == b"hello" and client.wait(second).body == b"hello"
    goaway = client.wait_goaway()
    assert goaway.error_code == 0 and goaway.last_stream_id == second
    client.close()


def test_idle_connection_gets_goaway(start_server: StartServer) -> None:
    server = start_server("--timeout-keep-alive", "0.2")
    client = H2Client(server.port)
    assert client.wait_goaway().error_code == 0
    client.read_until_closed()


def test_graceful_shutdown_goaway_lets_streams_finish(start_server: StartServer) -> None:
    server = start_server()
    client = H2Client(server.port)
    sid = client.request("/sleep?s=0.5&id=h2")
    server.wait_for_line("sleep started h2")
    server.terminate()
    goaway = client.wait_goaway()
    assert goaway.error_code == 0 and goaway.last_stream_id == sid
    reply = client.wait(sid)
    assert reply.body == b"slept"
    client.close()
    assert server.wait_exit() == 0


# --- floods and bombs ---------------------------------------------------------------------------


def _raw(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(PREFACE + SettingsFrame(0).serialize())
    return sock


def _goaway_code(sock: socket.socket) -> int | None:
    """Read frames until the connection closes; return the GOAWAY error code, if any."""
    import h2.connection

    peer = h2.connection.H2Connection()
    peer.initiate_connection()
    peer.data_to_send()
    code = None
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            try:
                events = peer.receive_data(data)
            except h2.exceptions.ProtocolError:
                events = []
            for event in events:
                if isinstance(event, h2.events.ConnectionTerminated):
                    code = int(event.error_code or 0)
    except (ConnectionResetError, TimeoutError):
        pass
    sock.close()
    return code


def _headers_frame(
    sid: int, encoder: Encoder, extra: list[tuple[bytes, bytes]] = (), end_headers=True
) -> bytes:  # type: ignore[assignment]
    block = encoder.encode(
        [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http"), (b":authority", b"x"), *extra]
    )
    frame = HeadersFrame(sid, block)
    frame.flags.add("END_STREAM")
    if end_headers:
        frame.flags.add("END_HEADERS")
    return frame.serialize()


def test_rapid_reset_gets_goaway(server: Server) -> None:
    sock = _raw(server)
    encoder = Encoder()
    out = bytearray()
    for n in range(1000):
        sid = 2 * n + 1
        out += _headers_frame(sid, encoder)
        out += RstStreamFrame(sid, error_code=8).serialize()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(bytes(out))
    assert _goaway_code(sock) == ENHANCE_YOUR_CALM


@pytest.mark.parametrize("kind", ["ping", "settings"])
def test_control_frame_flood_gets_goaway(server: Server, kind: str) -> None:
    sock = _raw(server)
    frame = PingFrame(0, opaque_data=b"12345678") if kind == "ping" else SettingsFrame(0)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(frame.serialize() * 2000)
    assert _goaway_code(sock) == ENHANCE_YOUR_CALM


def test_hpack_bomb_header_list_too_large(server: Server) -> None:
    sock = _raw(server)
    encoder = Encoder()
    # One 4 KiB header indexed once, then referenced 64 times: tiny on the wire, 256 KiB decoded.
    first = _headers_frame(1, encoder, [(b"x-bomb", b"a" * 4000)])
    second = _headers_frame(3, encoder, [(b"x-bomb", b"a" * 4000)] * 64)
    assert len(second) < 1000
    sock.sendall(first + second)
    assert _goaway_code(sock) in (
        h2.errors.ErrorCodes.ENHANCE_YOUR_CALM,
        h2.errors.ErrorCodes.PROTOCOL_ERROR,
        h2.errors.ErrorCodes.COMPRESSION_ERROR,
    )


def test_continuation_flood_gets_goaway(server: Server) -> None:
    sock = _raw(server)
    encoder = Encoder()
    out = bytearray(_headers_frame(1, encoder, end_headers=False))
    for _ in range(200):
        out += ContinuationFrame(1, encoder.encode([(b"x-junk", b"b" * 1000)])).serialize()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(bytes(out))
    assert _goaway_code(sock) is not None


def test_bad_preface_settings_on_h2c_upgrade_rejected(h2c_server: Server) -> None:
    bad = base64.urlsafe_b64encode(b"\x00\x04\xff\xff\xff\xff").rstrip(b"=")  # window too large
    sock = socket.create_connection(("127.0.0.1", h2c_server.port), timeout=10)
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: " + bad + b"\r\n\r\n"
    )
    data = sock.recv(65536)
    sock.close()
    assert data.startswith(b"HTTP/1.1 400")


def test_limit_request_body_over_http2(start_server: StartServer) -> None:
    server = start_server("--limit-request-body", "1000")
    client = H2Client(server.port)
    declared = client.request("/echo", method="POST", headers=[(b"content-length", b"5000")], end=False)
    answer = client.wait(declared)
    assert answer.status == 413 and b"--limit-request-body" in answer.body  # what to raise
    streamed = client.request("/echo", method="POST", end=False)
    client.send_body(streamed, b"x" * 600, end=False)
    client.send_body(streamed, b"x" * 600, end=True)
    reply = client.wait(streamed)
    client.close()
    assert reply.reset == h2.errors.ErrorCodes.CANCEL
    server.wait_for_line(r"stream \d+ from .*over --limit-request-body \(1000 bytes\)")
