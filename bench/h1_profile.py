"""In-process HTTP/1.1 harness: replay what wrk sends to squall's ``HTTP1Connection``s.

No sockets, no other process: ``-c`` connections (fake transports that count what is written)
each get one keep-alive ``GET /`` per round, all in one pass of the event loop as epoll would hand
them over, and each round runs until every response is complete. Everything squall does per
request runs (llhttp, the request checks, the ASGI cycle, the task per request, the app, the
response framing) except the socket calls, so the instruction count per request is repeatable
whatever else the machine does. Socket calls are counted instead (``writes``)::

    python bench/h1_profile.py                      # hello: time per request (noisy)
    python bench/h1_profile.py --app stream         # 100 x 64 B chunks per response
    python bench/h1_profile.py --app bench.framework_apps:starlette_app --path /json
    python bench/h1_profile.py --app bench.framework_apps:fastapi_app --path /items \\
        --post-json '{"name": "w", "price": 9.5}'
    python bench/h1_profile.py --profile            # cProfile, top functions
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out python bench/h1_profile.py -n 2000
    python bench/h1_profile.py -n 0                 # the same run without requests: subtract it
    python bench/h1_profile.py -c 1024 --per-pass 64  # 1,024 connections, 64 requests per pass

``bash bench/instructions.sh`` runs the subtraction for every app and HTTP version.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import pstats
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import apps
from squall.config import build
from squall.process import collector
from squall.server.accept import serving_state
from squall.server.http1 import HTTP1Connection
from squall.server.state import DefaultHeaders

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8765\r\n\r\n"  # what wrk sends


class Transport:
    """Just enough of an asyncio transport: counts what is written."""

    def __init__(self) -> None:
        self.written = 0
        self.writes = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += len(data)
        self.writes += 1

    def writelines(self, data: list[bytes]) -> None:
        self.written += sum(map(len, data))
        self.writes += 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8765)}.get(name, default)

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def make_connections(
    loop: asyncio.AbstractEventLoop, app: Any, count: int
) -> list[tuple[HTTP1Connection, Transport]]:
    config = build({"access_log": False, "timeout_keep_alive": None})
    headers = DefaultHeaders(config.http.server_header, config.http.date_header, config.http.header)
    server = serving_state(config, app, loop, headers.get, {})
    made = []
    for _ in range(count):
        conn, transport = HTTP1Connection(server), Transport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        made.append((conn, transport))
    collector.tune_for_serving()  # as a worker does once serving
    return made


async def replay(
    conns: list[tuple[HTTP1Connection, Transport]],
    requests: int,
    request: bytes = REQUEST,
    per_pass: int | None = None,
) -> None:
    """Send ``requests`` requests, ``per_pass`` connections' worth per pass of the event loop
    (all of them by default), taking the connections in turn, each batch served to completion."""
    server = conns[0][0].server
    per_pass = min(per_pass or len(conns), len(conns))
    sent = 0
    at = 0
    while sent < requests:
        count = min(per_pass, requests - sent)
        for _ in range(count):
            conns[at][0].data_received(request)
            at = at + 1 if at + 1 < len(conns) else 0
        sent += count
        while server.total_requests < sent or server.active_requests:
            await asyncio.sleep(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--requests", type=int, default=20000)
    parser.add_argument("-c", "--connections", type=int, default=64)
    parser.add_argument(
        "--app", default="hello", help="an app of bench/apps.py (hello, stream, big), or module:attribute"
    )
    parser.add_argument("--path", default="/", help="the path requested (/json for framework_apps)")
    parser.add_argument("--post-json", metavar="JSON", help="POST this JSON body instead of a GET")
    parser.add_argument(
        "--per-pass",
        type=int,
        metavar="N",
        help="requests started per pass of the event loop (default: one per connection)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the replay")
    parser.add_argument("--asyncio", action="store_true", help="asyncio's loop instead of uvloop")
    args = parser.parse_args()
    if args.asyncio:
        loop = asyncio.new_event_loop()
    else:
        import uvloop

        loop = uvloop.new_event_loop()
    if ":" in args.app:
        module, _, name = args.app.partition(":")
        app = getattr(importlib.import_module(module), name)
    else:
        app = getattr(apps, args.app)
    conns = make_connections(loop, app, args.connections)
    request = REQUEST.replace(b" / ", b" " + args.path.encode() + b" ", 1)
    if args.post_json is not None:
        body = args.post_json.encode()
        head = b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        request = b"POST" + request[3:-2] + head + body
    profiler = cProfile.Profile() if args.profile else None
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    loop.run_until_complete(replay(conns, args.requests, request, args.per_pass))
    if profiler is not None:
        profiler.disable()
    elapsed = time.perf_counter() - started
    served = conns[0][0].server.total_requests
    if served != args.requests:
        sys.exit(f"served {served} of {args.requests} requests")
    if served:
        writes = sum(t.writes for _, t in conns)
        written = sum(t.written for _, t in conns)
        print(
            f"{served} requests in {elapsed:.3f} s: {elapsed / served * 1e6:.1f} us/request, "
            f"{writes} writes, {written} bytes"
        )
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(40)


if __name__ == "__main__":
    main()
