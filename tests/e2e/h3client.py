"""An HTTP/3 client for the end-to-end tests, on aioquic's asyncio QUIC client and H3 layer.

``h3_connect(port)`` yields an ``H3Client``; ``await client.request(...)`` returns a ``Reply`` once
the response is complete (``client.start(...)`` returns it at once, for streaming). ``client.deaf``
makes the client drop every datagram it receives: a peer that never reads (nothing acknowledged);
``client.stingy`` makes it stop raising its request streams' MAX_STREAM_DATA: a peer that keeps
the connection alive but takes no more of a response than the credit it already gave.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamReset
from cryptography import x509
from cryptography.hazmat.primitives import serialization

Fields = list[tuple[bytes, bytes]]


class Reply:
    """One response as it arrives: heads (interim, final, trailers), body, end or reset."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.heads: list[Fields] = []
        self.body = bytearray()
        self.chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self.done: asyncio.Future[None] = loop.create_future()
        self.reset: int | None = None

    @property
    def final(self) -> Fields:
        return next(h for h in self.heads if not dict(h)[b":status"].startswith(b"1"))

    @property
    def status(self) -> int:
        return int(dict(self.final)[b":status"])

    def header(self, name: bytes) -> bytes | None:
        return dict(self.final).get(name)

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


class H3Client(QuicConnectionProtocol):
    """aioquic's QUIC client protocol with an H3 connection and per-stream replies."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.replies: dict[int, Reply] = {}
        self.terminated: asyncio.Future[ConnectionTerminated] = asyncio.get_running_loop().create_future()
        self.deaf = False
        self.stingy = False
        quic = self._quic
        raise_limits = quic._write_stream_limits

        def write_stream_limits(builder: Any, space: Any, stream: Any) -> None:
            if not (self.stingy and stream.stream_id is not None and stream.stream_id % 4 == 0):
                raise_limits(builder, space, stream)

        quic._write_stream_limits = write_stream_limits  # type: ignore[method-assign]

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        if not self.deaf:
            super().datagram_received(data, addr)

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            if not self.terminated.done():
                self.terminated.set_result(event)
            for reply in self.replies.values():
                if not reply.done.done():
                    reply.reset = -1  # cut by the connection's end
                    reply._finish()
        elif isinstance(event, StreamReset) and event.stream_id in self.replies:
            reply = self.replies[event.stream_id]
            reply.reset = event.error_code
            reply._finish()
        for h3_event in self.h3.handle_event(event):
            self._on_h3(h3_event)

    def _on_h3(self, event: H3Event) -> None:
        reply = self.replies.get(getattr(event, "stream_id", -1))
        if reply is None:
            return
        if isinstance(event, HeadersReceived):
            reply.heads.append(event.headers)
        elif isinstance(event, DataReceived) and event.data:
            reply.body += event.data
            reply.chunks.put_nowait(event.data)
        if getattr(event, "stream_ended", False):
            reply._finish()

    def start(
        self,
        method: str = "GET",
        path: str = "/",
        headers: Fields | None = None,
        body: bytes | None = None,
        end: bool = True,
    ) -> tuple[int, Reply]:
        """Send a request; returns its stream id and the reply that will fill in."""
        sid = self._quic.get_next_available_stream_id()
        fields = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            (b":path", path.encode()),
            *(headers or []),
        ]
        reply = self.replies[sid] = Reply(asyncio.get_running_loop())
        self.h3.send_headers(sid, fields, end_stream=end and body is None)
        if body is not None:
            self.h3.send_data(sid, body, end)
        self.transmit()
        return sid, reply

    def send_body(self, sid: int, data: bytes, end: bool) -> None:
        self.h3.send_data(sid, data, end)
        self.transmit()

    async def request(
        self, method: str = "GET", path: str = "/", timeout: float = 20.0, **kwargs: Any
    ) -> Reply:
        _, reply = self.start(method, path, **kwargs)
        await asyncio.wait_for(asyncio.shield(reply.done), timeout)
        return reply


def configuration(
    ca: Path | None = None, client_cert: Path | None = None, **kwargs: Any
) -> QuicConfiguration:
    config = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name="localhost", **kwargs)
    if client_cert is not None:  # a PEM file with the certificate chain and its key, in any order
        pem = client_cert.read_bytes()
        chain = x509.load_pem_x509_certificates(pem)
        config.certificate, config.certificate_chain = chain[0], chain[1:]
        key = re.search(rb"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", pem, re.S)
        assert key is not None, f"no private key in {client_cert}"
        config.private_key = serialization.load_pem_private_key(key[0], password=None)  # type: ignore[assignment]
    if ca is None:
        config.verify_mode = ssl.CERT_NONE
    else:
        config.load_verify_locations(str(ca))
    return config


@asynccontextmanager
async def h3_connect(
    port: int, ca: Path | None = None, host: str = "127.0.0.1", client_cert: Path | None = None, **kwargs: Any
) -> AsyncIterator[H3Client]:
    """An HTTP/3 connection to squall's UDP ``port`` (presenting ``client_cert`` when asked)."""
    async with connect(
        host, port, configuration=configuration(ca, client_cert, **kwargs), create_protocol=H3Client
    ) as client:
        yield client  # type: ignore[misc]
