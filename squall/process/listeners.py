"""Create the listening sockets: TCP (IPv4/IPv6), a Unix domain socket, an inherited fd, or the
sockets systemd passed (socket activation). The supervisor binds once; workers inherit them.

With ``--reuse-port`` (TCP only) the supervisor binds a *holder* instead: a socket bound to the
address with SO_REUSEPORT that never listens. It reserves the port (``--port 0`` resolves once)
and it is what the supervisor validates at startup, but the kernel never hands it a connection
(only listening sockets are in the port's reuseport group). Each worker then ``join``s: it binds
its own listening SO_REUSEPORT socket on the holder's address, once its app is ready, and the
kernel spreads new connections over the workers by a hash of the 4-tuple.
"""

from __future__ import annotations

import array
import contextlib
import errno
import os
import socket
import stat
import struct
import sys
import weakref
from collections.abc import Mapping
from typing import Any

from squall.config import SocketSettings
from squall.process import systemd


class BindError(Exception):
    """A socket could not be bound; the text names the address."""


def bind_all(settings: SocketSettings, *, hold: bool = False) -> list[socket.socket]:
    """The sockets to serve on: systemd's (LISTEN_FDS) when socket-activated, else ``bind()``'s one.

    ``hold``: the caller is a supervisor; with --reuse-port it gets a holder (see the module
    docstring), each worker binding its own listening socket.
    """
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")  # read before listen_fds() pops it
    try:
        activated = systemd.listen_fds()
    except systemd.ActivationError as exc:
        raise BindError(str(exc)) from None
    for sock, name in zip(activated, names, strict=False):  # systemd may name none
        if name == systemd.OWN_FDNAME:  # bound by this very process, handed over across its exec
            _own(sock)
    if activated and settings.reuse_port and (hold or not all(map(_reuses_port, activated))):
        # (One process re-executing itself on SIGHUP hands its own SO_REUSEPORT socket over this way.)
        for sock in activated:
            sock.close()
        raise BindError(f"--reuse-port: {REUSE_PORT_TCP_ONLY}, not to systemd's sockets")
    return activated or [bind(settings, hold=hold)]


REUSE_PORT_TCP_ONLY = "applies to TCP --host/--port only"


def reuse_port_conflict(values: Mapping[str, Any]) -> str | None:
    """Why the option values (by name) cannot go together with reuse_port, or None."""
    if not values.get("reuse_port"):
        return None
    if values.get("uds"):
        return f"{REUSE_PORT_TCP_ONLY}, not to --uds"
    if values.get("fd") is not None:
        return f"{REUSE_PORT_TCP_ONLY}, not to --fd"
    return None


def bind(settings: SocketSettings, *, hold: bool = False) -> socket.socket:
    """Bind (and listen on) the socket the settings describe (``hold``: see ``bind_all``)."""
    if settings.fd is not None:
        return _from_fd(settings.fd)
    if settings.uds:
        return _unix(settings.uds, settings.backlog)
    if settings.reuse_port and hold:
        return _hold(settings.host, settings.port)
    return _tcp(settings.host, settings.port, settings.backlog, reuse_port=settings.reuse_port)


def join(holder: socket.socket, backlog: int) -> socket.socket:
    """A worker's own listening SO_REUSEPORT socket on ``holder``'s address (--reuse-port)."""
    host, port = holder.getsockname()[:2]
    return _tcp(host, port, backlog, reuse_port=True)


def own_listeners(sockets: list[socket.socket], backlog: int) -> list[socket.socket]:
    """``sockets`` with each --reuse-port holder replaced by this process's own listening socket
    (``join``); the holder copies are closed. Listening sockets are returned as they are."""
    owned = []
    for sock in sockets:
        if sock.family == socket.AF_UNIX or sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            owned.append(sock)
            continue
        try:
            owned.append(join(sock, backlog))
        except BindError:
            for done in owned:
                if done not in sockets:
                    done.close()
            raise
    for sock in sockets:
        if sock not in owned:
            sock.close()
    return owned


#: The listening sockets this process bound itself (or got back from its own SIGHUP exec): only
#: to those may ``refuse_new`` be applied. A socket from systemd, ``--fd``, gunicorn or the
#: supervisor has other holders that go on accepting on it. For a Unix socket, the value is its
#: path and the inode the path had once bound: removed at a drain only while it still names this
#: socket (a new instance may have bound the path since); None for a TCP socket.
_OWNED: weakref.WeakKeyDictionary[socket.socket, tuple[str, int] | None] = weakref.WeakKeyDictionary()

# A classic BPF program run on each TCP segment the listening socket gets (the packet starts at the
# TCP header): a SYN without ACK, i.e. a new connection's first segment, is dropped (keep 0 bytes);
# every other segment, a handshake's final ACK included, is kept whole.
_NO_NEW_CONNECTIONS = b"".join(
    struct.pack("HBBI", code, jt, jf, k)
    for code, jt, jf, k in (
        (0x30, 0, 0, 13),  # ldb [13]: the TCP flags
        (0x54, 0, 0, 0x12),  # and #(SYN|ACK)
        (0x15, 0, 1, 0x02),  # jeq #SYN: next, else skip one
        (0x06, 0, 0, 0),  # ret #0: drop
        (0x06, 0, 0, 0xFFFFFFFF),  # ret #-1: keep
    )
)
_SO_ATTACH_FILTER = 26  # Linux (asm-generic), also SO_GET_FILTER; the socket module names neither
# sock_diag (netlink) to list the connections half-way through their handshake.
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_DUMP = 0x1 | 0x300  # NLM_F_REQUEST | NLM_F_DUMP
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_TCP_SYN_RECV = 3


def _own(sock: socket.socket) -> None:
    """Mark a listening socket this process bound as its own (a Unix socket with its path)."""
    if sock.family != socket.AF_UNIX:
        _OWNED[sock] = None
        return
    path = sock.getsockname()
    if isinstance(path, str) and path:  # (not an abstract or unnamed socket)
        with contextlib.suppress(OSError):
            _OWNED[sock] = (path, os.stat(path).st_ino)


def owned(sock: socket.socket) -> bool:
    """Whether this process bound ``sock`` and is the only one accepting on it."""
    return sock in _OWNED


def duplicate(sock: socket.socket) -> socket.socket:
    """``sock.dup()``, owned (``owned``) if ``sock`` is."""
    copy = sock.dup()
    if sock in _OWNED:
        _OWNED[copy] = _OWNED[sock]
    return copy


def refuse_new(sock: socket.socket) -> bool:
    """Let no new connection begin on the listening TCP socket ``sock``; False where unsupported.

    Closing a listening socket resets every connection in its accept queue, requests and all: a
    connection whose handshake completes between a drain's last ``accept()`` and the ``close()``
    is lost (a worker preempted there widens that to a time slice). With this socket filter the
    kernel drops new connections' SYNs while handshakes already under way complete: the drain
    waits for those (``handshakes_pending``), accepts what is queued and closes; a dropped client
    sends its SYN again (after ~1 s) to a closed port, is refused, and a balancer tries another
    node (even for a POST, which nginx never retries once sent). Linux only.

    A Unix socket (this process's own, ``owned``) has no handshake: its path is removed while it
    still names the socket, so a new ``connect()`` fails at once and what is queued is served.
    """
    if sock.family == socket.AF_UNIX:
        return _unlink_own_path(sock)
    if sys.platform != "linux" or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    program = array.array("B", _NO_NEW_CONNECTIONS)
    address, _ = program.buffer_info()
    count = len(_NO_NEW_CONNECTIONS) // 8
    try:  # struct sock_fprog {unsigned short len; struct sock_filter *filter;}
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, struct.pack("HP", count, address))
    except OSError:
        return False
    return True


def _unlink_own_path(sock: socket.socket) -> bool:
    path, inode = _OWNED.get(sock) or ("", 0)
    try:
        if path and os.stat(path).st_ino == inode:
            os.unlink(path)
            return True
    except OSError:
        pass
    return False


def refusing(sock: socket.socket) -> bool:
    """Whether ``refuse_new`` was applied to ``sock`` (by this process, or by the supervisor
    that shares it)."""
    if sys.platform != "linux" or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    try:  # SO_GET_FILTER gives as many bytes as the program has instructions (a kernel quirk)
        attached = sock.getsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, len(_NO_NEW_CONNECTIONS))
    except OSError:
        return False
    return bool(attached) and _NO_NEW_CONNECTIONS.startswith(attached)


def handshakes_pending(sock: socket.socket) -> bool:
    """Whether a connection to ``sock``'s port is half-way through its handshake (SYN_RECV).

    Asks the kernel's sock_diag netlink interface for the TCP sockets in SYN_RECV (the kernel
    filters by state, so a server with many connections answers as fast as an idle one); False
    when it cannot be asked. Every listening socket on the port counts (--reuse-port workers share
    it), so the answer may include another worker's handshakes: waiting for them costs time only.
    """
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    port = sock.getsockname()[1]
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as diag:
            request = struct.pack("=BBBBI48x", sock.family, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_SYN_RECV)
            header = struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_DUMP, 1, 0)
            diag.send(header + request)
            return _dump_has_port(diag, port)
    except (OSError, struct.error, AttributeError):  # AttributeError: no AF_NETLINK here
        return False


def _dump_has_port(diag: socket.socket, port: int) -> bool:
    """Whether a sock_diag dump (read up to its end) lists a socket with local port ``port``."""
    while data := diag.recv(65536):
        offset = 0
        while offset + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, offset)
            if kind in (_NLMSG_DONE, _NLMSG_ERROR) or length < 16:
                return False
            # struct inet_diag_msg: family, state, timer, retrans, then the socket id (sport first)
            if struct.unpack_from("!H", data, offset + 20)[0] == port:
                return True
            offset += (length + 3) & ~3
    return False


def _reuses_port(sock: socket.socket) -> bool:
    return sock.family != socket.AF_UNIX and bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT))


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
    _own(sock)
    return sock


def _tcp(host: str, port: int, backlog: int | None, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to host:port, listening unless ``backlog`` is None."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError(f"--host {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        if backlog is not None:
            sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise _bind_error(host, port, exc) from None
    sock.setblocking(False)
    if backlog is not None:
        _own(sock)
    return sock


def _hold(host: str, port: int) -> socket.socket:
    """The supervisor's --reuse-port holder: bound with SO_REUSEPORT, never listening.

    SO_REUSEPORT lets any socket of the same user join a port's group, another squall's too; so
    the address must also be free for a plain bind (which only a listening socket there refuses).
    """
    holder = _tcp(host, port, None, reuse_port=True)
    try:
        address = holder.getsockname()
        _tcp(address[0], address[1], None).close()
    except BindError:
        holder.close()
        raise _bind_error(host, port, OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))) from None
    return holder


def _bind_error(host: str, port: int, exc: OSError) -> BindError:
    shown = f"[{host}]" if ":" in host else host
    return BindError(f"cannot bind {shown}:{port}: {exc.strerror or exc}")


def describe(sock: socket.socket, scheme: str = "http") -> str:
    """The URL (or path) a user can reach the socket at."""
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{address}"
    host, port = address[0], address[1]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"
