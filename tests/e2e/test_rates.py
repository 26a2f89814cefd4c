"""Minimum data rates (Kestrel's MinRequestBodyDataRate / MinResponseDataRate) and the HTTP/2
header block deadline, end to end. Each server runs with a short grace period and a rate the test
client undercuts (or beats) by orders of magnitude; tests wait on the server's answer (a status,
RST_STREAM, GOAWAY, EOF), and pace their slow clients with small sleeps that decide nothing."""

from __future__ import annotations

import select
import socket
import time

import h2.errors
import h2.settings
import httpx
from hpack import Encoder
from hyperframe.frame import Frame, GoAwayFrame, HeadersFrame, SettingsFrame

from .conftest import StartServer
from .h2util import PREFACE, H2Client
from .harness import Server

FAST = ("--min-rate-grace", "0.5")
HEAD = b"POST /upload?id=%s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"


def report(server: Server, key: str) -> object:
    return httpx.get(server.url + f"/report?id={key}").json()


def drip(sock: socket.socket, byte: bytes, pause: float, most: int) -> bytes:
    """Send ``byte`` every ``pause`` seconds until the server answers; return the answer."""
    for _ in range(most):
        try:
            sock.sendall(byte)
        except (BrokenPipeError, ConnectionResetError):
            break
        time.sleep(pause)
        if select.select([sock], [], [], 0)[0]:
            break
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_body_dripping_below_the_rate_gets_408(start_server: StartServer) -> None:
    """One byte every 0.1 s against 1000 bytes/s: 408 once the grace is over, and the app reading
    the body sees http.disconnect. The stall timer never fired: every byte reset it."""
    server = start_server("--min-request-body-rate", "1000", *FAST)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(HEAD % (b"drip", 1000))
        started = time.monotonic()
        answer = drip(sock, b"x", 0.1, 200)
        lived = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"connection: close" in answer.lower()
    assert report(server, "drip")["disconnected"] is True
    server.wait_for_line(r"under --min-request-body-rate")
    print(f"a 10-byte/s body lived {lived:.2f} s (grace 0.5 s, rate 1000 B/s, checked once a second)")


def test_a_body_at_a_good_rate_is_served(start_server: StartServer) -> None:
    server = start_server("--min-request-body-rate", "1000", *FAST)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(HEAD % (b"good", 30 * 8192))
        for _ in range(30):  # 8 KiB every 0.05 s: about 160 KB/s
            sock.sendall(b"y" * 8192)
            time.sleep(0.05)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert report(server, "good") == {"disconnected": False, "received": 30 * 8192}


def test_the_rate_does_not_time_an_app_that_is_not_reading(start_server: StartServer) -> None:
    """Only the time the app waits for body counts: an app busy for 2 s before reading a body
    that was all sent at once is not the client's fault."""
    server = start_server("--min-request-body-rate", "100000", *FAST)
    response = httpx.post(server.url + "/sleep?s=2", content=b"z" * 100, timeout=10)
    assert response.status_code == 200


def test_a_reader_taking_output_below_the_rate_is_cut_off(start_server: StartServer) -> None:
    """A client that reads 2 KiB every 0.05 s (40 KB/s) against 200,000 bytes/s: the connection
    is aborted and the app's send() raises. Before, it lived as long as it kept reading a byte."""
    server = start_server("--min-response-rate", "200000", *FAST)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"GET /stream-until-error?id=slowread&swallow=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        received = 0
        started = time.monotonic()
        try:
            while chunk := sock.recv(2048):
                received += len(chunk)
                time.sleep(0.05)
        except ConnectionResetError:
            pass
        lived = time.monotonic() - started
    assert received < 20_000 * 16384
    assert report(server, "slowread") == {"type": "ClientDisconnected", "is_oserror": True}
    server.wait_for_line(r"under --min-response-rate")
    print(f"a 40 KB/s reader lived {lived:.2f} s, took {received} bytes (rate 200,000 B/s, grace 0.5 s)")


def test_a_fast_reader_is_not_cut_off(start_server: StartServer) -> None:
    server = start_server("--min-response-rate", "200000", *FAST)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert len(client.get("/big?mib=8").content) == 8 << 20


def test_rates_off(start_server: StartServer) -> None:
    server = start_server("--min-request-body-rate", "off", "--min-response-rate", "off", *FAST)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(HEAD % (b"off", 15))
        answer = drip(sock, b"x", 0.1, 15)
    assert answer.startswith(b"HTTP/1.1 200 ")


# ------------------------------------------------------------------------------------- HTTP/2


def test_h2_a_body_dripping_below_the_rate_gets_408_and_a_reset(start_server: StartServer) -> None:
    server = start_server("--min-request-body-rate", "1000", *FAST)
    client = H2Client(server.port)
    sid = client.request("/upload?id=h2drip", method="POST", body=b"x", end=False)
    reply = client.replies[sid]
    for _ in range(200):
        client.send_body(sid, b"x", end=False)
        time.sleep(0.1)
        while select.select([client.sock], [], [], 0)[0] and not client.closed:
            client.receive_once()
        if reply.status or reply.reset is not None:
            break
    reply = client.wait(sid)
    client.close()
    assert reply.status == 408
    assert report(server, "h2drip")["disconnected"] is True


def test_h2_a_reader_opening_its_window_slowly_gets_a_reset(start_server: StartServer) -> None:
    """Tiny WINDOW_UPDATEs (100 bytes every 0.05 s) against 100,000 bytes/s: RST_STREAM CANCEL;
    the stream and its app were held for as long as the client kept them trickling."""
    server = start_server("--min-response-rate", "100000", *FAST)
    client = H2Client(server.port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 100})
    client.auto_ack = False
    sid = client.request("/stream-until-error?id=h2window&swallow=1")
    reply = client.replies[sid]
    for _ in range(200):
        time.sleep(0.05)
        while select.select([client.sock], [], [], 0)[0] and not client.closed:
            client.receive_once()
        if reply.reset is not None or client.closed:
            break
        client.conn.increment_flow_control_window(100, sid)
        client.conn.increment_flow_control_window(100)
        client.flush()
    client.close()
    assert reply.reset == h2.errors.ErrorCodes.CANCEL
    assert report(server, "h2window") == {"type": "ClientDisconnected", "is_oserror": True}
    server.wait_for_line(r"stream \d+ from .*under --min-response-rate")


def test_h2_a_header_block_stalled_mid_continuation_is_timed_out(start_server: StartServer) -> None:
    """A HEADERS without END_HEADERS, then nothing, while another stream keeps the connection
    busy: GOAWAY after --timeout-request-header (the idle timer never ran: a stream was open)."""
    server = start_server("--timeout-request-header", "0.5")
    encoder = Encoder()
    fields = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"t")]
    busy = HeadersFrame(1, encoder.encode([*fields, (b":path", b"/long-poll?id=h2busy")]))
    busy.flags.add("END_HEADERS")
    busy.flags.add("END_STREAM")
    stalled = HeadersFrame(3, encoder.encode([*fields, (b":path", b"/")]))  # CONTINUATION must follow
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(PREFACE + SettingsFrame(0).serialize() + busy.serialize())
        server.wait_for_line("long-poll waiting h2busy")
        sock.sendall(stalled.serialize())
        frames = b""
        while chunk := sock.recv(65536):
            frames += chunk
    goaway = next(f for f in _frames(frames) if isinstance(f, GoAwayFrame))
    assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    server.wait_for_line("header block timeout")
    assert report(server, "h2busy") == {"disconnected": True}


def _frames(data: bytes) -> list[object]:
    frames = []
    while len(data) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        frames.append(frame)
        data = data[9 + length :]
    return frames
