"""systemd integration without libsystemd: socket activation and ``sd_notify``.

Socket activation (``sd_listen_fds(3)``): systemd binds the sockets of a ``.socket`` unit and
starts the service with them open from fd 3 on, ``LISTEN_FDS=<count>`` and
``LISTEN_PID=<pid of the service>``. The variables are removed from the environment once read,
so worker processes never mistake them for their own.

Notification (``sd_notify(3)``): datagrams such as ``READY=1`` to the unix socket named by
``NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). With ``WATCHDOG_USEC`` set the
supervisor also sends ``WATCHDOG=1`` at half that interval. No asyncio here: the supervisor uses it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import MutableMapping, Sequence

LISTEN_FDS_START = 3
#: The name ``hand_over`` gives its sockets: the new image knows they are its own, not systemd's.
OWN_FDNAME = "squall-own-socket"
_ACTIVATION_VARS = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")
_NOTIFY_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class ActivationError(Exception):
    """LISTEN_FDS names something that is not a usable socket."""


def listen_fds(environ: MutableMapping[str, str] | None = None) -> list[socket.socket]:
    """The listening sockets systemd passed to this process; ``[]`` when not socket-activated.

    Raises ActivationError when LISTEN_FDS is malformed or an fd is not a socket.
    """
    env = os.environ if environ is None else environ
    count, pid = env.get("LISTEN_FDS"), env.get("LISTEN_PID")
    for name in _ACTIVATION_VARS:
        env.pop(name, None)
    if not count or pid is None or pid.strip() != str(os.getpid()):
        return []
    try:
        n = int(count)
    except ValueError:
        raise ActivationError(f"LISTEN_FDS: not a number: {count!r}") from None
    sockets: list[socket.socket] = []
    for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + n):
        try:
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            for opened in sockets:
                opened.detach()
            raise ActivationError(f"LISTEN_FDS: fd {fd} is not a socket: {exc.strerror or exc}") from None
        os.set_inheritable(fd, False)
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


def hand_over(sockets: Sequence[socket.socket], own: Sequence[bool]) -> dict[str, str]:
    """Put ``sockets`` at fds 3, 4... for an ``exec`` of this very process (which keeps its pid).

    Returns the LISTEN_FDS/LISTEN_PID variables that make the new image take them as if systemd
    had passed them. Every other copy of the sockets is made close-on-exec, so none leaks.
    """
    for sock in sockets:
        os.set_inheritable(sock.fileno(), False)
    first_free = LISTEN_FDS_START + len(sockets)
    spare = [fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, first_free) for sock in sockets]
    for offset, fd in enumerate(spare):
        os.dup2(fd, LISTEN_FDS_START + offset, inheritable=True)
        os.close(fd)
    return {
        "LISTEN_FDS": str(len(sockets)),
        "LISTEN_PID": str(os.getpid()),
        "LISTEN_FDNAMES": ":".join(OWN_FDNAME if mine else "inherited" for mine in own),
    }


class Notifier:
    """Send ``sd_notify`` states; does nothing when ``NOTIFY_SOCKET`` is unset.

    The variables are taken out of the environment (so no child mistakes them for its own) and
    kept in ``environ`` for an ``exec`` of this process, which is still the service's main process.
    """

    def __init__(self, address: str | None = None) -> None:
        self.environ: dict[str, str] = {}
        if address is None:
            self.environ = {name: os.environ.pop(name) for name in _NOTIFY_VARS if name in os.environ}
            address = self.environ.get("NOTIFY_SOCKET")
        self.address = "\0" + address[1:] if address and address.startswith("@") else address
        self.watchdog_interval = _watchdog_interval(self.environ)

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, state: str) -> None:
        """Send one state string (``READY=1``, ``STOPPING=1``...); errors are ignored, as sd_notify does."""
        if not self.address:
            return
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), self.address)


def _watchdog_interval(environ: dict[str, str]) -> float | None:
    """Half of ``WATCHDOG_USEC`` in seconds, when the watchdog is meant for this process."""
    usec, pid = environ.get("WATCHDOG_USEC"), environ.get("WATCHDOG_PID")
    if not usec or (pid is not None and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None
