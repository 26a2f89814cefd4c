"""Helpers for the TLS and HTTP/2 end-to-end tests: certificates made in the test (trustme), an
HTTPS client, and a small blocking HTTP/2 client over a raw socket (h2 as the peer)."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import httpx
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from h2.connection import ConnectionState

from .harness import Server

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@dataclass
class Certs:
    ca: Path
    cert: Path
    key: Path
    encrypted_key: Path
    client_pem: Path  # client cert + key, one file
    authority: trustme.CA
    server_pem: str = ""

    def ssl_context(self, client_cert: bool = False, alpn: list[str] | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        if client_cert:
            context.load_cert_chain(str(self.client_pem))
        if alpn:
            context.set_alpn_protocols(alpn)
        return context

    def args(self, *extra: str) -> list[str]:
        return ["--ssl-certfile", str(self.cert), "--ssl-keyfile", str(self.key), *extra]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A CA, a server certificate for 127.0.0.1/localhost (plain and encrypted key), a client cert."""
    folder = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client@example.com", common_name="test-client")
    paths = {name: folder / name for name in ("ca.pem", "cert.pem", "key.pem", "enc.pem", "client.pem")}
    ca.cert_pem.write_to_path(str(paths["ca.pem"]))
    leaf.cert_chain_pems[0].write_to_path(str(paths["cert.pem"]))
    for pem in leaf.cert_chain_pems[1:]:
        pem.write_to_path(str(paths["cert.pem"]), append=True)
    leaf.private_key_pem.write_to_path(str(paths["key.pem"]))
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    paths["enc.pem"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"sesame"),
        )
    )
    client.private_key_and_cert_chain_pem.write_to_path(str(paths["client.pem"]))
    return Certs(
        ca=paths["ca.pem"],
        cert=paths["cert.pem"],
        key=paths["key.pem"],
        encrypted_key=paths["enc.pem"],
        client_pem=paths["client.pem"],
        authority=ca,
        server_pem=leaf.cert_chain_pems[0].bytes().decode(),
    )


def https_client(server: Server, certs: Certs, **kwargs: object) -> httpx.Client:
    return httpx.Client(base_url=server.url, verify=certs.ssl_context(), timeout=10.0, **kwargs)  # type: ignore[arg-type]


@dataclass
class Reply:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    informational: list[list[tuple[bytes, bytes]]] = field(default_factory=list)
    ended: bool = False
    reset: int | None = None

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.headers if n == name), None)


class H2Client:
    """A blocking HTTP/2 client on a raw socket: prior knowledge (or TLS with ALPN h2)."""

    def __init__(
        self,
        port: int,
        *,
        host: str = "127.0.0.1",
        settings: dict[int, int] | None = None,
        context: ssl.SSLContext | None = None,
        connect: bool = True,
        timeout: float = 10.0,
    ) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname=host)
        self.sock = sock
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=config)
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.replies: dict[int, Reply] = {}
        self.events: list[h2.events.Event] = []
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.closed = False
        self.auto_ack = True
        self._buffer = bytearray()
        self._seen_frame = False
        if connect:
            self.conn.initiate_connection()
            self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(
        self,
        path: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
        end: bool = True,
    ) -> int:
        sid = self.conn.get_next_available_stream_id()
        head = [
            (b":method", method.encode()),
            (b":path", path.encode()),
            (b":scheme", b"http"),
            (b":authority", b"example.com"),
            *(headers or []),
        ]
        self.conn.send_headers(sid, head, end_stream=body is None and end)
        if body is not None:
            self.send_body(sid, body, end=end)
        self.replies[sid] = Reply()
        self.flush()
        return sid

    def send_body(self, sid: int, body: bytes, end: bool = True) -> None:
        """Send ``body`` as the windows allow (reading the server's WINDOW_UPDATEs meanwhile)."""
        view = memoryview(body)
        while view:
            window = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if window <= 0:
                self.flush()
                self.receive_once()
                continue
            self.conn.send_data(sid, bytes(view[:window]))
            view = view[window:]
        if end:
            self.conn.end_stream(sid)
        self.flush()

    def receive_once(self) -> list[h2.events.Event]:
        data = self.sock.recv(65536)
        if not data:
            self.closed = True
            return []
        events = self._feed(data)
        for event in events:
            self._apply(event)
        self.events.extend(events)
        self.flush()
        return events

    def _feed(self, data: bytes) -> list[h2.events.Event]:
        """Feed whole frames one by one: h2 refuses every frame after a GOAWAY, but a server that
        sends GOAWAY(NO_ERROR) may still finish the streams it names, so keep the connection open."""
        self._buffer += data
        events: list[h2.events.Event] = []
        buffer = self._buffer
        start = 0
        while len(buffer) - start >= 9:
            size = int.from_bytes(buffer[start : start + 3], "big")
            if len(buffer) - start < 9 + size:
                break
            events += self.conn.receive_data(bytes(buffer[start : start + 9 + size]))
            start += 9 + size
            self._seen_frame = True
            if self.conn.state_machine.state == ConnectionState.CLOSED and any(
                isinstance(e, h2.events.ConnectionTerminated) and not e.error_code for e in events
            ):
                self.conn.state_machine.state = ConnectionState.CLIENT_OPEN
        del buffer[:start]
        return events

    def _apply(self, event: h2.events.Event) -> None:
        sid = getattr(event, "stream_id", 0)
        reply = self.replies.setdefault(sid, Reply()) if sid else None
        if isinstance(event, h2.events.ResponseReceived) and reply is not None:
            reply.headers = list(event.headers)  # type: ignore[arg-type]
            reply.status = int(dict(reply.headers)[b":status"])
        elif isinstance(event, h2.events.InformationalResponseReceived) and reply is not None:
            reply.informational.append(list(event.headers))  # type: ignore[arg-type]
        elif isinstance(event, h2.events.DataReceived) and reply is not None:
            reply.body += event.data or b""
            if self.auto_ack:
                self.conn.acknowledge_received_data(event.flow_controlled_length or 0, sid)
        elif isinstance(event, h2.events.TrailersReceived) and reply is not None:
            reply.trailers = list(event.headers)  # type: ignore[arg-type]
        elif isinstance(event, h2.events.StreamEnded) and reply is not None:
            reply.ended = True
        elif isinstance(event, h2.events.StreamReset) and reply is not None:
            reply.reset = int(event.error_code or 0)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event

    def wait(self, sid: int) -> Reply:
        """Read until stream ``sid`` ends or is reset (or the connection closes)."""
        reply = self.replies.setdefault(sid, Reply())
        while not (reply.ended or reply.reset is not None or self.closed):
            self.receive_once()
        return reply

    def wait_goaway(self) -> h2.events.ConnectionTerminated:
        while self.goaway is None and not self.closed:
            self.receive_once()
        assert self.goaway is not None, "connection closed without GOAWAY"
        return self.goaway

    def read_until_closed(self) -> None:
        try:
            while not self.closed:
                self.receive_once()
        except (ConnectionResetError, h2.exceptions.ProtocolError):
            self.closed = True

    def close(self) -> None:
        self.sock.close()
