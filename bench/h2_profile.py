"""In-process HTTP/2 harness: replay what h2load sends to one squall HTTP/2 connection.

No sockets, no other process: the client's bytes are made up front by an ``h2`` client (the frames
h2load sends for ``-m 10``: the preface, then batches of ten HEADERS with END_STREAM whose blocks
are all indexed once HPACK's dynamic table is primed), fed to ``H2Connection.data_received`` batch
by batch on an event loop, and each batch runs until every stream has finished. Everything squall
does per request runs (HTTP/2 framing, HPACK, the ASGI cycle, the task per request, the app)
except the socket calls, so the instruction count per request is repeatable whatever else the
machine does::

    python bench/h2_profile.py                      # time per request (noisy on a busy machine)
    python bench/h2_profile.py --profile            # cProfile, top functions
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out python bench/h2_profile.py -n 2000
    python bench/h2_profile.py -n 0                 # the same run without requests: subtract it
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import apps
from squall.config import build
from squall.process import collector
from squall.server.accept import serving_state
from squall.server.http2 import H2Connection
from squall.server.state import DefaultHeaders

HEADERS = [
    (b":method", b"GET"),
    (b":path", b"/"),
    (b":scheme", b"http"),
    (b":authority", b"127.0.0.1:8765"),
    (b"user-agent", b"h2load nghttp2/1.64.0"),
]
# What h2load (nghttp2 1.64) announces: no push, a 2^30-1 window; and its connection WINDOW_UPDATE.
H2LOAD_SETTINGS = {
    h2.settings.SettingCodes.ENABLE_PUSH: 0,
    h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**30 - 1,
}
SETTINGS_ACK = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"


def client_batches(requests: int, streams: int) -> list[bytes]:
    """The client's bytes: one chunk per batch of ``streams`` requests (the first with the preface).

    The first batch comes from an ``h2`` client (literals that prime the HPACK table); after it
    every request's block is the same indexed one, so the later batches are that frame with new
    stream ids — made without running the client, which would otherwise be most of a profile."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.local_settings = h2.settings.Settings(client=True, initial_values=H2LOAD_SETTINGS)
    client.initiate_connection()
    client.increment_flow_control_window(2**30 - 2**16)
    first = min(streams, requests)
    for n in range(first):
        client.send_headers(2 * n + 1, HEADERS, end_stream=True)
    batches = [client.data_to_send() + (SETTINGS_ACK if first else b"")]
    if requests <= first:
        return batches
    client.send_headers(2 * first + 1, HEADERS, end_stream=True)
    block = client.data_to_send()[9:]  # a primed table: the same block for every request
    head = len(block).to_bytes(3, "big") + bytes([1, 5])  # HEADERS, END_STREAM | END_HEADERS
    sids = iter(range(2 * first + 1, 2 * requests + 1, 2))
    for start in range(first, requests, streams):
        count = min(streams, requests - start)
        batches.append(b"".join(head + next(sids).to_bytes(4, "big") + block for _ in range(count)))
    return batches


class Transport:
    """Just enough of an asyncio transport: counts what is written."""

    def __init__(self) -> None:
        self.written = 0
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)
        self.writes += 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8765)}.get(name, default)

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...
    def is_closing(self) -> bool:
        return False


def make_connection(loop: asyncio.AbstractEventLoop, app: Any = apps.hello) -> tuple[H2Connection, Transport]:
    config = build({"access_log": False, "timeout_keep_alive": None})
    headers = DefaultHeaders(config.http.server_header, config.http.date_header, config.http.header)
    server = serving_state(config, app, loop, headers.get, {})
    transport = Transport()
    template = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.5"},
        "scheme": "http",
        "server": ("127.0.0.1", 8765),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "state": {},
        "extensions": {},
    }
    conn = H2Connection(server, transport, template)  # type: ignore[arg-type]
    collector.tune_for_serving()  # as a worker does once serving
    return conn, transport


async def replay(conn: H2Connection, batches: list[bytes], *, start: bool = True) -> None:
    if start:
        conn.start()
    for batch in batches:
        conn.data_received(batch)
        while conn.streams:
            await asyncio.sleep(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--requests", type=int, default=20000)
    parser.add_argument("-m", "--streams", type=int, default=10)
    parser.add_argument(
        "--warmup",
        type=int,
        default=100,
        help="requests replayed before the measured ones, in every run (-n 0 too): the first "
        "connection's one-time work (hpack's import, the first header blocks) is left out",
    )
    parser.add_argument("--app", default="hello", help="an app of bench/apps.py (hello, stream, big)")
    parser.add_argument("--profile", action="store_true", help="cProfile the replay")
    parser.add_argument("--asyncio", action="store_true", help="asyncio's loop instead of uvloop")
    args = parser.parse_args()
    warmup = args.warmup - args.warmup % args.streams
    batches = client_batches(warmup + args.requests, args.streams)
    if args.asyncio:
        loop = asyncio.new_event_loop()
    else:
        import uvloop

        loop = uvloop.new_event_loop()
    conn, transport = make_connection(loop, getattr(apps, args.app))
    warm = warmup // args.streams
    loop.run_until_complete(replay(conn, batches[:warm]))
    conn.server.total_requests = 0
    profiler = cProfile.Profile() if args.profile else None
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    loop.run_until_complete(replay(conn, batches[warm:], start=False))
    if profiler is not None:
        profiler.disable()
    elapsed = time.perf_counter() - started
    served = conn.server.total_requests
    if served != args.requests:
        sys.exit(f"served {served} of {args.requests} requests")
    if served:
        print(
            f"{served} requests in {elapsed:.3f} s: {elapsed / served * 1e6:.1f} us/request, "
            f"{transport.writes} writes, {transport.written} bytes"
        )
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(40)


if __name__ == "__main__":
    main()
