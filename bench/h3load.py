"""An HTTP/3 load generator on aioquic (Debian's h2load is built without QUIC).

    python bench/h3load.py --port 8443 --connections 8 --streams 10 --duration 10 [--path /]

Opens ``--connections`` QUIC connections (ALPN h3, certificate not verified) and keeps
``--streams`` requests in flight on each for ``--duration`` seconds; prints one JSON line: completed
requests, req/s, bytes received, errors, and this process's CPU use over the run (``client_cpu``:
1.0 means one core busy). A generator near 1.0 is at its own ceiling: its req/s then measures
the generator, not the server, which is why bench/h3_run.sh also reports its ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import time
from typing import Any

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamReset


class LoadClient(QuicConnectionProtocol):
    """Requests on one connection; each stream's end resolves its future with the body size."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.waiting: dict[int, asyncio.Future[int]] = {}
        self.sizes: dict[int, int] = {}
        self.statuses: dict[int, bytes] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            for future in self.waiting.values():
                if not future.done():
                    future.set_exception(ConnectionError(event.reason_phrase))
        elif isinstance(event, StreamReset) and event.stream_id in self.waiting:
            self.waiting[event.stream_id].set_exception(ConnectionError("stream reset"))
        for h3_event in self.h3.handle_event(event):
            self._on(h3_event)

    def _on(self, event: H3Event) -> None:
        sid = getattr(event, "stream_id", -1)
        if sid not in self.waiting:
            return
        if isinstance(event, HeadersReceived):
            self.statuses.setdefault(sid, dict(event.headers).get(b":status", b""))
        elif isinstance(event, DataReceived):
            self.sizes[sid] = self.sizes.get(sid, 0) + len(event.data)
        if getattr(event, "stream_ended", False):
            future = self.waiting.pop(sid)
            size = self.sizes.pop(sid, 0)
            status = self.statuses.pop(sid, b"")
            if not future.done():
                if status == b"200":
                    future.set_result(size)
                else:
                    future.set_exception(ConnectionError(f"status {status!r}"))

    async def get(self, authority: bytes, path: bytes) -> int:
        sid = self._quic.get_next_available_stream_id()
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waiting[sid] = future
        fields = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", authority), (b":path", path)]
        self.h3.send_headers(sid, fields, end_stream=True)
        self.transmit()
        return await future


async def run(args: argparse.Namespace) -> dict[str, Any]:
    config = QuicConfiguration(is_client=True, alpn_protocols=["h3"], verify_mode=ssl.CERT_NONE)
    config.max_stream_data = config.max_data = 16 * 1024 * 1024
    authority = f"{args.host}:{args.port}".encode()
    path = args.path.encode()
    done = 0
    received = 0
    errors = 0
    stop_at = 0.0

    async def worker(client: LoadClient) -> None:
        nonlocal done, received, errors
        while time.monotonic() < stop_at:
            try:
                size = await client.get(authority, path)  # (not `received += await`: a lost update)
                received += size
                done += 1
            except ConnectionError:
                errors += 1
                return

    async def connection() -> None:
        async with connect(args.host, args.port, configuration=config, create_protocol=LoadClient) as client:
            await asyncio.gather(*(worker(client) for _ in range(args.streams)))  # type: ignore[arg-type]

    cpu0, wall0 = time.process_time(), time.monotonic()
    stop_at = wall0 + args.duration
    await asyncio.gather(*(connection() for _ in range(args.connections)), return_exceptions=True)
    wall = time.monotonic() - wall0
    return {
        "requests": done,
        "rps": round(done / wall, 1),
        "bytes": received,
        "errors": errors,
        "seconds": round(wall, 2),
        "client_cpu": round((time.process_time() - cpu0) / wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
