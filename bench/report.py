"""Helpers for bench/run.sh: parse wrk output, inspect processes, render the report.

Subcommands (all print to stdout):
  freeport                  a free TCP port on 127.0.0.1
  parse WRK_OUTPUT_FILE     "rps<TAB>p99_ms<TAB>non2xx<TAB>socket_errors"
  tree PID                  PID and all its descendants, one per line
  rss PID                   "kib<TAB>nprocs<TAB>max_kib": VmRSS of PID and its descendants
                            (sum, process count, largest single process)
  cpubusy                   percent of all CPUs busy over the next second
  cpusnap PID               CPU snapshot ("busy total ours" jiffies) for PID's tree
  cpuforeign SNAP1 SNAP2    CPU used by other processes between snapshots, % of one CPU
  table --results TSV --status TSV --rss TSV --servers "a b" [--meta FILE]
                            the markdown report
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

_UNIT_TO_MS: dict[str, float] = {
    "us": 1e-3,
    "ms": 1.0,
    "s": 1e3,
    "m": 60e3,
    "h": 3600e3,
}

_RPS_RE = re.compile(r"^Requests/sec:\s+([0-9.]+)", re.MULTILINE)
_P99_RE = re.compile(r"^\s*99(?:\.0+)?%\s+([0-9.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_NON2XX_RE = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKERR_RE = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")

#: (scenario id, human label) in report order; must match run.sh.
SCENARIOS: tuple[tuple[str, str], ...] = (
    ("hello", "hello world (GET /)"),
    ("big", "1 MiB response (GET /)"),
    ("echo", "1 MiB POST echo"),
)


#: Above this share of one core used by other processes during a measured
#: round, the report carries a warning.
FOREIGN_CPU_WARN: float = 10.0


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p99_ms: float
    non2xx: int
    socket_errors: int


def parse_wrk(text: str) -> WrkResult:
    """Extract req/s, p99 latency, non-2xx/3xx count and socket errors."""
    rps_m = _RPS_RE.search(text)
    p99_m = _P99_RE.search(text)
    if rps_m is None or p99_m is None:
        raise ValueError("wrk output has no Requests/sec or 99% latency line")
    non2xx_m = _NON2XX_RE.search(text)
    sock_m = _SOCKERR_RE.search(text)
    return WrkResult(
        rps=float(rps_m.group(1)),
        p99_ms=float(p99_m.group(1)) * _UNIT_TO_MS[p99_m.group(2)],
        non2xx=int(non2xx_m.group(1)) if non2xx_m else 0,
        socket_errors=sum(int(g) for g in sock_m.groups()) if sock_m else 0,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _parent_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # Field 4 is the ppid; the command name (field 2) may hold spaces.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def process_tree(pid: int) -> list[int]:
    """pid followed by all its live descendants."""
    children = _parent_map()
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        if Path(f"/proc/{p}").exists():
            out.append(p)
        todo.extend(children.get(p, []))
    return out


def vm_rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies summed over all CPUs, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user/nice
    return total - idle, total


def cpu_busy_percent(interval: float = 1.0) -> float:
    """Share of all CPUs' time spent busy over `interval` seconds."""
    busy0, total0 = _cpu_times()
    time.sleep(interval)
    busy1, total1 = _cpu_times()
    return 100.0 * (busy1 - busy0) / max(total1 - total0, 1)


def _proc_cpu_jiffies(pid: int) -> int:
    """utime + stime + cutime + cstime of pid (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat.rsplit(")", 1)[1].split()  # fields[0] is field 3 (state)
    return sum(int(x) for x in fields[11:15])


def cpu_snapshot(pid: int) -> str:
    """ "busy total ours" jiffies: all CPUs from /proc/stat, and pid's tree.

    Two snapshots around a wrk round give the CPU time spent by processes
    that are not ours (see foreign_cpu_percent). Reaped children (wrk) count
    in their parent's cutime/cstime.
    """
    ours = sum(_proc_cpu_jiffies(p) for p in process_tree(pid))
    busy, total = _cpu_times()
    return f"{busy} {total} {ours}"


def foreign_cpu_percent(before: str, after: str) -> float:
    """CPU used by other processes between two snapshots, in % of one CPU."""
    b0, t0, o0 = (int(x) for x in before.split())
    b1, t1, o1 = (int(x) for x in after.split())
    elapsed = (t1 - t0) / (os.cpu_count() or 1)
    return max(0.0, 100.0 * ((b1 - b0) - (o1 - o0)) / max(elapsed, 1.0))


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _fmt_rps(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.0f}"


def _fmt_ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f} ms"


def _fmt_ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def _read_tsv(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split("\t") for line in path.read_text().splitlines() if line.strip()]


@dataclass
class _Runs:
    """Per-round results, run status and RSS, as written by run.sh."""

    rps: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    p99: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    errs: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    foreign: dict[tuple[str, str], float] = field(default_factory=dict)
    status: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    rss: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    @classmethod
    def load(cls, results_tsv: Path, status_tsv: Path, rss_tsv: Path) -> _Runs:
        runs = cls()
        # results: server scenario round rps p99_ms non2xx socket_errors foreign_cpu_pct
        for server, scen, _rnd, r, p, n, s, f in _read_tsv(results_tsv):
            key = (server, scen)
            runs.rps.setdefault(key, []).append(float(r))
            runs.p99.setdefault(key, []).append(float(p))
            n0, s0 = runs.errs.get(key, (0, 0))
            runs.errs[key] = (n0 + int(n), s0 + int(s))
            runs.foreign[key] = max(runs.foreign.get(key, 0.0), float(f))
        # status: server scenario status note
        for row in _read_tsv(status_tsv):
            runs.status[(row[0], row[1])] = (row[2], row[3] if len(row) > 3 else "")
        # rss: server kib nprocs max_kib
        for row in _read_tsv(rss_tsv):
            runs.rss[row[0]] = (int(row[1]), int(row[2]), int(row[3]))
        return runs

    def med_rps(self, server: str, scen: str) -> float | None:
        return _median(self.rps.get((server, scen), []))

    def med_p99(self, server: str, scen: str) -> float | None:
        return _median(self.p99.get((server, scen), []))


def _errors_cell(
    runs: _Runs, servers: Sequence[str], scen: str, label: str, notes: dict[tuple[str, str, str], list[str]]
) -> str:
    parts: list[str] = []
    for server in servers:
        st, note = runs.status.get((server, scen), ("missing", ""))
        if st != "ok":
            parts.append(f"{server}: {st.upper()}")
            if note:
                notes.setdefault((server, st, note), []).append(label)
            continue
        n_bad, n_sock = runs.errs.get((server, scen), (0, 0))
        if n_bad or n_sock:
            parts.append(f"{server}: {n_bad + n_sock} (non-2xx {n_bad}, socket {n_sock})")
        else:
            parts.append(f"{server}: 0")
    return "; ".join(parts) if parts else "n/a"


def _main_table(
    runs: _Runs, servers: Sequence[str], notes: dict[tuple[str, str, str], list[str]]
) -> list[str]:
    peers = [s for s in servers if s not in ("squall", "uvicorn")]
    header = [
        "scenario",
        "squall req/s",
        "uvicorn req/s",
        "ratio squall/uvicorn",
        "squall p99",
        "uvicorn p99",
    ]
    for peer in peers:
        header += [f"{peer} req/s", f"{peer} p99", f"ratio squall/{peer}"]
    header.append("errors")
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 2) + ["---"]) + "|",
    ]
    for scen, label in SCENARIOS:
        row = [
            label,
            _fmt_rps(runs.med_rps("squall", scen)),
            _fmt_rps(runs.med_rps("uvicorn", scen)),
            _fmt_ratio(runs.med_rps("squall", scen), runs.med_rps("uvicorn", scen)),
            _fmt_ms(runs.med_p99("squall", scen)),
            _fmt_ms(runs.med_p99("uvicorn", scen)),
        ]
        for peer in peers:
            row += [
                _fmt_rps(runs.med_rps(peer, scen)),
                _fmt_ms(runs.med_p99(peer, scen)),
                _fmt_ratio(runs.med_rps("squall", scen), runs.med_rps(peer, scen)),
            ]
        row.append(_errors_cell(runs, servers, scen, label, notes))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _rss_line(runs: _Runs, servers: Sequence[str]) -> str:
    parts: list[str] = []
    for server in servers:
        if server in runs.rss:
            kib, nprocs, max_kib = runs.rss[server]
            procs = "" if nprocs == 1 else f" ({nprocs} processes summed, largest {max_kib / 1024:.1f} MiB)"
            parts.append(f"{server} {kib / 1024:.1f} MiB{procs}")
        else:
            parts.append(f"{server} n/a")
    return "RSS after the hello run (VmRSS): " + ", ".join(parts)


def _noise_lines(runs: _Runs, servers: Sequence[str]) -> list[str]:
    spread_parts: list[str] = []
    foreign_parts: list[str] = []
    for scen, label in SCENARIOS:
        spreads = [
            f"{server} {min(v):,.0f}-{max(v):,.0f}"
            for server in servers
            if (v := runs.rps.get((server, scen)))
        ]
        if spreads:
            spread_parts.append(f"{label}: " + ", ".join(spreads))
        loads = [
            f"{server} {runs.foreign[(server, scen)]:.0f}%"
            for server in servers
            if (server, scen) in runs.foreign
        ]
        if loads:
            foreign_parts.append(f"{label}: " + ", ".join(loads))
    out: list[str] = []
    if spread_parts:
        out += ["", "req/s range over rounds (min-max): " + "; ".join(spread_parts)]
    if foreign_parts:
        out += [
            "",
            "CPU used by other processes during the measured rounds (max per round, % of one core): "
            + "; ".join(foreign_parts),
        ]
    worst = max(runs.foreign.values(), default=0.0)
    if worst > FOREIGN_CPU_WARN:
        out += [
            "",
            f"**Warning: other processes used up to {worst:.0f}% of a core during the "
            "measured rounds; these numbers are skewed. Rerun on an idle machine.**",
        ]
    return out


def render_table(
    results_tsv: Path,
    status_tsv: Path,
    rss_tsv: Path,
    servers: Sequence[str],
    meta: str,
) -> str:
    runs = _Runs.load(results_tsv, status_tsv, rss_tsv)
    # (server, status, note) -> scenario labels, so a reason shared by every
    # scenario (e.g. a skipped server) is printed once.
    notes: dict[tuple[str, str, str], list[str]] = {}
    out = [
        *_main_table(runs, servers, notes),
        "",
        _rss_line(runs, servers),
        "",
        (
            "req/s and p99 are medians over rounds; errors are wrk's "
            "'Non-2xx or 3xx responses' plus 'Socket errors', summed over rounds."
        ),
        *_noise_lines(runs, servers),
    ]
    if notes:
        out += ["", "Notes:"]
        for (server, st, note), labels in notes.items():
            where = "all scenarios" if len(labels) == len(SCENARIOS) else ", ".join(labels)
            out.append(f"- {server} ({where}): {st}: {note}")
    if meta:
        out += ["", meta.rstrip("\n")]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("freeport")
    p_parse = sub.add_parser("parse")
    p_parse.add_argument("file", type=Path)
    p_tree = sub.add_parser("tree")
    p_tree.add_argument("pid", type=int)
    p_rss = sub.add_parser("rss")
    p_rss.add_argument("pid", type=int)
    sub.add_parser("cpubusy")
    p_snap = sub.add_parser("cpusnap")
    p_snap.add_argument("pid", type=int)
    p_foreign = sub.add_parser("cpuforeign")
    p_foreign.add_argument("before")
    p_foreign.add_argument("after")
    p_table = sub.add_parser("table")
    p_table.add_argument("--results", type=Path, required=True)
    p_table.add_argument("--status", type=Path, required=True)
    p_table.add_argument("--rss", type=Path, required=True)
    p_table.add_argument("--servers", required=True)
    p_table.add_argument("--meta", type=Path)
    args = parser.parse_args(argv)

    if args.cmd == "freeport":
        print(free_port())
    elif args.cmd == "parse":
        try:
            res = parse_wrk(args.file.read_text())
        except ValueError as exc:
            print(f"report.py: {args.file}: {exc}", file=sys.stderr)
            return 1
        print(f"{res.rps}\t{res.p99_ms}\t{res.non2xx}\t{res.socket_errors}")
    elif args.cmd == "tree":
        for pid in process_tree(args.pid):
            print(pid)
    elif args.cmd == "rss":
        rss = [vm_rss_kib(p) for p in process_tree(args.pid)]
        print(f"{sum(rss)}\t{len(rss)}\t{max(rss, default=0)}")
    elif args.cmd == "cpubusy":
        print(f"{cpu_busy_percent():.0f}")
    elif args.cmd == "cpusnap":
        print(cpu_snapshot(args.pid))
    elif args.cmd == "cpuforeign":
        print(f"{foreign_cpu_percent(args.before, args.after):.0f}")
    elif args.cmd == "table":
        meta = args.meta.read_text() if args.meta else ""
        sys.stdout.write(render_table(args.results, args.status, args.rss, args.servers.split(), meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
