"""squall against the current releases of its peers, one scenario family per command.

    python3 bench/suite.py hello        # hello world, 64 and 256 connections; RSS; startup time
    python3 bench/suite.py stream       # 100 x 64 B body messages: HTTP/1.1 (wrk) and h2c (h2load)
    python3 bench/suite.py latency      # hello at 64, 256, 1024, 4096 connections: req/s, p50, p99
    python3 bench/suite.py frameworks   # Starlette JSON route; FastAPI route with a pydantic body
    python3 bench/suite.py files        # Starlette FileResponse of 1 MiB and 100 MiB; CPU s per GB
    python3 bench/suite.py websocket    # websocket echo, 64 connections, 32 B messages
    python3 bench/suite.py h2           # h2c hello, h2load -c 64 -m 10
    python3 bench/suite.py scale        # 10k idle keep-alive / 10k websockets: RSS per connection,
                                        # hello req/s while held, broadcast to all 10k websockets
    python3 bench/suite.py workers      # --workers 2 each (unpinned): req/s and spread over workers;
                                        # squall twice: shared socket, and --reuse-port
    python3 bench/suite.py cpu          # server CPU time per request (hello, Starlette JSON): steady
                                        # on a busy machine, where req/s is not
    python3 bench/suite.py all          # every family above, one after the other

The first run makes ``bench/.venv`` (or ``$BENCH_VENV``) with the pinned peers below and squall
from this checkout (compiled), apt-installs wrk and nghttp2-client when missing, then re-runs itself
there. Each server runs alone, pinned to core ``SERVER_CPU`` (0); the load generator runs on
``LOAD_CPU`` (1); one worker each (but ``workers``). Each family prints a markdown table: the value
for every server and the ratios squall / peer; ``bench/results-<family>.md`` keeps it.

Knobs (environment): DURATION (s per measurement, 10), SERVERS (default: every server), SERVER_CPU,
LOAD_CPU, HOLD (connections of ``scale``, 10000), BENCH_VENV, ROUNDS (1; with N > 1 each family
runs N times, every server in each round, and the tables give each value's median and, beside each
ratio, the lowest and highest ratio of a single round).
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
VENV = Path(os.environ.get("BENCH_VENV", BENCH / ".venv"))
#: The peers' current releases (pip index versions, 2026-12): uvicorn 0.55.0 is newer than the
#: 0.54.x of the issue; gunicorn 27 has an ASGI worker (-k asgi, uvloop when installed).
PINS = [
    "uvicorn[standard]==0.55.0",
    "granian==2.8.9",
    "hypercorn==0.18.0",
    "gunicorn==27.0.1",
    "uvloop",
    "httptools",
    "websockets",
    "starlette",
    "fastapi",
    "pydantic",
]
ALL_SERVERS = ["squall", "uvicorn", "granian", "hypercorn", "gunicorn", "raw"]
#: What the families that also run the ceiling (bench/raw_server.py) select from: every server and
#: raw. Only hello and websocket echo do; ``selected()`` leaves raw out otherwise.
WITH_RAW = set(ALL_SERVERS)
DURATION = int(os.environ.get("DURATION", "10"))
ROUNDS = int(os.environ.get("ROUNDS", "1"))  # >1: every family that many times, medians reported
SERVER_CPU = os.environ.get("SERVER_CPU", "0")
LOAD_CPU = os.environ.get("LOAD_CPU", "1")
HOLD = int(os.environ.get("HOLD", "10000"))
MIB = 1024 * 1024


# ---------------------------------------------------------------------------- environment


def ensure_environment() -> None:
    """Tools from apt, the bench venv with the pinned peers; re-exec inside it."""
    missing = [pkg for tool, pkg in (("wrk", "wrk"), ("h2load", "nghttp2-client")) if not shutil.which(tool)]
    if missing:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run([*sudo, "apt-get", "install", "-y", "-q", *missing], check=True)
    python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    stamp = VENV / ".pins"
    wanted = "\n".join(PINS)
    if not stamp.exists() or stamp.read_text() != wanted:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PINS], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", str(REPO)], check=True)
        stamp.write_text(wanted)
    version = subprocess.run(
        [str(python), "-m", "squall", "--version"], capture_output=True, text=True, check=False
    )
    if "compiled" not in version.stdout:  # a pure install of the checkout (SQUALL_NO_COMPILE): build it
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", str(REPO)], check=True)
    # The peers' bytecode was compiled by pip at install time; an editable squall's is not, and
    # with PYTHONDONTWRITEBYTECODE set it would be compiled again at every start (+50 ms startup).
    subprocess.run([str(python), "-m", "compileall", "-q", str(REPO / "squall"), str(BENCH)], check=True)
    os.execv(str(python), [str(python), *sys.argv])


def raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def versions() -> str:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, check=False
    ).stdout
    names = {"uvicorn", "granian", "hypercorn", "gunicorn", "uvloop", "starlette", "fastapi"}
    found = [line for line in out.splitlines() if line.split("==")[0].lower() in names]
    squall = subprocess.run(
        [sys.executable, "-m", "squall", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return f"{squall}; " + ", ".join(found)


# ---------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: squall started with extra flags, as a server of its own in the tables (``workers``).
VARIANTS = {"squall --reuse-port": ("squall", ["--reuse-port"])}


def server_command(
    name: str, app: str, port: int, workers: int, *, h2: bool = False, idle: bool = False
) -> list[str]:
    """How each server is started: one worker, no access log, uvloop (+ httptools)."""
    py = sys.executable
    bindir = str(Path(py).parent)
    if name in VARIANTS:
        base, flags = VARIANTS[name]
        return server_command(base, app, port, workers, h2=h2, idle=idle) + flags
    if name == "squall":
        cmd = [py, "-m", "squall", app, "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
        cmd += ["--log-level", "warning", "--workers", str(workers), "--backlog", "4096"]
        cmd += ["--limit-concurrency", "20000"]  # its default (4096) would 503 the 10k-connection runs
        return cmd + (["--timeout-keep-alive", "600"] if idle else [])
    if name == "uvicorn":
        cmd = [py, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop"]
        cmd += ["--http", "httptools", "--ws", "websockets", "--no-access-log", "--log-level", "warning"]
        cmd += ["--backlog", "4096"]
        cmd += ["--workers", str(workers)] if workers > 1 else []
        return cmd + (["--timeout-keep-alive", "600"] if idle else [])
    if name == "granian":
        cmd = [f"{bindir}/granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port)]
        cmd += [
            "--workers",
            str(workers),
            "--loop",
            "uvloop",
            "--log-level",
            "warning",
            "--http",
            "2" if h2 else "1",
        ]
        cmd += ["--backlog", "4096"]
        return [*cmd, app]
    if name == "hypercorn":
        cmd = [f"{bindir}/hypercorn", app, "--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
        cmd += ["--worker-class", "uvloop", "--log-level", "warning", "--backlog", "4096"]
        return cmd + (["--keep-alive", "600"] if idle else [])
    if name == "raw":  # the ceiling (bench/raw_server.py): no parser, no ASGI, no app
        return [py, str(BENCH / "raw_server.py"), "--port", str(port), "--backlog", "4096"]
    if name == "gunicorn":
        cmd = [f"{bindir}/gunicorn", "-k", "asgi", "-w", str(workers), "-b", f"127.0.0.1:{port}"]
        cmd += ["--log-level", "warning", "--backlog", "4096", "--worker-connections", "20000"]
        return cmd + (["--keep-alive", "600"] if idle else []) + [app]
    raise ValueError(name)


#: Which servers can serve what (h2c: prior-knowledge cleartext HTTP/2).
CAN = {
    "h2": {"squall", "granian", "hypercorn"},
    "ws": {"squall", "uvicorn", "granian", "hypercorn", "gunicorn", "raw"},
}


@dataclass
class Running:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    started_ms: float
    log: Path

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid)

    def rss_kib(self) -> int:
        return sum(vm_rss_kib(pid) for pid in self.pids())

    def cpu_seconds(self) -> float:
        user, system = self.cpu_split()
        return user + system

    def cpu_split(self) -> tuple[float, float]:
        """User and system CPU seconds of the whole process tree so far."""
        ticks = os.sysconf("SC_CLK_TCK")
        user = system = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                user += int(fields[11])
                system += int(fields[12])
        return user / ticks, system / ticks


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def vm_rss_kib(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def answers(port: int, path: str, h2: bool) -> bool:
    if h2:
        result = subprocess.run(
            ["curl", "-sf", "--http2-prior-knowledge", "-o", "/dev/null", f"http://127.0.0.1:{port}{path}"],
            check=False,
        )
        return result.returncode == 0
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def serve(
    name: str,
    app: str,
    *,
    workers: int = 1,
    h2: bool = False,
    idle: bool = False,
    path: str = "/",
    env: dict[str, str] | None = None,
    pin: bool = True,
) -> Iterator[Running]:
    port = free_port()
    log = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
    cmd = server_command(name, app, port, workers, h2=h2, idle=idle)
    if pin:
        cmd = ["taskset", "-c", SERVER_CPU, *cmd]
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    running = Running(name, proc, port, 0.0, log)
    try:
        deadline = time.monotonic() + 30
        while not answers(port, path, h2):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.02)
        running.started_ms = (time.perf_counter() - started) * 1000
        yield running
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# ---------------------------------------------------------------------------- load generators


@dataclass
class Load:
    rps: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    bytes_read: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}
_SIZES = {"B": 1, "KB": 1024, "MB": MIB, "GB": 1024 * MIB, "TB": 1024 * 1024 * MIB}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(
    port: int,
    *,
    path: str = "/",
    conns: int = 64,
    script: str | None = None,
    pin: bool = True,
    duration: int = DURATION,
) -> Load:
    threads = 1 if conns < 1024 else 2
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    cmd += ["-s", str(BENCH / script)] if script else []
    cmd.append(f"http://127.0.0.1:{port}{path}")
    if pin:
        cmd = ["taskset", "-c", LOAD_CPU, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    load = Load()
    if match := re.search(r"Requests/sec:\s+([\d.]+)", out):
        load.rps = float(match.group(1))
    if match := re.search(r"^\s+50%\s+(\S+)", out, re.M):
        load.p50_ms = _ms(match.group(1))
    if match := re.search(r"^\s+99%\s+(\S+)", out, re.M):
        load.p99_ms = _ms(match.group(1))
    if match := re.search(r"requests in [\d.]+\w+, ([\d.]+)(\w+) read", out):
        load.bytes_read = float(match.group(1)) * _SIZES[match.group(2)]
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        load.errors += int(match.group(1))
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        load.errors += sum(map(int, match.groups()))
    return load


def h2load(port: int, path: str = "/", conns: int = 64, streams: int = 10) -> Load:
    url = f"http://127.0.0.1:{port}{path}"
    base = ["taskset", "-c", LOAD_CPU, "h2load", "-c", str(conns), "-m", str(streams)]
    subprocess.run([*base, "-D", "2", url], capture_output=True, check=False)  # warm-up
    out = subprocess.run(
        [*base, "-D", str(DURATION), url], capture_output=True, text=True, check=False
    ).stdout
    load = Load()
    if match := re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out):
        load.rps = float(match.group(1))
    if match := re.search(
        r"requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed, (\d+) errored", out
    ):
        load.errors = int(match.group(1)) + int(match.group(2))
    return load


def ws_echo(port: int) -> Load:
    cmd = ["taskset", "-c", LOAD_CPU, sys.executable, str(BENCH / "ws_echo.py"), "--port", str(port)]
    cmd += ["--conns", "64", "--size", "32", "--duration", str(DURATION), "--warmup", "2"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO).stdout
    match = re.search(r"msgs_per_sec=([\d.]+)", out)
    return Load(rps=float(match.group(1)) if match else 0.0)


# ---------------------------------------------------------------------------- tables


@dataclass
class Table:
    title: str
    unit: str
    servers: list[str]
    higher_is_better: bool = True
    rows: list[tuple[str, dict[str, float | None]]] = field(default_factory=list)
    # With ROUNDS > 1: per (scenario, peer), the lowest and highest squall/peer ratio of a round.
    spreads: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)

    def add(self, scenario: str, values: dict[str, float | None]) -> None:
        self.rows.append((scenario, values))
        print(f"  {scenario}: " + ", ".join(f"{s} {fmt(v)}" for s, v in values.items()), flush=True)

    def render(self) -> str:
        peers = [s for s in self.servers if s != "squall"]
        better = "higher" if self.higher_is_better else "lower"
        lines = [f"### {self.title} ({self.unit}; {better} is better; ratio = squall / peer)", ""]
        head = ["scenario", *self.servers, *(f"squall/{p}" for p in peers)]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for scenario, values in self.rows:
            squall = values.get("squall")
            ratios = [ratio(squall, values.get(p)) + spread(self.spreads.get((scenario, p))) for p in peers]
            lines.append(
                "| " + " | ".join([scenario, *(fmt(values.get(s)) for s in self.servers), *ratios]) + " |"
            )
        return "\n".join(lines)


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def spread(low_high: tuple[float, float] | None) -> str:
    return "" if low_high is None else f" ({low_high[0]:.2f} to {low_high[1]:.2f})"


def merge_rounds(rounds: list[list[Table]]) -> list[Table]:
    """One family's tables from several rounds: each value the median of its rounds, each ratio
    the ratio of the medians, with the lowest and highest ratio of a single round beside it."""
    merged = []
    for tables in zip(*rounds, strict=True):
        first = tables[0]
        table = Table(first.title, first.unit, first.servers, first.higher_is_better)
        for index, (scenario, _) in enumerate(first.rows):
            runs = [t.rows[index][1] for t in tables]
            values = {name: _median([run.get(name) for run in runs]) for name in first.servers}
            table.rows.append((scenario, values))
            for peer in first.servers:
                per_round = [r["squall"] / r[peer] for r in runs if r.get("squall") and r.get(peer)]
                if peer != "squall" and per_round:
                    table.spreads[(scenario, peer)] = (min(per_round), max(per_round))
        merged.append(table)
    return merged


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def selected(wanted: set[str] | None = None) -> list[str]:
    """The servers of $SERVERS (default: all) that can run a family (``wanted``; default: every
    real server, not the raw ceiling)."""
    names = os.environ.get("SERVERS", " ".join(ALL_SERVERS)).split()
    allowed = wanted if wanted is not None else set(ALL_SERVERS) - {"raw"}
    return [name for name in names if name in allowed]


def each(servers: list[str], measure: Callable[[str], T | None]) -> dict[str, T | None]:
    values: dict[str, T | None] = {}
    for name in servers:
        try:
            values[name] = measure(name)
        except Exception as exc:  # one server failing must not lose the others' figures
            print(f"  {name}: failed: {exc}", file=sys.stderr, flush=True)
            values[name] = None
    return values


# ---------------------------------------------------------------------------- families


def family_hello() -> list[Table]:
    servers = selected(WITH_RAW)
    rps = Table("hello world", "req/s", servers)
    other = Table(
        "hello world: memory and startup", "RSS MiB after 256 conns / ms to first answer", servers, False
    )
    rss: dict[str, float | None] = {}
    startup: dict[str, float | None] = {}
    results: dict[int, dict[str, float | None]] = {64: {}, 256: {}}
    for name in servers:
        try:
            with serve(name, "bench.apps:hello") as server:
                startup[name] = server.started_ms
                wrk(server.port, conns=64, duration=2)
                for conns in (64, 256):
                    results[conns][name] = wrk(server.port, conns=conns).rps
                rss[name] = server.rss_kib() / 1024
        except Exception as exc:
            print(f"  {name}: failed: {exc}", file=sys.stderr)
    for conns in (64, 256):
        rps.add(f"hello, {conns} conns", results[conns])
    other.add("RSS after the runs (MiB, whole process tree)", rss)
    other.add("startup: spawn to first 200 (ms)", startup)
    return [rps, other]


def family_stream() -> list[Table]:
    table = Table("streamed response: 100 body messages of 64 B", "req/s", selected())

    def h1(name: str) -> float:
        with serve(name, "bench.apps:stream") as server:
            wrk(server.port, duration=2)
            return wrk(server.port).rps

    def h2(name: str) -> float:
        with serve(name, "bench.apps:stream", h2=True) as server:
            return h2load(server.port).rps

    table.add("HTTP/1.1, 64 conns (wrk)", each(table.servers, h1))
    table.add(
        "h2c, 64 conns x 10 streams (h2load)",
        each(table.servers, lambda n: h2(n) if n in CAN["h2"] else None),
    )
    return [table]


def family_latency() -> list[Table]:
    servers = selected()
    tables = {
        key: Table(f"hello world by connections: {key}", unit, servers, key == "req/s")
        for key, unit in (("req/s", "req/s"), ("p50", "ms"), ("p99", "ms"))
    }
    found: dict[int, dict[str, Load | None]] = {n: {} for n in (64, 256, 1024, 4096)}
    for name in servers:
        try:
            with serve(name, "bench.apps:hello") as server:
                wrk(server.port, conns=64, duration=2)
                for conns, loads in found.items():
                    loads[name] = wrk(server.port, conns=conns)
        except Exception as exc:
            print(f"  {name}: failed: {exc}", file=sys.stderr)
    for conns, loads in found.items():
        tables["req/s"].add(f"{conns} conns", {s: getattr(loads.get(s), "rps", None) for s in servers})
        tables["p50"].add(f"{conns} conns", {s: getattr(loads.get(s), "p50_ms", None) for s in servers})
        tables["p99"].add(f"{conns} conns", {s: getattr(loads.get(s), "p99_ms", None) for s in servers})
    return list(tables.values())


def family_frameworks() -> list[Table]:
    table = Table("frameworks", "req/s", selected())

    def measure(app: str, path: str, script: str | None) -> Callable[[str], float]:
        def run(name: str) -> float:
            with serve(name, app, path=path if script is None else "/docs") as server:
                wrk(server.port, path=path, script=script, duration=2)
                return wrk(server.port, path=path, script=script).rps

        return run

    table.add(
        "Starlette JSON route",
        each(table.servers, measure("bench.framework_apps:starlette_app", "/json", None)),
    )
    table.add(
        "FastAPI, pydantic body (POST)",
        each(table.servers, measure("bench.framework_apps:fastapi_app", "/items", "post_item.lua")),
    )
    return [table]


def family_cpu() -> list[Table]:
    """Server CPU time (user + system, whole process tree) per request for a fixed number of
    requests: steadier than req/s on a machine where other work runs, since it does not count
    the time the server waited for a core. The system part is shown on its own row: over
    loopback it includes waking the load generator for each write that finds it asleep."""
    table = Table("server CPU time per request, h2load --h1 -c 64", "µs per request", selected(), False)

    def measure(app: str, path: str, count: int) -> Callable[[str], tuple[float, float]]:
        def run(name: str) -> tuple[float, float]:
            with serve(name, app, path=path) as server:
                url = f"http://127.0.0.1:{server.port}{path}"
                base = ["taskset", "-c", LOAD_CPU, "h2load", "--h1", "-c", "64"]
                subprocess.run([*base, "-n", "5000", url], capture_output=True, check=False)  # warm-up
                user, system = server.cpu_split()
                cmd = [*base, "-n", str(count), url]
                out = subprocess.run(cmd, capture_output=True, text=True, check=False)
                user_after, system_after = server.cpu_split()
                if f"{count} succeeded, 0 failed" not in out.stdout:
                    raise RuntimeError(f"not every request succeeded: {out.stdout[-400:]}")
                return (user_after - user) / count * 1e6, (system_after - system) / count * 1e6

        return run

    for scenario, app, path, count in (
        ("hello", "bench.apps:hello", "/", 100_000),
        ("Starlette JSON route", "bench.framework_apps:starlette_app", "/json", 50_000),
    ):
        split = each(table.servers, measure(app, path, count))
        table.add(scenario, {name: None if v is None else sum(v) for name, v in split.items()})
        system = {name: None if v is None else v[1] for name, v in split.items()}
        table.add(f"{scenario}: of which system", system)
    return [table]


def family_files() -> list[Table]:
    servers = selected()
    rps = Table("file download (Starlette FileResponse)", "MiB/s", servers)
    cpu = Table("file download: server CPU", "CPU seconds per GB sent", servers, False)
    folder = Path(tempfile.mkdtemp(prefix="squall-bench-files-"))
    for size, name in ((MIB, "1mib.bin"), (100 * MIB, "100mib.bin")):
        with (folder / name).open("wb") as out:
            for _ in range(size // MIB):
                out.write(os.urandom(MIB))
    env = {"BENCH_FILE_DIR": str(folder)}
    try:
        for size, name, conns in ((MIB, "1mib.bin", 16), (100 * MIB, "100mib.bin", 4)):
            per_gb: dict[str, float | None] = {}

            def run(
                server_name: str,
                name: str = name,
                conns: int = conns,
                per_gb: dict[str, float | None] = per_gb,
            ) -> float:
                with serve(
                    server_name, "bench.framework_apps:starlette_app", path=f"/files/{name}", env=env
                ) as server:
                    wrk(server.port, path=f"/files/{name}", conns=conns, duration=2)
                    before = server.cpu_seconds()
                    load = wrk(server.port, path=f"/files/{name}", conns=conns)
                    used = server.cpu_seconds() - before
                    per_gb[server_name] = used / (load.bytes_read / (1024 * MIB)) if load.bytes_read else None
                    return load.bytes_read / MIB / DURATION

            label = f"{size // MIB} MiB, {conns} conns"
            rps.add(label, each(servers, run))
            cpu.add(label, per_gb)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return [rps, cpu]


def family_websocket() -> list[Table]:
    table = Table("websocket echo: 64 conns, 32 B messages", "messages/s", selected(CAN["ws"]))

    def run(name: str) -> float:
        with serve(name, "bench.ws_app:echo") as server:
            return ws_echo(server.port).rps

    table.add("echo", each(table.servers, run))
    return [table]


def family_h2() -> list[Table]:
    table = Table("h2c hello world (h2load -c 64 -m 10)", "req/s", selected(CAN["h2"]))

    def run(name: str) -> float:
        with serve(name, "bench.apps:hello", h2=True) as server:
            return h2load(server.port).rps

    table.add("h2c hello", each(table.servers, run))
    return [table]


def _hold(server: Running, ws: bool) -> tuple[float, float, float | None, int]:
    """Open HOLD connections; return RSS per connection (KiB), hello req/s meanwhile, broadcast
    time (ms, websockets) and how many were still open at the end."""
    base = server.rss_kib()
    cmd = ["taskset", "-c", LOAD_CPU, sys.executable, str(BENCH / "hold.py"), "--port", str(server.port)]
    cmd += ["--conns", str(HOLD)] + (["--ws", "--broadcast"] if ws else [])
    holder = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert holder.stdin is not None and holder.stdout is not None
    try:
        line = holder.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError(f"holder: {line!r}")
        time.sleep(1)  # the server's allocator settles
        per_conn = (server.rss_kib() - base) / HOLD
        load = wrk(server.port, conns=64)
        holder.stdin.write("go\n")
        holder.stdin.flush()
        broadcast = None
        still_open = 0
        for line in holder.stdout:
            if line.startswith("broadcast_ms="):
                broadcast = float(line.split("=")[1])
            elif line.startswith("open "):
                still_open = int(line.split()[1])
        return per_conn, load.rps, broadcast, still_open
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait()


def family_scale() -> list[Table]:
    servers = selected()
    tables = [
        Table(f"{HOLD} idle keep-alive connections", "KiB RSS per connection", servers, False),
        Table(f"{HOLD} idle keep-alive connections: hello on 64 other conns", "req/s", servers),
        Table(f"{HOLD} open websockets", "KiB RSS per connection", selected(CAN["ws"]), False),
        Table(f"{HOLD} open websockets: hello on 64 other conns", "req/s", selected(CAN["ws"])),
        Table(
            f"{HOLD} open websockets: one message to all",
            "ms until the last one has it",
            selected(CAN["ws"]),
            False,
        ),
    ]
    found: dict[str, dict[str, float | None]] = {key: {} for key in ("krss", "krps", "wrss", "wrps", "bc")}
    for name in servers:
        for ws in (False, True):
            if ws and name not in CAN["ws"]:
                continue
            keys = ("wrss", "wrps", "bc") if ws else ("krss", "krps", None)
            try:
                with serve(name, "bench.ws_app:hub", idle=True) as server:
                    per_conn, rps, broadcast, still_open = _hold(server, ws)
                if still_open < HOLD:
                    print(
                        f"  {name}: only {still_open} of {HOLD} connections were still open", file=sys.stderr
                    )
                found[keys[0]][name], found[keys[1]][name] = per_conn, rps
                if keys[2]:
                    found[keys[2]][name] = broadcast
            except Exception as exc:
                print(f"  {name}: failed: {exc}", file=sys.stderr)
    for table, key in zip(tables, ("krss", "krps", "wrss", "wrps", "bc"), strict=True):
        table.add("held", {s: found[key].get(s) for s in table.servers})
    return tables


def family_workers() -> list[Table]:
    servers = selected({"squall", "uvicorn", "granian", "hypercorn", "gunicorn"})
    if "squall" in servers:  # squall both ways: one shared socket, and one per worker
        servers.insert(servers.index("squall") + 1, "squall --reuse-port")
    rps = Table("--workers 2 each, unpinned, 256 conns", "req/s", servers)
    spread = Table("--workers 2: share of requests served by the busier worker", "%", servers, False)
    found: dict[str, float | None] = {}
    shares: dict[str, float | None] = {}
    for name in servers:
        folder = Path(tempfile.mkdtemp(prefix="squall-bench-count-"))
        try:
            with serve(
                name, "bench.apps:counted", workers=2, pin=False, env={"BENCH_COUNT_DIR": str(folder)}
            ) as server:
                wrk(server.port, conns=256, pin=False, duration=2)
                found[name] = wrk(server.port, conns=256, pin=False).rps
            counts = [int(p.read_text().split()[1]) for p in folder.iterdir()]
            shares[name] = 100 * max(counts) / sum(counts) if len(counts) >= 2 and sum(counts) else None
        except Exception as exc:
            print(f"  {name}: failed: {exc}", file=sys.stderr)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    rps.add("hello", found)
    spread.add("hello", shares)
    return [rps, spread]


FAMILIES: dict[str, Callable[[], list[Table]]] = {
    "hello": family_hello,
    "stream": family_stream,
    "latency": family_latency,
    "frameworks": family_frameworks,
    "files": family_files,
    "websocket": family_websocket,
    "h2": family_h2,
    "scale": family_scale,
    "workers": family_workers,
    "cpu": family_cpu,
}


def main() -> int:
    wanted = sys.argv[1:] or ["--help"]
    if wanted[0] in ("-h", "--help") or any(w not in FAMILIES and w != "all" for w in wanted):
        print(__doc__)
        return 0 if wanted[0] in ("-h", "--help") else 2
    ensure_environment()
    raise_fd_limit()
    names = list(FAMILIES) if "all" in wanted else wanted
    header = f"{versions()}; DURATION={DURATION}s, server on CPU {SERVER_CPU}, load on CPU {LOAD_CPU}"
    print(header, flush=True)
    for family in names:
        print(f"== {family}", flush=True)
        started = time.monotonic()
        rounds = []
        for number in range(ROUNDS):
            if ROUNDS > 1:
                print(f"-- round {number + 1} of {ROUNDS}", flush=True)
            rounds.append(FAMILIES[family]())
        tables = rounds[0] if ROUNDS == 1 else merge_rounds(rounds)
        text = "\n\n".join(table.render() for table in tables)
        command = f"{'' if ROUNDS == 1 else f'ROUNDS={ROUNDS} '}python3 bench/suite.py {family}"
        text = f"`{command}` ({header}, {time.monotonic() - started:.0f} s)\n\n{text}\n"
        (BENCH / f"results-{family}.md").write_text(text)
        print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
