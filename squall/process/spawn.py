"""Start a worker process: a fresh interpreter (fork+exec) that gets its orders over its pipe.

Why not ``multiprocessing.get_context("spawn").Process``: the first such process also starts
multiprocessing's resource tracker, one more interpreter (about 13 MiB) that squall has no use
for (its workers share no semaphores and no shared memory). What the supervisor needs is small,
and ``subprocess`` gives it:

- the child inherits the listening sockets and its end of a duplex pipe (``pass_fds``, which
  keeps the fd numbers), and nothing else;
- over the pipe the parent sends its ``sys.path`` (so that the target, pickled by reference, can
  be imported) and then the target, the config, the socket fds and the request limit;
- the sentinel, a file descriptor that becomes readable when the child exits, is the read end of
  a pipe whose write end only the child holds (multiprocessing's own trick).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, Pipe

from squall.config import Config

BOOT = "from squall.process.spawn import child_main; child_main()"

#: Exit code of a serving process, or of squall, that could not start (the app does not import,
#: its lifespan startup failed, a socket or TLS option is unusable): uvicorn's since 0.50.
STARTUP_FAILURE = 3


@dataclass
class WorkerSpec:
    """What a worker process receives: its config, the listening sockets, the pipe to the parent."""

    config: Config
    sockets: list[socket.socket]
    channel: Connection
    max_requests: int | None = None


Target = Callable[[WorkerSpec], None]


class Child:
    """A started worker process, with the parts of ``multiprocessing.Process`` the supervisor uses."""

    def __init__(self, popen: subprocess.Popen[bytes], sentinel: int) -> None:
        self.popen = popen
        self.sentinel = sentinel

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def exitcode(self) -> int | None:
        """None while it runs; negative when a signal killed it."""
        return self.popen.poll()

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    def join(self, timeout: float) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout)

    def close(self) -> None:
        """Release the sentinel (once the process has exited)."""
        if self.sentinel >= 0:
            os.close(self.sentinel)
            self.sentinel = -1


def start(
    target: Target, config: Config, sockets: Sequence[socket.socket], max_requests: int | None
) -> tuple[Child, Connection]:
    """Run ``target(WorkerSpec(...))`` in a new interpreter; returns it and the parent's pipe end."""
    parent_end, child_end = Pipe(duplex=True)
    life_r, life_w = os.pipe()
    fds = [sock.fileno() for sock in sockets]
    try:
        popen = subprocess.Popen(
            [sys.executable, "-c", BOOT, str(child_end.fileno()), str(life_w)],
            stdin=subprocess.DEVNULL,
            pass_fds=(child_end.fileno(), life_w, *fds),
        )
    except BaseException:
        os.close(life_r)
        parent_end.close()
        raise
    finally:
        os.close(life_w)
        child_end.close()
    with contextlib.suppress(OSError):  # a child that died at once: its sentinel says how
        parent_end.send(sys.path)
        parent_end.send((target, config, fds, max_requests))
    return Child(popen, life_r), parent_end


def child_main() -> None:
    """The worker process's entry point (``BOOT``): read the orders, run the target."""
    channel_fd, life_w = int(sys.argv[1]), int(sys.argv[2])
    os.set_inheritable(channel_fd, False)
    os.set_inheritable(life_w, False)  # the sentinel's write end stays with this process
    channel = Connection(channel_fd)
    sys.path[:] = channel.recv()
    target, config, fds, max_requests = channel.recv()
    sockets = []
    for fd in fds:
        os.set_inheritable(fd, False)
        sockets.append(socket.socket(fileno=fd))
    target(WorkerSpec(config, sockets, channel, max_requests))
