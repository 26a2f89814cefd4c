"""``--sendfile``: which clients get a file with sendfile(2) and which by reads."""

from __future__ import annotations

import pytest

from squall.server.http1 import sendfile_wanted


@pytest.mark.parametrize(
    ("client", "server", "wanted"),
    [
        (("203.0.113.7", 50000), ("10.0.0.2", 8000), True),  # another host
        (("2001:db8::7", 50000), ("2001:db8::2", 8000), True),
        (("127.0.0.1", 50000), ("127.0.0.1", 8000), False),  # loopback
        (("127.0.0.9", 50000), ("127.0.0.1", 8000), False),
        (("::1", 50000), ("::1", 8000), False),
        (("::ffff:127.0.0.1", 50000), ("::ffff:127.0.0.1", 8000), False),
        (("10.0.0.2", 50000), ("10.0.0.2", 8000), False),  # this host through its own address
        (None, None, False),  # a Unix socket
        (("not-an-ip", 1), ("10.0.0.2", 8000), True),
    ],
)
def test_auto_sends_with_sendfile_only_to_other_hosts(
    client: tuple[str, int] | None, server: tuple[str, int] | None, wanted: bool
) -> None:
    assert sendfile_wanted("auto", client, server) is wanted


@pytest.mark.parametrize("client", [("127.0.0.1", 1), ("203.0.113.7", 1), None])
def test_on_and_off_apply_to_every_client(client: tuple[str, int] | None) -> None:
    assert sendfile_wanted("on", client, ("10.0.0.2", 8000)) is True
    assert sendfile_wanted("off", client, ("10.0.0.2", 8000)) is False
