"""The ceiling: a bare uvloop protocol with no HTTP parser, no ASGI and no app.

``python bench/raw_server.py --port P`` answers every request head (counted by its blank line)
with a fixed hello-world response, and does the websocket opening handshake then echoes each
frame unmasked (single-frame messages under 126 bytes: what bench/ws_echo.py sends). Nothing is
checked: it only shows what the event loop and the kernel cost, so a server's figure can be read
as a share of what any Python server on uvloop could reach on this machine. ``--spin-us N`` adds N
µs of busy work per request (a server's own cost, to study the loop under saturation) and
``--loop asyncio`` runs it on asyncio's own loop.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import socket
import time

import uvloop

#: ``--spin-us``: seconds of busy work per request head (0: none), to mimic a server's own cost.
SPIN = 0.0

HELLO = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 12\r\n"
    b"date: Mon, 07 Dec 2026 10:00:00 GMT\r\nserver: raw\r\n\r\nHello world!"
)
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Raw(asyncio.Protocol):
    """HTTP hello for every head; after an Upgrade head, a websocket echo."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.ws = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.ws:
            self._frames(data)
            return
        buffer = self.buffer + data
        heads = buffer.count(b"\r\n\r\n")
        if not heads:
            self.buffer = buffer
            return
        if b"Upgrade: websocket" in buffer or b"upgrade: websocket" in buffer:
            self._handshake(buffer)
            return
        self.buffer = buffer[buffer.rindex(b"\r\n\r\n") + 4 :]
        if SPIN:
            until = time.perf_counter() + SPIN * heads
            while time.perf_counter() < until:
                pass
        assert self.transport is not None
        self.transport.write(HELLO * heads)

    def _handshake(self, head: bytes) -> None:
        key = b""
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"sec-websocket-key:"):
                key = line.split(b":", 1)[1].strip()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
            b"sec-websocket-accept: " + accept + b"\r\n\r\n"
        )
        self.ws = True
        self.buffer = b""

    def _frames(self, data: bytes) -> None:
        buffer = self.buffer + data
        out = []
        while len(buffer) >= 6:
            size = buffer[1] & 0x7F
            end = 6 + size
            if len(buffer) < end:
                break
            mask = buffer[2:6]
            payload = bytes(b ^ mask[i & 3] for i, b in enumerate(buffer[6:end]))
            out.append(bytes((buffer[0], size)) + payload)
            buffer = buffer[end:]
        self.buffer = buffer
        if out:
            assert self.transport is not None
            self.transport.write(b"".join(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--backlog", type=int, default=4096)
    parser.add_argument("--spin-us", type=float, default=0.0, help="busy work per request, µs")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    global SPIN  # set once, before serving
    SPIN = args.spin_us / 1e6
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(args.backlog)

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(Raw, sock=sock, backlog=args.backlog)
        await server.serve_forever()

    if args.loop == "asyncio":
        asyncio.run(serve())
    else:
        uvloop.run(serve())


if __name__ == "__main__":
    main()
