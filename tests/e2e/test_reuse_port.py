"""--reuse-port end to end: each worker listens on its own SO_REUSEPORT socket.

Which process owns which listening socket is read from the kernel: the socket inodes behind
``/proc/PID/fd`` matched against the LISTEN entries of ``/proc/net/tcp`` (whose rx_queue field is
a listening socket's accept queue length). Helpers and the pid app come from test_process_manager.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .test_process_manager import (
    WAIT,
    Load,
    Server,
    assert_recycling_under_load_drops_nothing,
    children,
    serve,
)

__all__ = ["serve"]  # the fixture, imported for these tests

BLOCKING_APP = """
import os, sys

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].replace("lifespan.", "")
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    if scope["path"] == "/block":  # blocks this worker's event loop until the test opens the fifo
        print(f"APP blocked {os.getpid()}", file=sys.stderr, flush=True)
        with open(os.environ["BLOCK_FIFO"], "rb") as fifo:
            fifo.read()
    body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
"""


def listening(port: int) -> dict[int, int]:
    """The LISTEN sockets on ``port``: inode → accept queue length."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == "0A":  # TCP_LISTEN
                    found[int(fields[9])] = int(fields[4].split(":")[1], 16)
    return found


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        match = re.fullmatch(r"socket:\[(\d+)\]", target)
        if match:
            inodes.add(int(match.group(1)))
    return inodes


def worker_pids(server: Server) -> list[int]:
    ready = server.wait_for(r"(\d+) worker\(s\) ready \(([\d, ]+)\)")
    return [int(pid) for pid in re.findall(r"\d+", ready.group(2))]


def test_each_worker_listens_on_its_own_socket(serve: Callable[..., Server]) -> None:
    server = serve("pidapp:app", "--port", "0", "--workers", "2", "--reuse-port").started()
    workers = worker_pids(server)
    assert sorted(workers) == sorted(children(server.proc.pid))
    sockets = listening(server.port)
    owned = [socket_inodes(pid) & sockets.keys() for pid in workers]
    assert [len(inodes) for inodes in owned] == [1, 1]
    assert owned[0] != owned[1]
    assert not socket_inodes(server.proc.pid) & sockets.keys()  # the supervisor's holder never listens
    assert len(sockets) == 2
    assert server.stop() == 0


def test_connections_reach_a_busy_workers_own_socket(serve: Callable[..., Server], tmp_path: Path) -> None:
    """The kernel spreads connections by a hash: with one worker's loop blocked, some of them wait
    in *its* socket's queue (a shared socket would have the free worker take them all)."""
    (tmp_path / "blockapp.py").write_text(BLOCKING_APP)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    server = serve(
        "blockapp:app", "--port", "0", "--workers", "2", "--reuse-port", env={"BLOCK_FIFO": str(fifo)}
    ).started()
    blocker = threading.Thread(target=server.get, args=("/block", WAIT), daemon=True)
    blocker.start()
    busy = int(server.wait_for(r"APP blocked (\d+)").group(1))
    busy_socket = socket_inodes(busy) & listening(server.port).keys()
    answers: list[int] = []
    clients = [threading.Thread(target=lambda: answers.append(server.pid_of_answer())) for _ in range(24)]
    for client in clients:
        client.start()
    deadline = time.monotonic() + WAIT
    while (
        time.monotonic() < deadline
    ):  # every connection answered by the free worker or queued on the busy one
        queued = sum(listening(server.port).get(inode, 0) for inode in busy_socket)
        if queued + len(answers) == len(clients):
            break
        time.sleep(0.01)
    assert queued > 0, answers
    with open(fifo, "wb"):
        pass  # unblock
    for client in clients:
        client.join(WAIT)
    blocker.join(WAIT)
    assert len(answers) == len(clients)
    assert answers.count(busy) == queued
    assert server.stop() == 0


def test_sighup_under_keep_alive_load_drops_nothing(serve: Callable[..., Server]) -> None:
    server = serve("pidapp:app", "--port", "0", "--workers", "2", "--reuse-port").started()
    old = worker_pids(server)
    load = Load(server, keep_alive=True)
    load.wait_answers(20)
    mark = len(server.lines)
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for(r"Reload complete: 2 new worker\(s\) ready", mark)
    for pid in old:
        server.wait_for(rf"Worker \[{pid}\] stopped \(exit code 0\)", mark)
    after = time.monotonic()
    load.wait_answers(30, since=after)
    load.stop()
    assert load.failures == []
    assert not load.pids_since(after) & set(old)
    assert len(listening(server.port)) == 2  # the old workers' sockets left the group
    assert server.stop() == 0


def test_max_requests_recycling_of_the_only_worker_refuses_nothing(serve: Callable[..., Server]) -> None:
    """The worker at its limit serves on until its replacement listens: never a moment without a
    listening socket (which would refuse connections)."""
    server = serve(
        "pidapp:app",
        "--port",
        "0",
        "--reuse-port",
        "--limit-max-requests",
        "25",
        "--limit-max-requests-jitter",
        "0",
    ).started()
    assert_recycling_under_load_drops_nothing(server)


def test_one_process_serves_and_reloads_on_its_own_reuse_port_socket(serve: Callable[..., Server]) -> None:
    server = serve("pidapp:app", "--port", "0", "--reuse-port").started()
    (inode,) = listening(server.port)
    assert inode in socket_inodes(server.proc.pid)
    mark = len(server.lines)
    server.proc.send_signal(signal.SIGHUP)  # the exec hands the same socket over (as systemd would)
    server.wait_for(r"Restarting: ", mark)
    server.wait_for(r"running on http://127\.0\.0\.1:\d+ ", mark)
    assert server.get() == f"{server.proc.pid} v1"
    assert list(listening(server.port)) == [inode]
    assert server.stop() == 0


@pytest.mark.parametrize("where", [["--uds", "squall.sock"], ["--fd", "3"]], ids=["uds", "fd"])
def test_reuse_port_with_a_non_tcp_socket_is_a_cli_error(
    serve: Callable[..., Server], where: list[str]
) -> None:
    server = serve("pidapp:app", *where, "--reuse-port")
    assert server.proc.wait(WAIT) == 2
    server.wait_for("<EOF>")
    assert f"squall: error: argument --reuse-port: applies to TCP --host/--port only, not to {where[0]}" in (
        server.lines
    )


def test_reuse_port_with_socket_activation_is_an_error(serve: Callable[..., Server]) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    wrapper = (
        "import os, sys; os.dup2(int(sys.argv[1]), 3); os.environ['LISTEN_FDS'] = '1';"
        "os.environ['LISTEN_PID'] = str(os.getpid());"
        "os.execv(sys.executable, [sys.executable, '-m', 'squall', *sys.argv[2:]])"
    )
    command = [sys.executable, "-c", wrapper, str(listener.fileno())]
    server = serve(
        "pidapp:app", "--workers", "2", "--reuse-port", command=command, pass_fds=(listener.fileno(),)
    )
    listener.close()
    assert server.proc.wait(WAIT) == 3
    server.wait_for("<EOF>")
    assert "squall: error: --reuse-port: applies to TCP --host/--port only, not to systemd's sockets" in (
        server.lines
    )


def test_a_port_another_reuse_port_server_listens_on_is_in_use(serve: Callable[..., Server]) -> None:
    """SO_REUSEPORT would let a second server join the first one's group: it must not."""
    first = serve("pidapp:app", "--port", "0", "--workers", "2", "--reuse-port").started()
    second = serve("pidapp:app", "--port", str(first.port), "--workers", "2", "--reuse-port")
    assert second.proc.wait(WAIT) == 3
    second.wait_for("<EOF>")
    assert f"squall: error: cannot bind 127.0.0.1:{first.port}: Address already in use" in second.lines
    assert len(listening(first.port)) == 2
    assert first.stop() == 0
