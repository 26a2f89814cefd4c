"""Run squall as a real subprocess: ephemeral port, readiness from its stderr, captured logs.

Two reader threads push every stderr line (the error log) and stdout line (the access log) into
one queue; the test thread moves them into ``Server.lines`` while it waits for a line matching a
pattern (bounded by a timeout). No sleeps. ``stdout_lines``/``stderr_lines`` keep them apart.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_APP = "tests.e2e.apps:app"
STARTUP = re.compile(r"Squall \S+ running on (?P<url>\S+) \(press CTRL\+C to quit\)")
ACCESS = re.compile(
    r' - "(?P<method>\S+) (?P<target>.*) HTTP/(?P<version>1\.[01])" (?P<status>\d{3}) (?P<bytes>\d+) '
)
READY_TIMEOUT = 15.0


class ServerExited(RuntimeError):
    """The server's stderr ended while we were waiting for a line."""


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test's environment without SQUALL_* variables, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SQUALL_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def squall_command(app: str | None, args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "squall", *([app] if app else []), *args]


def run_cli(args: Sequence[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a squall command that is expected to exit on its own."""
    return subprocess.run(
        squall_command(None, args),
        cwd=REPO_ROOT,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=READY_TIMEOUT,
        check=False,
    )


class Server:
    """One squall process serving ``app`` with extra CLI ``args``."""

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        app: str | None = DEFAULT_APP,
        env: dict[str, str] | None = None,
        pass_fds: Sequence[int] = (),
        ephemeral_port: bool = True,
    ) -> None:
        port_args = ["--port", "0"] if ephemeral_port else []
        self.command = squall_command(app, [*port_args, *args])
        self.env = clean_env(env)
        self.pass_fds = tuple(pass_fds)
        self.lines: list[str] = []
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._eof = False
        self._open_streams = 2
        self._readers: list[threading.Thread] = []

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Server:
        """Start the process and wait (at most READY_TIMEOUT) for its startup line."""
        self.proc = subprocess.Popen(
            self.command,
            cwd=REPO_ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="backslashreplace",
            pass_fds=self.pass_fds,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for stream, kept in ((self.proc.stderr, self.stderr_lines), (self.proc.stdout, self.stdout_lines)):
            reader = threading.Thread(target=self._read, args=(stream, kept), daemon=True)
            reader.start()
            self._readers.append(reader)
        self.url = self.wait_for_line(STARTUP, READY_TIMEOUT)["url"]
        return self

    def _read(self, stream: IO[str], kept: list[str]) -> None:
        for line in stream:
            kept.append(line.rstrip("\n"))
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://").rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10.0, **kwargs)  # type: ignore[arg-type]

    def terminate(self) -> None:
        """Send SIGTERM (a graceful stop)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float = 10.0) -> int:
        """Wait for the process to end; collect the rest of its stderr; return the exit code."""
        assert self.proc is not None
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        self._drain()
        return code

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then wait for exit; returns the exit code."""
        if self.proc is not None and self.proc.poll() is None:
            self.terminate()
        return self.wait_exit(timeout)

    def kill(self) -> None:
        """Last-resort cleanup: make sure the process is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    # --- logs --------------------------------------------------------------------------------

    def _absorb(self, item: str | None) -> None:
        if item is None:
            self._open_streams -= 1
            self._eof = self._open_streams == 0
        else:
            self.lines.append(item)

    def _drain(self) -> None:
        while True:
            try:
                self._absorb(self._queue.get_nowait())
            except queue.Empty:
                return

    def wait_for_line(
        self, pattern: str | re.Pattern[str], timeout: float = 10.0, start: int = 0
    ) -> re.Match[str]:
        """The first stderr line (from index ``start``) matching ``pattern``, waiting up to ``timeout``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        index = start
        while True:
            self._drain()
            for line in self.lines[index:]:
                match = regex.search(line)
                if match:
                    return match
            index = len(self.lines)
            if self._eof:
                raise ServerExited(f"server exited before logging {regex.pattern!r}:\n{self.log()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no stderr line matching {regex.pattern!r} in {timeout}s:\n{self.log()}")
            with contextlib.suppress(queue.Empty):
                self._absorb(self._queue.get(timeout=remaining))

    def mark(self) -> int:
        """Index of the next stderr line (pass as ``start`` to only look at later lines)."""
        self._drain()
        return len(self.lines)

    def log(self) -> str:
        self._drain()
        return "\n".join(self.lines)

    def access_lines(self) -> list[re.Match[str]]:
        self._drain()
        return [m for m in map(ACCESS.search, self.lines) if m]

    # --- process inspection ------------------------------------------------------------------

    def rss_kib(self) -> int:
        """Resident set size of the server process, in KiB."""
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS line")
