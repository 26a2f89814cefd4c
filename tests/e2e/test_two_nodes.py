"""The scale-out path: two squall nodes (``--workers 2`` each) in one nginx upstream, replaced one
after the other with new code under load (a rolling deploy), with no failed request. The longer
run that prints the counts is ``python -m bench.rolling_deploy``."""

from __future__ import annotations

from pathlib import Path

import pytest

from .balancer import NGINX, Load, rolling_deploy, running_nginx, start_nodes

pytestmark = [
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx-light)"),
    pytest.mark.timeout(240),
]


def test_rolling_deploy_of_two_nodes_under_load_fails_no_request(tmp_path: Path) -> None:
    nodes = start_nodes(["A", "B"])
    try:
        with (
            running_nginx(tmp_path, [n.address for n in nodes]) as front,
            Load("127.0.0.1", front.port) as load,
        ):
            drains = rolling_deploy(nodes, load)
            total = sum(load.counts.total.values())
            assert load.wait_until(lambda c: sum(c.total.values()) >= total + 200, 60)
            counts = load.stop()
    finally:
        for node in nodes:
            node.server.stop(60)
            node.server.kill()
    print(counts.describe(), "\ndrain seconds:", drains)
    assert sum(counts.failed.values()) == 0, counts.describe()
    assert counts.total["GET"] > 200 and counts.total["POST"] > 200
    for name in ("A", "B"):  # both nodes served the old code, then the new
        assert counts.served_by[(name, "old")] >= 20 and counts.served_by[(name, "new")] >= 20
    assert all(seconds < 10 for seconds in drains), drains
