"""``--sendfile``: which downloads go with sendfile(2) and which by reads."""

from __future__ import annotations

import pytest

from squall.server.http1 import on_this_host, sendfile_wanted

MIB = 1 << 20


@pytest.mark.parametrize(
    ("client", "server", "local"),
    [
        (("203.0.113.7", 50000), ("10.0.0.2", 8000), False),  # another host
        (("2001:db8::7", 50000), ("2001:db8::2", 8000), False),
        (("127.0.0.1", 50000), ("127.0.0.1", 8000), True),  # loopback
        (("127.0.0.9", 50000), ("127.0.0.1", 8000), True),
        (("::1", 50000), ("::1", 8000), True),
        (("::ffff:127.0.0.1", 50000), ("::ffff:127.0.0.1", 8000), True),
        (("10.0.0.2", 50000), ("10.0.0.2", 8000), True),  # this host through its own address
        (None, None, True),  # a Unix socket
        (("not-an-ip", 1), ("10.0.0.2", 8000), False),
    ],
)
def test_which_clients_are_on_this_host(
    client: tuple[str, int] | None, server: tuple[str, int] | None, local: bool
) -> None:
    assert on_this_host(client, server) is local


def test_auto_reads_only_large_files_for_local_clients() -> None:
    local, remote = ("127.0.0.1", 50000), ("203.0.113.7", 50000)
    server = ("127.0.0.1", 8000)
    assert sendfile_wanted("auto", local, server, 2 * MIB) is True  # one call beats a read
    assert sendfile_wanted("auto", local, server, 2 * MIB + 1) is False
    assert sendfile_wanted("auto", remote, server, 100 * MIB) is True


@pytest.mark.parametrize("client", [("127.0.0.1", 1), ("203.0.113.7", 1), None])
@pytest.mark.parametrize("count", [1, 100 * MIB])
def test_on_and_off_apply_to_every_download(client: tuple[str, int] | None, count: int) -> None:
    assert sendfile_wanted("on", client, ("10.0.0.2", 8000), count) is True
    assert sendfile_wanted("off", client, ("10.0.0.2", 8000), count) is False
