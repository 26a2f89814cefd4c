"""The process manager end to end: real ``python -m squall`` processes, real signals, loopback clients.

Readiness is read from the server's log (never a sleep); client loops are bounded and only talk
to 127.0.0.1. Clients open a fresh connection per request (``Connection: close``), as a load
balancer's retry-safe traffic would, so a failure means the server dropped or refused a request.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

WAIT = 20.0

APP = """
import asyncio, os, sys

VERSION = {version!r}

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].replace("lifespan.", "")
            await send({{"type": f"lifespan.{{kind}}.complete"}})
            if kind == "shutdown":
                return
    if scope["path"] == "/slow":
        print("APP slow request started", file=sys.stderr, flush=True)
        await asyncio.sleep(float(scope["query_string"] or 1))
    if scope["path"] == "/upload":  # in flight until the client has sent the whole body
        print("APP upload started", file=sys.stderr, flush=True)
        while (await receive()).get("more_body"):
            pass
    body = f"{{os.getpid()}} {{VERSION}}".encode()
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]}})
    await send({{"type": "http.response.body", "body": body}})
"""


def write_app(directory: Path, version: str = "v1") -> None:
    (directory / "pidapp.py").write_text(textwrap.dedent(APP.format(version=version)))


class Server:
    """One squall process; its stderr is collected line by line for ``wait_for``."""

    def __init__(
        self,
        args: list[str],
        cwd: Path,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
        pass_fds: tuple[int, ...] = (),
        new_session: bool = False,
    ) -> None:
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        for name in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID"):
            if not env or name not in env:
                full_env.pop(name, None)
        argv = command or [sys.executable, "-m", "squall"]
        self.proc = subprocess.Popen(
            [*argv, *args, "--no-access-log"],
            cwd=cwd,
            env=full_env,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            pass_fds=pass_fds,
            start_new_session=new_session,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.port = 0

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.lines.append("<EOF>")
            self._changed.notify_all()

    def wait_for(self, pattern: str, after: int = 0, timeout: float = WAIT) -> re.Match[str]:
        """The first log line from index ``after`` on that matches ``pattern``."""
        regex = re.compile(pattern)
        found: list[re.Match[str]] = []

        def seen() -> bool:
            for line in self.lines[after:]:
                match = regex.search(line)
                if match:
                    found.append(match)
                    return True
            return "<EOF>" in self.lines

        with self._changed:
            self._changed.wait_for(seen, timeout)
        assert found, f"no log line matching {pattern!r}:\n" + "\n".join(self.lines)
        return found[0]

    def started(self) -> Server:
        match = self.wait_for(r"running on http://127\.0\.0\.1:(\d+) ")
        self.port = int(match.group(1))
        return self

    def get(self, path: str = "/", timeout: float = 10.0) -> str:
        """One request on a fresh connection; returns the body or raises."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            response = conn.getresponse()
            body = response.read().decode()
            assert response.status == 200, body
            return body
        finally:
            conn.close()

    def pid_of_answer(self) -> int:
        return int(self.get().split()[0])

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []
    write_app(tmp_path)

    def start(*args: str, **kwargs: object) -> Server:
        server = Server([*args], tmp_path, **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def children(pid: int) -> list[int]:
    """The PIDs of the processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


class Load:
    """Client threads sending requests on fresh connections until stopped (bounded by ``limit``)."""

    def __init__(
        self,
        server: Server,
        threads: int = 3,
        limit: float = 30.0,
        retry: bool = False,
        keep_alive: bool = False,
    ) -> None:
        self.server = server
        self.retry = retry
        self.keep_alive = keep_alive
        self.answers: list[tuple[float, int]] = []  # (monotonic time, pid)
        self.versions: dict[int, list[str]] = {}  # client thread → app versions, in answer order
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._deadline = time.monotonic() + limit
        self._changed = threading.Condition()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self, index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        versions = self.versions.setdefault(index, [])
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            for attempt in range(5 if self.retry else 1):
                try:
                    body = self._keep_alive_request(conn) if self.keep_alive else self.server.get()
                except Exception as exc:
                    if attempt == 4 or not self.retry:
                        self.failures.append(repr(exc))
                    continue
                pid, version = body.split()
                versions.append(version)
                with self._changed:
                    self.answers.append((time.monotonic(), int(pid)))
                    self._changed.notify_all()
                break

    @staticmethod
    def _keep_alive_request(conn: http.client.HTTPConnection) -> str:
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            body = response.read().decode()
            assert response.status == 200, body
            return body
        except Exception:
            conn.close()
            raise

    def wait_answers(self, count: int, since: float = 0.0) -> None:
        def enough() -> bool:
            return sum(t >= since for t, _ in self.answers) >= count

        with self._changed:
            assert self._changed.wait_for(enough, WAIT), f"load stalled: {self.failures[:3]}"

    def pids_since(self, since: float) -> set[int]:
        return {pid for t, pid in self.answers if t >= since}

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(WAIT)


def test_workers_serve_concurrently_from_different_pids(serve: Callable[..., Server]) -> None:
    server = serve("pidapp:app", "--port", "0", "--workers", "2").started()
    pids = re.findall(r"\d+", server.wait_for(r"2 worker\(s\) ready \(([\d, ]+)\)").group(1))
    seen: set[int] = set()
    for _ in range(400):
        seen.add(server.pid_of_answer())
        if len(seen) == 2:
            break
    assert seen == {int(pid) for pid in pids}
    assert server.stop() == 0


def test_killed_worker_is_replaced_without_failed_requests(serve: Callable[..., Server]) -> None:
    server = serve("pidapp:app", "--port", "0", "--workers", "2").started()
    load = Load(server, retry=True)
    load.wait_answers(10)
    victim = load.answers[-1][1]
    mark = len(server.lines)
    os.kill(victim, signal.SIGKILL)
    server.wait_for(rf"Worker \[{victim}\] died unexpectedly \(killed by signal SIGKILL\)", mark)
    server.wait_for(r"Worker \[\d+\] ready", mark)
    after = time.monotonic()
    load.wait_answers(20, since=after)
    load.stop()
    assert load.failures == []
    assert victim not in load.pids_since(after)


def test_sighup_under_load_drops_nothing_and_replaces_every_worker(serve: Callable[..., Server]) -> None:
    server = serve("pidapp:app", "--port", "0", "--workers", "2").started()
    load = Load(server)
    load.wait_answers(20)
    old = load.pids_since(0)
    mark = len(server.lines)
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for(r"Reload complete: 2 new worker\(s\) ready", mark)
    server.wait_for(r"Worker \[\d+\] stopped \(exit code 0\)", mark)
    after = time.monotonic()
    load.wait_answers(30, since=after)
    load.stop()
    assert load.failures == []
    new = load.pids_since(after)
    assert new and not new & old
    assert server.stop() == 0


def test_sighup_under_keep_alive_load_drops_nothing(serve: Callable[..., Server]) -> None:
    server = serve("pidapp:app", "--port", "0", "--workers", "2").started()
    load = Load(server, keep_alive=True)
    load.wait_answers(20)
    mark = len(server.lines)
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for(r"Reload complete: 2 new worker\(s\) ready", mark)
    load.wait_answers(30, since=time.monotonic())
    load.stop()
    assert load.failures == []


def test_max_requests_recycling_under_load_drops_nothing(serve: Callable[..., Server]) -> None:
    server = serve(
        "pidapp:app", "--port", "0", "--limit-max-requests", "25", "--timeout-worker-healthcheck", "1"
    ).started()
    assert_recycling_under_load_drops_nothing(server)


def assert_recycling_under_load_drops_nothing(server: Server) -> None:
    """Under load, a worker reaches --limit-max-requests 25, is replaced, and the next one does
    too: every request is answered, by more than one worker."""
    load = Load(server)
    server.wait_for(r"served \d+ requests \(limit 25\); recycling it")
    mark = len(server.lines)
    server.wait_for(r"Worker \[\d+\] stopped \(exit code 0\)", mark)
    server.wait_for(r"served \d+ requests \(limit 25\); recycling it", mark)
    load.wait_answers(10, since=time.monotonic())
    load.stop()
    assert load.failures == []
    assert len(load.pids_since(0)) >= 2


def test_reload_picks_up_edits_and_survives_a_syntax_error(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    server = serve("pidapp:app", "--port", "0", "--reload", "--reload-dir", str(tmp_path)).started()
    server.wait_for(r"Watching for file changes in ")
    assert server.get().endswith(" v1")
    mark = len(server.lines)
    (tmp_path / "pidapp.py").write_text("def broken(:\n")
    server.wait_for(r"Waiting for a file change before restarting", mark)
    assert server.proc.poll() is None
    mark = len(server.lines)
    write_app(tmp_path, "v2")
    server.wait_for(r"Worker \[\d+\] ready", mark)
    assert server.get().endswith(" v2")
    assert server.stop() == 0


def test_socket_activation_serves_the_inherited_socket(serve: Callable[..., Server]) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    # systemd's contract: the sockets from fd 3 on, LISTEN_PID = the service's own pid (set after fork).
    wrapper = (
        "import os, sys; os.dup2(int(sys.argv[1]), 3); os.environ['LISTEN_FDS'] = '1';"
        "os.environ['LISTEN_PID'] = str(os.getpid());"
        "os.execv(sys.executable, [sys.executable, '-m', 'squall', *sys.argv[2:]])"
    )
    command = [sys.executable, "-c", wrapper, str(listener.fileno())]
    server = serve("pidapp:app", "--port", "1", command=command, pass_fds=(listener.fileno(),))
    listener.close()
    server.started()
    assert server.port == port
    assert server.get() == f"{server.proc.pid} v1"
    mark = len(server.lines)
    server.proc.send_signal(signal.SIGHUP)  # the new image gets the socket the same way
    server.wait_for(rf"running on http://127\.0\.0\.1:{port} ", mark)
    assert server.get() == f"{server.proc.pid} v1"
    assert server.stop() == 0


@pytest.mark.parametrize("mode", [[], ["--supervisor"]], ids=["single", "supervised"])
def test_sd_notify_ready_and_stopping(serve: Callable[..., Server], tmp_path: Path, mode: list[str]) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(tmp_path / "notify"))
        notify.settimeout(WAIT)
        server = serve("pidapp:app", "--port", "0", *mode, env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
        ready = notify.recv(4096).decode().split("\n")
        assert "READY=1" in ready
        assert f"MAINPID={server.proc.pid}" in ready
        server.started()
        server.proc.send_signal(signal.SIGTERM)
        assert notify.recv(4096) == b"STOPPING=1"
        assert server.proc.wait(WAIT) == 0


BOTH_MODES = pytest.mark.parametrize("mode", [[], ["--workers", "2"]], ids=["single", "supervised"])


@BOTH_MODES
def test_startup_failure_of_every_worker_exits_3_with_the_reason(
    serve: Callable[..., Server], mode: list[str]
) -> None:
    started = time.monotonic()
    server = serve("no_such_module:app", "--port", "0", *mode)
    assert server.proc.wait(WAIT) == 3
    assert time.monotonic() - started < 10
    server.wait_for("<EOF>")
    assert len(server.lines) == 2, server.lines  # one line, the reason, then EOF
    assert server.lines[0].startswith("squall: error: cannot import module 'no_such_module'")


@BOTH_MODES
def test_lifespan_startup_failure_exits_3_with_the_reason(
    serve: Callable[..., Server], tmp_path: Path, mode: list[str]
) -> None:
    (tmp_path / "failing.py").write_text(
        "async def app(scope, receive, send):\n"
        "    await receive()\n"
        "    await send({'type': 'lifespan.startup.failed', 'message': 'database unreachable'})\n"
    )
    server = serve("failing:app", "--port", "0", *mode)
    assert server.proc.wait(WAIT) == 3
    server.wait_for(r"squall: error: application startup failed: database unreachable")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_finishes_in_flight_requests_then_exits_zero(
    serve: Callable[..., Server], tmp_path: Path, signum: int
) -> None:
    pid_file = tmp_path / "squall.pid"
    server = serve("pidapp:app", "--port", "0", "--pid-file", str(pid_file)).started()
    assert pid_file.read_text().strip() == str(server.proc.pid)
    result: list[str] = []
    client = threading.Thread(target=lambda: result.append(server.get("/slow?1")))
    client.start()
    server.wait_for(r"APP slow request started")
    server.proc.send_signal(signum)
    client.join(WAIT)
    assert result == [f"{server.proc.pid} v1"]  # served by the one process squall started as
    assert server.proc.wait(WAIT) == 0
    assert not pid_file.exists()


@pytest.mark.parametrize(
    ("mode", "draining"),
    [([], r"Shutting down"), (["--supervisor"], r"Stopping 1 worker\(s\) gracefully")],
    ids=["single", "supervised"],
)
def test_second_sigint_stops_at_once(serve: Callable[..., Server], mode: list[str], draining: str) -> None:
    server = serve("pidapp:app", "--port", "0", *mode).started()
    failed: list[Exception] = []

    def slow() -> None:
        try:
            server.get("/slow?60", timeout=WAIT)
        except Exception as exc:
            failed.append(exc)

    client = threading.Thread(target=slow)
    client.start()
    server.wait_for(r"APP slow request started")
    mark = len(server.lines)
    server.proc.send_signal(signal.SIGINT)
    server.wait_for(draining, mark)
    started = time.monotonic()
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(WAIT) == 128 + signal.SIGINT
    assert time.monotonic() - started < 5
    client.join(WAIT)
    assert failed


def test_ctrl_c_to_the_whole_process_group_stops_gracefully(serve: Callable[..., Server]) -> None:
    server = serve("pidapp:app", "--port", "0", "--workers", "2", new_session=True).started()
    os.killpg(server.proc.pid, signal.SIGINT)  # what a terminal does: every process gets it
    assert server.proc.wait(WAIT) == 0
    server.wait_for("<EOF>")
    assert sum("Finished server process" in line for line in server.lines) == 2
    assert not any("Traceback" in line or "Stopping now" in line for line in server.lines)


def test_workers_drain_and_exit_when_the_supervisor_is_killed(serve: Callable[..., Server]) -> None:
    server = serve("pidapp:app", "--port", "0", "--workers", "2").started()
    server.proc.kill()
    server.wait_for("<EOF>")  # stderr reaches EOF only once every worker holding it has exited
    assert sum("The supervisor went away; shutting down" in line for line in server.lines) == 2


# ---------------------------------------------------------------------- single-process mode


def test_one_worker_serves_in_the_process_it_started_in(serve: Callable[..., Server]) -> None:
    server = serve("pidapp:app", "--port", "0").started()
    assert server.pid_of_answer() == server.proc.pid
    assert children(server.proc.pid) == []  # no supervisor, no worker, no resource tracker
    assert not any("Supervisor" in line or "Worker" in line for line in server.lines)
    assert server.stop() == 0


@pytest.mark.parametrize(
    "options",
    [
        ["--workers", "2"],
        ["--supervisor"],
        ["--limit-max-requests", "1000"],
        ["--limit-max-memory", "4096"],
        ["--reload", "--reload-dir", "."],
    ],
    ids=lambda options: options[0],
)
def test_options_that_need_a_supervisor_start_one(serve: Callable[..., Server], options: list[str]) -> None:
    server = serve("pidapp:app", "--port", "0", *options).started()
    server.wait_for(rf"Supervisor \[{server.proc.pid}\]: \d worker\(s\) ready")
    assert server.pid_of_answer() in children(server.proc.pid)
    assert server.stop() == 0


@pytest.mark.parametrize("keep_alive", [False, True], ids=["fresh-connections", "keep-alive"])
def test_sighup_reloads_new_code_in_place_and_drops_nothing(
    serve: Callable[..., Server], tmp_path: Path, keep_alive: bool
) -> None:
    server = serve("pidapp:app", "--port", "0").started()
    load = Load(server, keep_alive=keep_alive)
    load.wait_answers(20)
    write_app(tmp_path, "v2")
    mark = len(server.lines)
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for(r"Restarting: ", mark)
    server.wait_for(r"running on http://127\.0\.0\.1:\d+ ", mark)
    load.wait_answers(30, since=time.monotonic())
    load.stop()
    assert load.failures == []
    assert load.pids_since(0) == {server.proc.pid}
    for versions in load.versions.values():  # each client saw v1 answers, then only v2 answers
        assert versions == sorted(versions) and versions[-1] == "v2", versions
    assert server.get() == f"{server.proc.pid} v2"
    assert server.stop() == 0


@pytest.mark.parametrize("then", ["nothing", "SIGTERM"])
def test_sighup_lets_in_flight_requests_finish_first(
    serve: Callable[..., Server], tmp_path: Path, then: str
) -> None:
    server = serve("pidapp:app", "--port", "0").started()
    upload = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
    upload.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\na")
    server.wait_for(r"APP upload started")
    write_app(tmp_path, "v2")
    mark = len(server.lines)
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for(r"Reloading: finishing in-flight requests", mark)
    if then == "SIGTERM":  # a stop during the drain wins: no restart
        server.proc.send_signal(signal.SIGTERM)
        server.wait_for(r"The reload is cancelled: stopping", mark)
    upload.sendall(b"b")  # the request completes, served by the old code
    response = upload.makefile("rb").read()
    upload.close()
    assert response.startswith(b"HTTP/1.1 200 ") and response.endswith(f"{server.proc.pid} v1".encode())
    if then == "SIGTERM":
        assert server.proc.wait(WAIT) == 0
        server.wait_for("<EOF>")
        assert not any("Restarting" in line for line in server.lines[mark:])
    else:
        server.wait_for(r"running on http://127\.0\.0\.1:\d+ ", mark)
        assert server.get() == f"{server.proc.pid} v2"


def test_sighup_with_code_that_does_not_import_keeps_serving(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    server = serve("pidapp:app", "--port", "0").started()
    (tmp_path / "pidapp.py").write_text("def broken(:\n")
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for(r"Reload refused, the running code keeps serving: importing 'pidapp' failed: SyntaxError")
    assert server.get() == f"{server.proc.pid} v1"
    write_app(tmp_path, "v2")
    mark = len(server.lines)
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for(r"running on http://127\.0\.0\.1:\d+ ", mark)
    assert server.get() == f"{server.proc.pid} v2"
    assert server.stop() == 0


def test_sighup_while_the_new_image_starts_does_not_end_the_process(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    server = serve("pidapp:app", "--port", "0").started()
    slow_import = "import sys, time\nprint('APP importing', file=sys.stderr, flush=True)\ntime.sleep(0.5)\n"
    (tmp_path / "pidapp.py").write_text(slow_import + textwrap.dedent(APP.format(version="v2")))
    mark = len(server.lines)
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for(r"Restarting: ", mark)
    server.wait_for(r"APP importing", mark)  # the new image (the check's stderr is not shown)
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for(r"running on http://127\.0\.0\.1:\d+ ", mark)
    assert server.get() == f"{server.proc.pid} v2"
    assert server.stop() == 0


def test_sd_notify_across_a_single_process_reload(serve: Callable[..., Server], tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(tmp_path / "notify"))
        notify.settimeout(WAIT)
        env = {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "200000"}
        server = serve("pidapp:app", "--port", "0", env=env)

        def recv() -> str:
            return notify.recv(4096).decode()

        def next_state() -> str:
            """The next state other than a watchdog ping."""
            while (state := recv()) == "WATCHDOG=1":
                pass
            return state

        assert f"MAINPID={server.proc.pid}" in next_state().split("\n")
        while recv() != "WATCHDOG=1":
            pass
        server.started()
        server.proc.send_signal(signal.SIGHUP)
        assert next_state().startswith("RELOADING=1\nMONOTONIC_USEC=")
        assert f"MAINPID={server.proc.pid}" in next_state().split("\n")  # READY=1 from the new image
        while recv() != "WATCHDOG=1":  # the new image pings the watchdog too
            pass
        server.proc.send_signal(signal.SIGTERM)
        assert next_state() == "STOPPING=1"
        assert server.proc.wait(WAIT) == 0


def test_scaling_signals_are_ignored_without_a_supervisor(serve: Callable[..., Server]) -> None:
    server = serve("pidapp:app", "--port", "0").started()
    server.proc.send_signal(signal.SIGTTIN)
    server.wait_for(r"Received SIGTTIN: ignored, one process serves")
    assert server.pid_of_answer() == server.proc.pid
    assert server.stop() == 0
