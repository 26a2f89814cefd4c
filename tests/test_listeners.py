"""Listening sockets at a drain: ``refuse_new`` stops new connections (their SYNs are dropped)
while handshakes under way complete, and is only ever applied to sockets this process owns."""

from __future__ import annotations

import array
import contextlib
import os
import socket
import struct
import sys
from collections.abc import Iterator

import pytest

from squall.config import SocketSettings
from squall.process import listeners, systemd

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="socket filters are Linux's")

_SO_ATTACH_FILTER = 26


@contextlib.contextmanager
def listening() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock
    finally:
        sock.close()


def hold_final_acks(sock: socket.socket) -> None:
    """A filter (``refuse_new``'s shape, the other way round) on a listener: keep only SYNs, so a handshake's final ACK is dropped and
    the connection stays half-open (SYN_RECV) on this side while its client thinks it is open."""
    program = [
        (0x30, 0, 0, 13),
        (0x54, 0, 0, 0x12),
        (0x15, 1, 0, 0x02),
        (0x06, 0, 0, 0),
        (0x06, 0, 0, 0xFFFF),
    ]
    code = array.array("B", b"".join(struct.pack("HBBI", *op) for op in program))
    sock.setsockopt(
        socket.SOL_SOCKET, _SO_ATTACH_FILTER, struct.pack("HP", len(program), code.buffer_info()[0])
    )


def test_new_connections_wait_and_are_refused_once_the_socket_closes() -> None:
    with listening() as sock:
        address = sock.getsockname()
        assert not listeners.refusing(sock)
        assert listeners.refuse_new(sock) and listeners.refusing(sock)
        late = socket.socket()
        late.settimeout(0.5)
        with pytest.raises(TimeoutError):  # its SYN is dropped: no handshake, nothing queued
            late.connect(address)
        late.close()
        late = socket.socket()
        late.settimeout(5)
        sock.close()  # the client's next SYN finds no listener
        with pytest.raises(ConnectionRefusedError):
            late.connect(address)
        late.close()


def test_open_connections_and_queued_ones_keep_working() -> None:
    with listening() as sock:
        queued = socket.create_connection(sock.getsockname(), timeout=5)
        assert listeners.refuse_new(sock)
        queued.sendall(b"ping")
        accepted, _ = sock.accept()
        accepted.settimeout(5)
        with accepted, queued:
            assert accepted.recv(4) == b"ping"
            accepted.sendall(b"pong")
            assert queued.recv(4) == b"pong"


def test_a_handshake_under_way_completes_after_new_connections_are_refused() -> None:
    with listening() as sock:
        hold_final_acks(sock)
        client = socket.create_connection(sock.getsockname(), timeout=5)  # open, on its side
        with client:
            assert listeners.handshakes_pending(sock)
            assert listeners.refuse_new(sock)  # replaces the test filter
            client.sendall(b"GET")  # acknowledges the SYN-ACK again: the handshake completes
            sock.settimeout(5)
            accepted, _ = sock.accept()
            with accepted:
                accepted.settimeout(5)
                assert accepted.recv(3) == b"GET"
            assert not listeners.handshakes_pending(sock)


def test_only_sockets_this_process_bound_count_as_its_own() -> None:
    bound = listeners.bind(SocketSettings(host="127.0.0.1", port=0))
    with bound, listening() as other:
        assert listeners.owned(bound)
        inherited = listeners.bind(SocketSettings(fd=os.dup(other.fileno())))
        with inherited:
            assert not listeners.owned(inherited)  # --fd: another process may accept on it too


@pytest.mark.parametrize(("names", "own"), [(systemd.OWN_FDNAME, True), ("http", False), (None, False)])
def test_sockets_handed_over_by_a_reload_stay_this_process_own(
    monkeypatch: pytest.MonkeyPatch, names: str | None, own: bool
) -> None:
    with listening() as other:
        fd = os.dup(other.fileno())
        monkeypatch.setattr(systemd, "LISTEN_FDS_START", fd)
        monkeypatch.setenv("LISTEN_FDS", "1")
        monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
        if names is None:
            monkeypatch.delenv("LISTEN_FDNAMES", raising=False)
        else:
            monkeypatch.setenv("LISTEN_FDNAMES", names)
        [activated] = listeners.bind_all(SocketSettings(host="127.0.0.1", port=0))
        with activated:
            assert activated.fileno() == fd
            assert listeners.owned(activated) is own
