"""What --metrics costs per request: keep-alive hello-world GETs through ``HTTP1Connection`` on fake
transports, in one process (no sockets), so callgrind's instruction count is repeatable on a busy
machine. Compare a run with requests against one without (``-n 0``), with and without metrics::

    for m in "" --metrics; do for n in 0 3000; do
        valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$n$m python bench/metrics_cost.py -n $n $m
    done; done   # (summary(3000) - summary(0)) / 3000 = instructions per request
    python bench/metrics_cost.py -n 20000 --compare   # wall-clock ratio, both in one run
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import apps
from squall.config import build
from squall.server.accept import serving_state
from squall.server.http1 import HTTP1Connection
from squall.server.state import DefaultHeaders

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8765\r\n\r\n"
CONNECTIONS = 64


class Transport:
    """Just enough of an asyncio transport; counts the writes."""

    writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1

    def writelines(self, data: list[bytes]) -> None:
        self.writes += 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8765)}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None: ...


async def run(requests: int, metrics: bool) -> float:
    """Serve ``requests`` GETs over CONNECTIONS keep-alive connections; return the seconds taken."""
    loop = asyncio.get_running_loop()
    config = build({"access_log": False, "timeout_keep_alive": None, "metrics": metrics})
    headers = DefaultHeaders(True, True, [])
    server = serving_state(config, apps.hello, loop, headers.get, {})
    conns = []
    for _ in range(CONNECTIONS):
        conn = HTTP1Connection(server)
        conn.connection_made(Transport())  # type: ignore[arg-type]
        conns.append(conn)
    started = time.perf_counter()
    done = 0
    while done < requests:
        batch = conns[: min(CONNECTIONS, requests - done)]
        before = server.total_requests
        for conn in batch:
            conn.data_received(REQUEST)
        while server.total_requests - before < len(batch):
            await asyncio.sleep(0)
        done += len(batch)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=3000)
    parser.add_argument("--metrics", action="store_true")
    parser.add_argument("--compare", action="store_true", help="off, on, off, on... in one run: the ratio")
    args = parser.parse_args()
    try:
        import uvloop

        new_loop = uvloop.new_event_loop
    except ImportError:
        new_loop = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=new_loop) as runner:
        if not args.compare:
            runner.run(run(args.n, args.metrics))
            return
        off, on = [], []
        for _ in range(5):
            off.append(runner.run(run(args.n, False)))
            on.append(runner.run(run(args.n, True)))
        best_off, best_on = min(off), min(on)
        ratio = best_off / best_on
        print(f"off {args.n / best_off:.0f} req/s, on {args.n / best_on:.0f} req/s, on/off {ratio:.3f}")


if __name__ == "__main__":
    main()
