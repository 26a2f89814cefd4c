"""aioquic's client-side QUIC and HTTP/3 objects as the peer of squall's HTTP/3: a certificate, and
an in-memory pair (``Pair``) that passes datagrams between a client and an ``H3Server`` on a
fake clock, for the sans-I/O tests."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from aioquic.buffer import Buffer
from aioquic.h3.connection import H3Connection
from aioquic.h3.events import H3Event
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import QuicEvent, StreamReset
from aioquic.quic.packet import pull_quic_header

from squall.events import Event
from squall.protocol.http3 import H3Server, server_configuration

CLIENT_ADDR = ("127.0.0.1", 40000)
SERVER_ADDR = ("127.0.0.1", 8443)


@dataclass
class CertFiles:
    ca: Path
    cert: Path
    key: Path


def make_certs(folder: Path) -> CertFiles:
    """A CA and a certificate for 127.0.0.1/localhost, as PEM files in ``folder``."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    files = CertFiles(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    leaf.cert_chain_pems[0].write_to_path(str(files.cert))
    leaf.private_key_pem.write_to_path(str(files.key))
    return files


def client_configuration(ca: Path | None, **kwargs: Any) -> QuicConfiguration:
    configuration = QuicConfiguration(
        is_client=True, alpn_protocols=["h3"], server_name="localhost", **kwargs
    )
    if ca is None:
        configuration.verify_mode = ssl.CERT_NONE
    else:
        configuration.load_verify_locations(str(ca))
    return configuration


class Pair:
    """A client (aioquic) and a server (``H3Server``) connected by lists of datagrams."""

    def __init__(
        self, certs: CertFiles, client_kwargs: dict[str, Any] | None = None, **server_kwargs: Any
    ) -> None:
        self.now = 1000.0
        self.client = QuicConnection(configuration=client_configuration(certs.ca, **(client_kwargs or {})))
        self.client.connect(SERVER_ADDR, now=self.now)
        self.h3 = H3Connection(self.client)
        first = self.client.datagrams_to_send(self.now)
        header = pull_quic_header(Buffer(data=first[0][0]), host_cid_length=8)
        window = server_kwargs.pop("stream_window", 262144)
        idle = server_kwargs.pop("idle_timeout", 60.0)
        config = server_configuration(
            str(certs.cert), str(certs.key), idle_timeout=idle, stream_window=window
        )
        self.server = H3Server(
            config, header.destination_cid, stream_window=window, clock=lambda: self.now, **server_kwargs
        )
        self.server_events: list[Event] = []
        self.client_events: list[H3Event] = []
        self.client_quic_events: list[QuicEvent] = []
        self.deliver_to_client = True
        for data, _ in first:
            self.server_events += self.server.receive_datagram(data, CLIENT_ADDR, self.now)
        self.pump()

    def pump(self, rounds: int = 200) -> Pair:
        """Exchange datagrams until both sides are quiet (firing timers that are due)."""
        for _ in range(rounds):
            moved = False
            for data, _ in self.client.datagrams_to_send(self.now):
                moved = True
                self.server_events += self.server.receive_datagram(data, CLIENT_ADDR, self.now)
            for data, _ in self.server.datagrams_to_send(self.now):
                moved = True
                if self.deliver_to_client:
                    self.client.receive_datagram(data, SERVER_ADDR, self.now)
            self._client_events()
            if not moved and not self._fire_timers(limit=0.05):
                return self
        return self

    def _fire_timers(self, limit: float) -> bool:
        """Advance the clock to the next timer due within ``limit`` seconds and fire it."""
        timers = [t for t in (self.client.get_timer(), self.server.get_timer()) if t is not None]
        due = min(timers, default=None)
        if due is None or due > self.now + limit:
            return False
        self.now = max(self.now, due)
        if (self.client.get_timer() or 1e18) <= self.now:
            self.client.handle_timer(self.now)
        if (self.server.get_timer() or 1e18) <= self.now:
            self.server_events += self.server.handle_timer(self.now)
        self._client_events()
        return True

    def _client_events(self) -> None:
        while (event := self.client.next_event()) is not None:
            self.client_quic_events.append(event)
            self.client_events += self.h3.handle_event(event)

    def request(
        self,
        method: bytes = b"GET",
        path: bytes = b"/",
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes | None = None,
        end: bool = True,
    ) -> int:
        """Send a request on a new stream; returns the stream id."""
        sid = self.client.get_next_available_stream_id()
        fields = [
            (b":method", method),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            (b":path", path),
        ]
        self.h3.send_headers(sid, fields + (headers or []), end_stream=end and body is None)
        if body is not None:
            self.h3.send_data(sid, body, end)
        return sid

    def reset_code(self, sid: int) -> int | None:
        """The error code of the server's RESET_STREAM on ``sid``, if it sent one."""
        for event in self.client_quic_events:
            if isinstance(event, StreamReset) and event.stream_id == sid:
                return event.error_code
        return None

    def take_server_events(self) -> list[Event]:
        events, self.server_events = self.server_events, []
        return events

    def take_client_events(self) -> list[H3Event]:
        events, self.client_events = self.client_events, []
        return events
