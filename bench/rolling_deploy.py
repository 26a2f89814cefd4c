"""A rolling deploy of two squall nodes behind nginx, under load; prints what the clients saw.

    python -m bench.rolling_deploy [--seconds 20] [--clients 4] [--workers 2]

Two squall nodes (``--workers 2`` each, ``tests/e2e/node_apps.py``, "old" code) behind nginx with
the README's configuration, on loopback. Keep-alive clients send GETs and POSTs through nginx
while node A is drained (SIGTERM), restarted with the "new" code and taken back by nginx, then
node B. Load runs ``--seconds`` before, between and after the two deploys. Prints the requests by
method (failed of total), the responses per node and code, and each node's drain time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tests.e2e.balancer import NGINX, Load, rolling_deploy, running_nginx, start_nodes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="load before, between and after the deploys"
    )
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--extra", default="", help="more squall flags for every node")
    args = parser.parse_args()
    if NGINX is None:
        print("nginx is not installed (apt-get install nginx-light)", file=sys.stderr)
        return 2
    extra = args.extra.split()
    nodes = start_nodes(["A", "B"], extra=extra)
    try:
        with (
            tempfile.TemporaryDirectory() as workdir,
            running_nginx(Path(workdir), [n.address for n in nodes]) as proxy,
        ):
            with Load("127.0.0.1", proxy.port, args.clients) as load:
                time.sleep(args.seconds)  # the load's duration, not a readiness wait
                drains = rolling_deploy(nodes, load, extra=extra)
                time.sleep(args.seconds)
                counts = load.stop()
            upstream_errors = [line for line in proxy.log().splitlines() if "[error]" in line]
    finally:
        for node in nodes:
            node.server.stop(60)
            node.server.kill()
    print(counts.describe())
    for line in upstream_errors[:10]:
        print("nginx:", line)
    for node, seconds in zip(nodes, drains, strict=True):
        print(f"node {node.name} drained in {seconds:.2f} s")
    return 1 if sum(counts.failed.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
