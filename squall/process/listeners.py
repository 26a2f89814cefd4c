"""Create the listening sockets: TCP (IPv4/IPv6), a Unix domain socket, an inherited fd, or the
sockets systemd passed (socket activation). The supervisor binds once; workers inherit them."""

from __future__ import annotations

import contextlib
import os
import socket
import stat

from squall.config import SocketSettings
from squall.process import systemd


class BindError(Exception):
    """A socket could not be bound; the text names the address."""


def bind_all(settings: SocketSettings) -> list[socket.socket]:
    """The sockets to serve on: systemd's (LISTEN_FDS) when socket-activated, else ``bind()``'s one."""
    try:
        activated = systemd.listen_fds()
    except systemd.ActivationError as exc:
        raise BindError(str(exc)) from None
    return activated or [bind(settings)]


def bind(settings: SocketSettings) -> socket.socket:
    """Bind (and listen on) the socket the settings describe."""
    if settings.fd is not None:
        return _from_fd(settings.fd)
    if settings.uds:
        return _unix(settings.uds, settings.backlog)
    return _tcp(settings.host, settings.port, settings.backlog)


def _from_fd(fd: int) -> socket.socket:
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise BindError(f"--fd {fd}: not a usable socket: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def _unix(path: str, backlog: int) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, 0o666)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindError(f"--uds {path}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def _tcp(host: str, port: int, backlog: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError(f"--host {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        shown = f"[{host}]" if ":" in host else host
        raise BindError(f"cannot bind {shown}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def describe(sock: socket.socket, scheme: str = "http") -> str:
    """The URL (or path) a user can reach the socket at."""
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{address}"
    host, port = address[0], address[1]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"
