"""How a draining HTTP/3 worker finds the workers that accept: the bound abstract Unix sockets
whose name begins with the address's intake prefix, read from /proc/net/unix."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from squall.server.http3 import abstract_names

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="abstract Unix sockets: Linux")


def test_lists_the_bound_names_with_the_prefix_and_no_others() -> None:
    prefix = b"\0squall-h3-new-test-%d-" % os.getpid()
    names = [prefix + b"aaaa", prefix + b"bbbb", b"\0squall-h3-test-%d-cccc" % os.getpid()]
    socks = [socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in names]
    try:
        for sock, name in zip(socks, names, strict=True):
            sock.bind(name)
        assert abstract_names(prefix) == names[:2]
        socks[0].close()  # closed: no longer listed
        assert abstract_names(prefix) == names[1:2]
    finally:
        for sock in socks:
            sock.close()
