"""HTTP/3's GSO batching: which datagrams may leave in one sendmsg (same address, same size but
a shorter last one, at most 64)."""

from __future__ import annotations

from squall.server.http3 import gso_runs

A, B = ("127.0.0.1", 1), ("127.0.0.1", 2)


def test_runs_of_equal_sizes_to_one_address() -> None:
    datagrams = [(b"x" * 1200, A)] * 3 + [(b"x" * 300, A), (b"x" * 1200, A)]
    assert gso_runs(datagrams) == [(0, 4, 1200), (4, 5, 1200)]


def test_a_longer_datagram_or_another_address_starts_a_new_run() -> None:
    datagrams = [(b"a" * 50, A), (b"b" * 1200, A), (b"c" * 1200, B), (b"d" * 1200, B)]
    assert gso_runs(datagrams) == [(0, 1, 50), (1, 2, 1200), (2, 4, 1200)]


def test_at_most_64_segments() -> None:
    datagrams = [(b"x" * 1200, A)] * 130
    assert gso_runs(datagrams) == [(0, 64, 1200), (64, 128, 1200), (128, 130, 1200)]
