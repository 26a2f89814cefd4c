"""HTTP/3 end to end: a real squall with --http3, aioquic's HTTP/3 client over loopback UDP."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import signal
from pathlib import Path

import httpx
import pytest
import trustme
from aioquic.tls import CipherSuite

from .conftest import StartServer
from .h2util import Certs, certs
from .h3client import h3_connect
from .harness import Server, run_cli

__all__ = ["certs"]


def h3_server(start_server: StartServer, certs: Certs, *extra: str) -> Server:
    return start_server(*certs.args("--http3", *extra))


@pytest.fixture(scope="module")
def h3(certs: Certs) -> Server:  # type: ignore[misc]
    running = Server([*certs.args("--http3"), "--timeout-graceful-shutdown", "3"]).start()
    try:
        yield running  # type: ignore[misc]
    finally:
        running.stop()
        running.kill()
        print(f"--- stderr of the HTTP/3 module server:\n{running.log()}")


async def test_get_over_http3(h3: Server, certs: Certs) -> None:
    async with h3_connect(h3.port, ca=certs.ca) as client:
        reply = await client.request("GET", "/scope?x=1")
    assert reply.status == 200
    scope = json.loads(reply.body)
    assert scope["http_version"] == "3"
    assert scope["scheme"] == "https"
    assert scope["path"] == "/scope" and scope["query_string"] == "x=1"
    assert ["host", "localhost"] in scope["headers"]
    assert reply.header(b"server") == b"squall"


async def test_tls_extension_over_http3(h3: Server, certs: Certs) -> None:
    """The ASGI ``tls`` extension, as on HTTP/1.1 and HTTP/2 over TLS: QUIC is TLS 1.3, the cipher
    suite the one the client negotiated (offered alone here, so known), no client certificate."""
    async with h3_connect(
        h3.port, ca=certs.ca, cipher_suites=[CipherSuite.CHACHA20_POLY1305_SHA256]
    ) as client:
        first, second = await asyncio.gather(client.request("GET", "/scope"), client.request("GET", "/scope"))
    tls = json.loads(first.body)["extensions"]["tls"]
    assert tls == json.loads(second.body)["extensions"]["tls"]
    assert tls["server_cert"].strip() == certs.server_pem.strip()
    assert tls["tls_version"] == 0x0304
    assert tls["cipher_suite"] == 0x1303
    assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None
    async with h3_connect(h3.port, ca=certs.ca, cipher_suites=[CipherSuite.AES_128_GCM_SHA256]) as client:
        assert (
            json.loads((await client.request("GET", "/scope")).body)["extensions"]["tls"]["cipher_suite"]
            == 0x1301
        )


async def test_client_certificates_over_http3(start_server: StartServer, certs: Certs) -> None:
    """--ssl-cert-reqs 2 with --ssl-ca-certs applies to HTTP/3 as to TLS over TCP: a client
    certificate the CA issued is verified and shown in the scope (its whole chain as sent); a
    client without one is refused in the handshake (certificate_required), not served."""
    server = h3_server(start_server, certs, "--ssl-cert-reqs", "2", "--ssl-ca-certs", str(certs.ca))
    async with h3_connect(server.port, ca=certs.ca, client_cert=certs.client_pem) as client:
        tls = json.loads((await client.request("GET", "/scope")).body)["extensions"]["tls"]
    assert "CN=test-client" in tls["client_cert_name"]
    sent = certs.client_pem.read_text()
    leaf = sent[sent.index("-----BEGIN CERTIFICATE-----") : sent.index("-----END CERTIFICATE-----") + 25]
    assert tls["client_cert_chain"][0].strip() == leaf
    async with h3_connect(server.port, ca=certs.ca) as client:  # (the client's handshake ends first)
        reply = await client.request("GET", "/scope", timeout=10)
        closed = await asyncio.wait_for(asyncio.shield(client.terminated), 10)
    assert reply.reset == -1 and not reply.heads  # never served
    assert closed.error_code == 0x100 + 116  # CRYPTO_ERROR: TLS alert certificate_required


async def test_a_certificate_from_another_ca_is_refused_over_http3(
    start_server: StartServer, certs: Certs, tmp_path: Path
) -> None:
    """A client certificate the --ssl-ca-certs CA did not issue fails the handshake (even with
    --ssl-cert-reqs 1, optional: a certificate shown must verify)."""
    stranger = trustme.CA().issue_cert("stranger@example.com")
    pem = tmp_path / "stranger.pem"
    stranger.private_key_and_cert_chain_pem.write_to_path(str(pem))
    server = h3_server(start_server, certs, "--ssl-cert-reqs", "1", "--ssl-ca-certs", str(certs.ca))
    async with h3_connect(server.port, ca=certs.ca, client_cert=pem) as client:
        reply = await client.request("GET", "/scope", timeout=10)
        closed = await asyncio.wait_for(asyncio.shield(client.terminated), 10)
    assert reply.reset == -1 and not reply.heads
    assert closed.error_code == 0x100 + 42  # CRYPTO_ERROR: TLS alert bad_certificate
    async with h3_connect(server.port, ca=certs.ca) as client:  # optional: none is fine
        tls = json.loads((await client.request("GET", "/scope")).body)["extensions"]["tls"]
    assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None


async def test_five_mib_post_echo(h3: Server, certs: Certs) -> None:
    body = bytes(range(256)) * (5 * 1024 * 1024 // 256)
    async with h3_connect(h3.port, ca=certs.ca) as client:
        reply = await client.request("POST", "/echo", body=body, timeout=60)
    assert reply.status == 200
    assert hashlib.sha256(reply.body).digest() == hashlib.sha256(body).digest()


async def test_streamed_response(h3: Server, certs: Certs) -> None:
    async with h3_connect(h3.port, ca=certs.ca) as client:
        reply = await client.request("GET", "/stream?n=5")
    assert reply.body == b"".join(b"chunk-%d\n" % n for n in range(5))
    assert reply.header(b"content-length") is None


async def test_hundred_concurrent_streams(h3: Server, certs: Certs) -> None:
    async with h3_connect(h3.port, ca=certs.ca) as client:
        replies = await asyncio.gather(
            *(client.request("GET", f"/echo?n={n}", body=b"%d" % n) for n in range(100))
        )
    assert [r.body for r in replies] == [b"%d" % n for n in range(100)]


@pytest.mark.timeout(240)
async def test_fifty_mib_response_completes(h3: Server, certs: Certs) -> None:
    async with h3_connect(h3.port, ca=certs.ca) as client:
        reply = await client.request("GET", "/big?mib=50", timeout=120)
    assert reply.status == 200 and reply.reset is None
    assert len(reply.body) == 50 * 1024 * 1024


async def test_early_hints_and_trailers_over_http3(start_server: StartServer, certs: Certs) -> None:
    server = start_server(*certs.args("--http3"), app="tests.e2e.test_extensions:app")
    async with h3_connect(server.port, ca=certs.ca) as client:
        hint = await client.request("GET", "/hint")
        trailers = await client.request("GET", "/trailers", headers=[(b"te", b"trailers")])
    assert [dict(h)[b":status"] for h in hint.heads] == [b"103", b"200"]
    assert (b"link", b"</style.css>; rel=preload; as=style") in hint.heads[0]
    assert hint.body == b"hinted"
    assert trailers.body == b"part one, part two"
    assert trailers.heads[-1] == [(b"x-checksum", b"abc123")]


def test_alt_svc_on_http1_and_http2(start_server: StartServer, certs: Certs) -> None:
    server = h3_server(start_server, certs)
    expected = f'h3=":{server.port}"; ma=86400'
    with httpx.Client(verify=certs.ssl_context(), http2=True) as client:
        h2 = client.get(server.url.replace("http://", "https://"))
    with httpx.Client(verify=certs.ssl_context()) as client:
        h1 = client.get(server.url.replace("http://", "https://"))
    assert (h2.http_version, h1.http_version) == ("HTTP/2", "HTTP/1.1")
    assert h2.headers["alt-svc"] == expected and h1.headers["alt-svc"] == expected


def test_alt_svc_off_and_custom_port(start_server: StartServer, certs: Certs) -> None:
    off = h3_server(start_server, certs, "--http3-alt-svc", "off")
    with httpx.Client(verify=certs.ssl_context()) as client:
        assert "alt-svc" not in client.get(off.url.replace("http://", "https://")).headers


def test_no_alt_svc_without_http3(start_server: StartServer, certs: Certs) -> None:
    server = start_server(*certs.args())
    with httpx.Client(verify=certs.ssl_context()) as client:
        assert "alt-svc" not in client.get(server.url.replace("http://", "https://")).headers


async def test_http3_port_flag(start_server: StartServer, certs: Certs) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # a free UDP port number
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = h3_server(start_server, certs, "--http3-port", str(port))
    with httpx.Client(verify=certs.ssl_context()) as client:
        assert (
            client.get(server.url.replace("http://", "https://")).headers["alt-svc"]
            == f'h3=":{port}"; ma=86400'
        )
    async with h3_connect(port, ca=certs.ca) as client:
        assert (await client.request("GET", "/")).body == b"hello"


def test_http3_without_certificate_is_a_one_line_error() -> None:
    result = run_cli(["tests.e2e.apps:app", "--http3"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "squall: error: argument --http3: needs --ssl-certfile and --ssl-keyfile (QUIC always uses TLS)"
    ]


async def test_peer_that_never_reads_holds_the_app_in_send(start_server: StartServer, certs: Certs) -> None:
    window = 256 * 1024
    server = h3_server(start_server, certs, "--h3-stream-window", str(window), "--h3-idle-timeout", "2")
    async with h3_connect(server.port, ca=certs.ca) as deaf, h3_connect(server.port, ca=certs.ca) as probe:
        _, flood = deaf.start("GET", "/flood?id=deaf")
        await asyncio.wait_for(flood.chunks.get(), 10)  # the response has begun
        deaf.deaf = True  # from now on nothing reaches the client: nothing is acknowledged
        samples = []
        for _ in range(100):
            samples.append(json.loads((await probe.request("GET", "/sent?id=deaf")).body)["sent"])
            if len(samples) >= 5 and len(set(samples[-5:])) == 1:
                break
            await asyncio.sleep(0.1)
        assert len(set(samples[-5:])) == 1, samples  # send() stopped returning
        assert samples[-1] <= 2 * window + 256 * 1024  # bounded by the window, not by the app
        # the silent peer idles out (--h3-idle-timeout 2) and the app's send() fails
        report = json.loads((await probe.request("GET", "/report?id=deaf&wait=15")).body)
    assert report["error"] == "ClientDisconnected"


async def test_idle_connection_closes_after_the_idle_timeout(start_server: StartServer, certs: Certs) -> None:
    server = h3_server(start_server, certs, "--h3-idle-timeout", "1")
    async with h3_connect(server.port, ca=certs.ca, idle_timeout=60) as client:
        assert (await client.request("GET", "/")).status == 200
        closed = await asyncio.wait_for(asyncio.shield(client.terminated), 10)
    assert closed is not None


async def test_long_poll_outlives_the_idle_timeout(start_server: StartServer, certs: Certs) -> None:
    """An open request keeps its connection alive (PINGs) past --h3-idle-timeout."""
    server = h3_server(start_server, certs, "--h3-idle-timeout", "1")
    async with h3_connect(server.port, ca=certs.ca, idle_timeout=60) as client:
        reply = await client.request("GET", "/sleep?s=3", timeout=15)
        assert reply.body == b"slept" and not client.terminated.done()


async def test_graceful_shutdown_finishes_open_streams(start_server: StartServer, certs: Certs) -> None:
    server = h3_server(start_server, certs)
    async with h3_connect(server.port, ca=certs.ca) as client:
        _, slow = client.start("GET", "/sleep?s=1&id=h3")
        server.wait_for_line("APP sleep started h3")
        server.terminate()
        await asyncio.wait_for(asyncio.shield(slow.done), 10)
        assert slow.status == 200 and slow.body == b"slept"
        closed = await asyncio.wait_for(asyncio.shield(client.terminated), 10)
    assert closed.error_code in (0, 0x100)
    assert server.wait_exit() == 0


async def test_body_over_the_limit_is_refused(start_server: StartServer, certs: Certs) -> None:
    server = h3_server(start_server, certs, "--limit-request-body", "1000")
    async with h3_connect(server.port, ca=certs.ca) as client:
        declared = await client.request(
            "POST", "/echo", headers=[(b"content-length", b"5000")], body=b"x" * 5000
        )
        streamed = await client.request("POST", "/echo", body=b"x" * 5000)
    assert declared.status == 413
    assert streamed.reset is not None


def test_unknown_connection_gets_a_stateless_reset(h3: Server, certs: Certs) -> None:
    """A packet for a connection this worker does not hold (another worker's before a reload, an
    earlier process's) is answered with a Stateless Reset, so the client reconnects at once."""
    import hashlib
    import hmac
    import os
    import socket

    dcid = os.urandom(8)
    packet = bytes([0x40 | 0x01]) + dcid + os.urandom(60)  # short header, then protected bytes
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(5)
        udp.sendto(packet, ("127.0.0.1", h3.port))
        reply, _ = udp.recvfrom(2048)
    secret = hashlib.sha256(b"squall stateless reset\0" + certs.key.read_bytes()).digest()
    assert len(reply) < len(packet) and reply[0] & 0xC0 == 0x40
    assert reply[-16:] == hmac.new(secret, dcid, hashlib.sha256).digest()[:16]


def test_workers_share_the_udp_port(start_server: StartServer, certs: Certs) -> None:
    server = h3_server(start_server, certs, "--workers", "2")
    server.wait_for_line(r"\[(\d+)\] INFO HTTP/3 \(QUIC\) on udp")

    async def many() -> list[int]:
        async def one() -> int:
            async with h3_connect(server.port, ca=certs.ca) as client:
                return (await client.request("GET", "/")).status

        return await asyncio.gather(*(one() for _ in range(24)))

    assert asyncio.run(many()) == [200] * 24
    pids = {
        m.group(1)
        for m in map(re.compile(r"\[(\d+)\] INFO .* HTTP/3\" 200").search, server.log().splitlines())
        if m
    }
    assert len(pids) == 2  # the kernel spread the connections over both workers' sockets


async def test_rolling_reload_closes_idle_connections_cleanly(
    start_server: StartServer, certs: Certs
) -> None:
    """SIGHUP: the old worker closes its idle QUIC connections with H3_NO_ERROR (after GOAWAY) and
    the client's next connection is served by the new worker."""
    server = h3_server(start_server, certs, "--supervisor")
    async with h3_connect(server.port, ca=certs.ca) as client:
        assert (await client.request("GET", "/")).status == 200
        mark = server.mark()
        server.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        closed = await asyncio.wait_for(asyncio.shield(client.terminated), 15)
    assert closed.error_code == 0x100  # H3_NO_ERROR: a clean close, not a timeout
    server.wait_for_line(r"Reload complete", start=mark)
    async with h3_connect(server.port, ca=certs.ca) as client:
        assert (await client.request("GET", "/")).status == 200


async def test_rolling_reload_keeps_streaming_connections_alive(
    start_server: StartServer, certs: Certs, tmp_path: Path
) -> None:
    """--workers 2, eight clients streaming (16 KiB every 0.05 s), SIGHUP: while the old and new
    workers' sockets share the port the kernel hashes most client addresses to another socket. A
    response needs the client's ACKs to go on past the congestion window; the worker that gets
    them forwards them, by the tag of their connection id, to the old worker, which finishes every
    response. (Without the routing those clients get Stateless Resets and their responses stall.)"""
    server = h3_server(start_server, certs, "--workers", "2", "--log-level", "debug")
    server.wait_for_line(r"2 worker\(s\) ready")
    old = re.findall(r"Worker \[(\d+)\] ready", server.log())
    gate = tmp_path / "finish"
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(h3_connect(server.port, ca=certs.ca)) for _ in range(8)]
        replies = [c.start("GET", f"/until-file?path={gate}")[1] for c in clients]
        await asyncio.gather(*(asyncio.wait_for(r.chunks.get(), 10) for r in replies))
        mark = server.mark()
        server.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        # Both old workers draining, their clients' datagrams re-hashed (waited for in a thread:
        # the clients must go on acknowledging meanwhile):
        for pattern in [*(rf"Stopping worker \[{pid}\]" for pid in old), r"datagrams forwarded by another"]:
            await asyncio.to_thread(server.wait_for_line, pattern, start=mark, timeout=30)
        gate.touch()  # the responses end now, on the old workers, through the forwarded ACKs
        await asyncio.gather(*(asyncio.wait_for(asyncio.shield(r.done), 30) for r in replies))
        await asyncio.to_thread(server.wait_for_line, r"Reload complete", start=mark, timeout=30)
    for reply in replies:
        assert reply.status == 200 and reply.reset is None
        head, _, end = bytes(reply.body).rpartition(b"end ")
        sent = int(end)
        assert sent > 0 and head == b"".join((b"chunk-%d\n" % n).ljust(16384, b".") for n in range(sent))


async def test_new_connections_reach_a_live_worker_while_old_ones_drain(
    start_server: StartServer, certs: Certs, tmp_path: Path
) -> None:
    """--workers 2, SIGHUP while eight clients stream from the old workers: the old workers'
    sockets stay in the port's SO_REUSEPORT group while they drain, so the kernel hashes about
    half of the brand-new clients to a worker that accepts no connection. It hands their Initial
    packets (and the packets that follow with the same id) to a live worker's intake; every new
    client connects. (Without it those clients get no answer until the old worker exits.)"""
    server = h3_server(start_server, certs, "--workers", "2", "--log-level", "debug")
    server.wait_for_line(r"2 worker\(s\) ready")
    old = re.findall(r"Worker \[(\d+)\] ready", server.log())
    gate = tmp_path / "finish"
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(h3_connect(server.port, ca=certs.ca)) for _ in range(8)]
        replies = [c.start("GET", f"/until-file?path={gate}&size=2048")[1] for c in clients]
        await asyncio.gather(*(asyncio.wait_for(r.chunks.get(), 10) for r in replies))
        mark = server.mark()
        server.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        for pid in old:  # both old workers stopped accepting (one at least still drains a stream)
            await asyncio.to_thread(
                server.wait_for_line, rf"\[{pid}\] INFO Stopped accepting", start=mark, timeout=30
            )

        async def newcomer() -> int:
            async with h3_connect(server.port, ca=certs.ca) as client:
                return (await client.request("GET", "/", timeout=10)).status

        statuses = await asyncio.gather(*(asyncio.wait_for(newcomer(), 15) for _ in range(24)))
        assert statuses == [200] * 24
        await asyncio.to_thread(server.wait_for_line, r"handed to another worker \(draining\)", start=mark)
        gate.touch()
        await asyncio.gather(*(asyncio.wait_for(asyncio.shield(r.done), 30) for r in replies))
    assert all(reply.status == 200 and reply.reset is None for reply in replies)


def test_udp_port_in_use_is_a_one_line_error(certs: Certs) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:  # bound without SO_REUSEPORT
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = run_cli(
            ["tests.e2e.apps:app", "--port", "0", "--http3-port", str(port), *certs.args("--http3")]
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"squall: error: --http3: cannot bind UDP 127.0.0.1:{port}: Address already in use"
    )
    assert "Traceback" not in result.stderr and "lifespan' protocol appears unsupported" not in result.stderr


def test_http3_without_aioquic_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], certs: Certs
) -> None:
    import importlib.util

    from squall import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "aioquic" else real(name, *a)
    )
    with pytest.raises(SystemExit) as exited:
        cli.load_config(["tests.e2e.apps:app", *certs.args("--http3")])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "squall: error: argument --http3: aioquic is not installed: pip install 'squall[http3]'\n"
    )


async def test_limit_concurrency_caps_quic_connections(start_server: StartServer, certs: Certs) -> None:
    server = h3_server(start_server, certs, "--limit-concurrency", "1")
    async with h3_connect(server.port, ca=certs.ca) as first:
        assert (await first.request("GET", "/")).status == 200
        with pytest.raises((ConnectionError, TimeoutError)):
            async with asyncio.timeout(2):
                async with h3_connect(server.port, ca=certs.ca):
                    pass  # the second connection's Initial packets are not answered
    async with h3_connect(server.port, ca=certs.ca) as again:  # the first one is gone: room again
        assert (await again.request("GET", "/")).status == 200


# ------------------------------------------------------------- minimum data rates, body timeout


async def _report(port: int, certs: Certs, key: str) -> object:
    async with h3_connect(port, ca=certs.ca) as probe:
        return json.loads((await probe.request("GET", f"/report?id={key}&wait=10")).body)


async def test_a_stalled_body_gets_408_after_the_body_timeout(
    start_server: StartServer, certs: Certs
) -> None:
    """A byte of body, then nothing while the app waits for more: 408 once --timeout-request-body
    has passed (the worker's sweep, no timer of its own), and the app sees http.disconnect."""
    server = h3_server(start_server, certs, "--timeout-request-body", "1", "--min-request-body-rate", "off")
    async with h3_connect(server.port, ca=certs.ca) as client:
        _, reply = client.start("POST", "/upload?id=h3stall", body=b"x", end=False)
        await asyncio.wait_for(asyncio.shield(reply.done), 10)
    assert reply.status == 408 and reply.reset is None
    assert await _report(server.port, certs, "h3stall") == {"disconnected": True, "received": 1}
    server.wait_for_line(r"request body on HTTP/3 stream 0 from .*--timeout-request-body")


async def test_a_body_trickling_below_the_rate_gets_408(start_server: StartServer, certs: Certs) -> None:
    """One byte every 0.1 s against --min-request-body-rate 1000: 408 once the grace is over,
    though every byte came well within --timeout-request-body."""
    server = h3_server(start_server, certs, "--min-request-body-rate", "1000", "--min-rate-grace", "0.5")
    async with h3_connect(server.port, ca=certs.ca) as client:
        sid, reply = client.start("POST", "/upload?id=h3drip", body=b"x", end=False)
        for _ in range(200):
            if reply.done.done():
                break
            client.send_body(sid, b"x", end=False)
            await asyncio.sleep(0.1)
        await asyncio.wait_for(asyncio.shield(reply.done), 10)
    assert reply.status == 408
    report = await _report(server.port, certs, "h3drip")
    assert report["disconnected"] is True  # type: ignore[index]
    server.wait_for_line(r"request body on HTTP/3 stream 0 from .*under --min-request-body-rate")


async def test_a_reader_that_gives_no_more_credit_gets_a_reset(
    start_server: StartServer, certs: Certs
) -> None:
    """A client that acknowledges packets but raises no MAX_STREAM_DATA past its first 16 KiB holds
    the app in send(): under --min-response-rate the stream is reset (H3_REQUEST_CANCELLED) and
    the app's send() raises."""
    server = h3_server(start_server, certs, "--min-response-rate", "100000", "--min-rate-grace", "0.5")
    async with h3_connect(server.port, ca=certs.ca, max_stream_data=16384) as client:
        client.stingy = True
        _, reply = client.start("GET", "/stream-until-error?id=h3stingy&swallow=1")
        await asyncio.wait_for(asyncio.shield(reply.done), 15)
        assert reply.reset == 0x10C  # H3_REQUEST_CANCELLED
        assert not client.terminated.done()  # the stream, not the connection
    assert await _report(server.port, certs, "h3stingy") == {"type": "ClientDisconnected", "is_oserror": True}
    server.wait_for_line(r"resetting HTTP/3 stream 0 from .*under --min-response-rate")
