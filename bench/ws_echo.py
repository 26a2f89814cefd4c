"""WebSocket echo load generator: N connections, one message in flight on each; prints msgs/s.

``python bench/ws_echo.py --port 8000 [--conns 64] [--size 32] [--duration 10] [--warmup 2]``

A raw asyncio client (uvloop when installed) rather than the ``websockets`` client library: on
one core the library tops out well below what a fast server answers (its per-message work is
larger than the server's), so it would measure itself. Here each connection does the opening
handshake for real (key, 101 and ``Sec-WebSocket-Accept`` checked), then sends one pre-masked
binary frame and counts whole echoed frames (header + payload) before sending the next.
No permessage-deflate is offered, so both servers frame uncompressed. The last stdout line is
``msgs_per_sec=<float>``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import sys
import time

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def masked_frame(payload: bytes) -> bytes:
    """One FIN binary frame from a client (masked), payload < 64 KiB."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    length = len(payload)
    head = bytes((0x82, 0x80 | length)) if length < 126 else bytes((0x82, 0xFE)) + length.to_bytes(2, "big")
    return head + mask + body


class EchoClient(asyncio.Protocol):
    """One connection: handshake, then ping-pong one frame at a time."""

    def __init__(self, frame: bytes, reply_size: int, key: bytes, ready: asyncio.Future[None]) -> None:
        self.frame = frame
        self.reply_size = reply_size
        self.key = key
        self.ready = ready
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.pending = 0
        self.count = 0
        self.open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.open:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            head, _, rest = self.head.partition(b"\r\n\r\n")
            expected = base64.b64encode(hashlib.sha1(self.key + _GUID).digest())
            lines = head.lower().split(b"\r\n")
            if (
                not lines[0].startswith(b"http/1.1 101")
                or b"sec-websocket-accept: " + expected.lower() not in lines
            ):
                self.ready.set_exception(RuntimeError(f"handshake failed: {head[:200]!r}"))
                return
            self.open = True
            self.ready.set_result(None)
            data = rest
            if not data:
                return
        self.pending += len(data)
        size = self.reply_size
        if self.pending >= size:
            done, self.pending = divmod(self.pending, size)
            self.count += done
            assert self.transport is not None
            self.transport.write(self.frame)

    def start(self) -> None:
        assert self.transport is not None
        self.transport.write(self.frame)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost during handshake: {exc}"))
        self.open = False


async def run(host: str, port: int, *, conns: int, size: int, duration: float, warmup: float) -> float:
    loop = asyncio.get_running_loop()
    payload = os.urandom(size)
    frame = masked_frame(payload)
    reply_size = (2 if size < 126 else 4) + size
    clients: list[EchoClient] = []
    for _ in range(conns):
        key = base64.b64encode(os.urandom(16))
        ready: asyncio.Future[None] = loop.create_future()
        _, client = await loop.create_connection(
            lambda key=key, ready=ready: EchoClient(frame, reply_size, key, ready), host, port
        )
        assert client.transport is not None
        client.transport.write(
            b"GET /ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (host.encode(), port, key)
        )
        await asyncio.wait_for(ready, 10)
        clients.append(client)
    for client in clients:
        client.start()
    await asyncio.sleep(warmup)
    start_count = sum(c.count for c in clients)
    start = time.perf_counter()
    await asyncio.sleep(duration)
    elapsed = time.perf_counter() - start
    total = sum(c.count for c in clients) - start_count
    if any(not c.open for c in clients):
        raise RuntimeError("a connection closed during the run")
    for client in clients:
        assert client.transport is not None
        client.transport.abort()
    return total / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--conns", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run  # type: ignore[assignment]
    rate = runner(
        run(
            args.host, args.port, conns=args.conns, size=args.size, duration=args.duration, warmup=args.warmup
        )
    )
    print(f"msgs_per_sec={rate:.0f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
