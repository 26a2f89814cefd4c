"""Hold many idle connections open against a server: keep-alive HTTP/1.1 or websockets.

``python bench/hold.py --port P --conns 10000 [--ws] [--broadcast]``

Each HTTP connection sends one ``GET /`` and reads its response, then stays open, idle. Each
websocket connection does the opening handshake and then waits. Once all are open the script
prints ``ready <n>`` and waits for a line on stdin; with ``--broadcast`` that line makes it ask
``GET /broadcast`` (``bench/ws_app.py:hub``) and time until every websocket has its message
(``broadcast_ms=<float>``). Then it prints ``open <n>`` (how many are still open) and exits.
Connections are opened ``--batch`` at a time, so the server's accept backlog is not what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


class Held(asyncio.Protocol):
    """One connection: its request or handshake, then idle; counts what arrives afterwards."""

    def __init__(self, ws: bool, opened: asyncio.Future[None]) -> None:
        self.ws = ws
        self.opened = opened
        self.buffer = b""
        self.open = False
        self.closed = False
        self.after_open = 0
        self.got_message: asyncio.Future[float] = opened.get_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        write = transport.write  # type: ignore[attr-defined]
        if self.ws:
            key = base64.b64encode(os.urandom(16))
            write(
                b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
        else:
            write(REQUEST)

    def data_received(self, data: bytes) -> None:
        if self.open:
            self.after_open += len(data)
            if not self.got_message.done():
                self.got_message.set_result(time.perf_counter())
            return
        self.buffer += data
        head, sep, rest = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        if self.ws:
            ok = head.startswith(b"HTTP/1.1 101")
        else:
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ),
                None,
            )
            ok = head.startswith(b"HTTP/1.1 200") and (length is None or len(rest) >= length)
            if length is None and not rest.endswith(b"0\r\n\r\n"):
                return  # chunked: wait for the end
        if not ok and not head.startswith(b"HTTP/1.1 200"):
            if not self.opened.done():
                self.opened.set_exception(RuntimeError(f"bad answer: {head[:80]!r}"))
            return
        if ok:
            self.open = True
            if rest and self.ws:
                self.data_received(rest)
            if not self.opened.done():
                self.opened.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed before it opened"))


async def open_all(port: int, conns: int, ws: bool, batch: int) -> list[Held]:
    loop = asyncio.get_running_loop()
    held: list[Held] = []
    for start in range(0, conns, batch):
        waits = []
        for _ in range(min(batch, conns - start)):
            opened: asyncio.Future[None] = loop.create_future()
            _, protocol = await loop.create_connection(lambda o=opened: Held(ws, o), "127.0.0.1", port)
            held.append(protocol)
            waits.append(opened)
        await asyncio.gather(*waits)
    return held


async def broadcast(port: int, held: list[Held]) -> float:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /broadcast HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    await writer.drain()
    done = await asyncio.wait_for(asyncio.gather(*(h.got_message for h in held)), 120)
    await reader.read()
    writer.close()
    return (max(done) - started) * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--conns", type=int, default=10000)
    parser.add_argument("--ws", action="store_true")
    parser.add_argument("--broadcast", action="store_true")
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    held = await asyncio.wait_for(open_all(args.port, args.conns, args.ws, args.batch), 300)
    print(f"ready {len(held)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if args.broadcast:
        print(f"broadcast_ms={await broadcast(args.port, held):.1f}", flush=True)
    print(f"open {sum(not h.closed for h in held)}", flush=True)


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
