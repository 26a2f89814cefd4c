"""TLS end to end: uvicorn's --ssl-* flags, https/wss scopes, the ASGI tls extension, mTLS, ALPN,
and one-line startup errors for bad keys and certificates. Certificates are made in the test."""

from __future__ import annotations

import asyncio
import json
import ssl
import warnings

import httpx
import pytest
from websockets.asyncio.client import connect

from .conftest import StartServer
from .h2util import Certs, certs, https_client
from .harness import Server, run_cli

__all__ = ["certs"]


def test_https_scope_and_tls_extension(start_server: StartServer, certs: Certs) -> None:
    server = start_server(*certs.args())
    assert server.url.startswith("https://")
    with https_client(server, certs) as client:
        response = client.get("/scope")
    assert response.status_code == 200
    assert response.http_version == "HTTP/1.1"
    scope = response.json()
    assert scope["scheme"] == "https"
    tls = scope["extensions"]["tls"]
    assert tls["server_cert"].strip() == certs.server_pem.strip()
    assert tls["tls_version"] in (0x0303, 0x0304)
    assert isinstance(tls["cipher_suite"], int) and tls["cipher_suite"] > 0
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None


def test_plain_http_has_no_tls_extension(server: Server) -> None:
    scope = httpx.get(server.url + "/scope").json()
    assert scope["scheme"] == "http"
    assert "tls" not in scope.get("extensions", {})


def test_tls12_minimum_and_ciphers_flag(start_server: StartServer, certs: Certs) -> None:
    server = start_server(*certs.args("--ssl-ciphers", "ECDHE+AESGCM"))
    context = certs.ssl_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with httpx.Client(base_url=server.url, verify=context) as client:
        tls = client.get("/scope").json()["extensions"]["tls"]
    assert tls["tls_version"] == 0x0303
    assert tls["cipher_suite"] in (0xC02B, 0xC02C, 0xC02F, 0xC030)
    old = certs.ssl_context()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    with (
        pytest.raises((httpx.ConnectError, ssl.SSLError)),
        httpx.Client(base_url=server.url, verify=old) as c,
    ):
        c.get("/")


def test_encrypted_key_with_password(start_server: StartServer, certs: Certs) -> None:
    server = start_server(
        "--ssl-certfile",
        str(certs.cert),
        "--ssl-keyfile",
        str(certs.encrypted_key),
        "--ssl-keyfile-password",
        "sesame",
    )
    with https_client(server, certs) as client:
        assert client.get("/").text == "hello"


def test_mtls_accepts_a_client_certificate_and_refuses_none(start_server: StartServer, certs: Certs) -> None:
    server = start_server(*certs.args("--ssl-ca-certs", str(certs.ca), "--ssl-cert-reqs", "2"))
    context = certs.ssl_context(client_cert=True)
    with httpx.Client(base_url=server.url, verify=context) as client:
        tls = client.get("/scope").json()["extensions"]["tls"]
    assert tls["client_cert_name"] == "CN=test-client,O=trustme,OU=Testing CA #1" or "CN=test-client" in str(
        tls["client_cert_name"]
    )
    assert len(tls["client_cert_chain"]) == 1 and "BEGIN CERTIFICATE" in tls["client_cert_chain"][0]
    with pytest.raises(httpx.TransportError), https_client(server, certs) as anonymous:
        anonymous.get("/")


def test_alpn_h2_with_httpx(start_server: StartServer, certs: Certs) -> None:
    server = start_server(*certs.args())
    with https_client(server, certs, http2=True) as client:
        response = client.get("/scope")
    assert response.http_version == "HTTP/2"
    scope = response.json()
    assert scope["http_version"] == "2"
    assert scope["scheme"] == "https"
    assert "tls" in scope["extensions"]
    assert not any(name.startswith(":") for name, _ in scope["headers"])


def test_no_http2_offers_only_http11(start_server: StartServer, certs: Certs) -> None:
    server = start_server(*certs.args("--no-http2"))
    with https_client(server, certs, http2=True) as client:
        assert client.get("/").http_version == "HTTP/1.1"


def test_wss_scheme(start_server: StartServer, certs: Certs) -> None:
    server = start_server(*certs.args(), app="tests.e2e.ws_apps:app")
    url = server.url.replace("https://", "wss://") + "/info"

    async def first_message() -> str:
        # The asyncio client, not the sync one: over TLS the sync client's reader thread and
        # its request write share one SSL object, and about one connection in a few hundred
        # never sent its request (seen in a packet capture: handshake done, no request bytes).
        async with connect(url, ssl=certs.ssl_context()) as ws:
            return str(await ws.recv())

    scope = json.loads(asyncio.run(first_message()))
    assert scope["scheme"] == "wss"
    assert "tls" in scope["extensions"]


@pytest.mark.parametrize(
    ("make_args", "flag"),
    [
        (
            lambda c: ["--ssl-certfile", "/nonexistent/cert.pem", "--ssl-keyfile", str(c.key)],
            "--ssl-certfile",
        ),
        (lambda c: ["--ssl-certfile", str(c.cert), "--ssl-keyfile", "/nonexistent/key.pem"], "--ssl-keyfile"),
        (
            lambda c: [
                "--ssl-certfile",
                str(c.cert),
                "--ssl-keyfile",
                str(c.encrypted_key),
                "--ssl-keyfile-password",
                "wrong",
            ],
            "--ssl-keyfile-password",
        ),
        (
            lambda c: ["--ssl-certfile", str(c.cert), "--ssl-keyfile", str(c.encrypted_key)],
            "--ssl-keyfile-password",
        ),
        (lambda c: ["--ssl-certfile", str(c.cert), "--ssl-keyfile", str(c.ca)], "--ssl-keyfile"),
        (lambda c: [*c.args(), "--ssl-ciphers", "NO-SUCH-CIPHER"], "--ssl-ciphers"),
        (lambda c: [*c.args(), "--ssl-cert-reqs", "2"], "--ssl-cert-reqs"),
    ],
    ids=[
        "missing-cert",
        "missing-key",
        "wrong-password",
        "no-password",
        "not-a-key",
        "ciphers",
        "reqs-no-ca",
    ],
)
def test_bad_tls_options_exit_3_with_one_line(certs: Certs, make_args, flag: str) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(["tests.e2e.apps:app", "--port", "0", *make_args(certs)])
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert flag in lines[0]
    assert "Traceback" not in result.stderr
