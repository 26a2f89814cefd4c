"""Prometheus metrics: plain counters in each worker, merged by the supervisor, written as text.

How it works
------------
A worker counts into one ``Metrics`` object: integers in lists at slots computed from the request
(method, status class, protocol), the request duration histogram as a fixed array of bucket
counts per protocol, a few dicts for rare events (rejections, resets, GOAWAYs). No lock, no label
lookup beyond one small dict get for the method: the request path pays a handful of integer
additions. ``snapshot()`` copies them into a plain dict (picklable: the worker sends it to the
supervisor over the health-check pipe) together with the gauges the worker reads at that moment.

``merge`` adds snapshots up (counters and summed gauges), ``render`` writes the Prometheus text
exposition format (0.0.4) of a merged snapshot plus the per-worker gauges (RSS, CPU, loop lag) and
the supervisor's own figures (workers, restarts). The supervisor keeps the last snapshot of every
worker that exited in a running total, so counters never go backwards while it lives.
"""

from __future__ import annotations

import os
import resource
import socket
from collections.abc import Iterable
from typing import Any, Final

METHODS: Final = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "other")
_METHOD_INDEX: Final = {name: index for index, name in enumerate(METHODS[:-1])}
#: Status classes; index = status // 100 (0: no response was sent).
STATUS_CLASSES: Final = ("none", "1xx", "2xx", "3xx", "4xx", "5xx")
#: Protocols (slot indexes): an HTTP request's ``http_version`` picks one; websocket sessions use the last.
PROTOCOLS: Final = ("HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/3", "websocket")
PROTOCOL_INDEX: Final = {"1.0": 0, "1.1": 1, "2": 2, "3": 3}
WEBSOCKET: Final = 4
#: Upper bounds (seconds) of the request duration histogram buckets (then +Inf).
BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_NB: Final = 16  # len(BUCKETS) + 1
_NP: Final = 5  # len(PROTOCOLS)
_NC: Final = 6  # len(STATUS_CLASSES)
_OTHER: Final = 9  # the index of "other" in METHODS

#: Snapshot keys whose values add up across workers (ints, lists of ints/floats, or dicts of ints).
COUNTERS: Final = (
    "requests",
    "durations",
    "duration_sum",
    "received",
    "sent",
    "rejected",
    "ws_sessions",
    "ws_messages_in",
    "ws_messages_out",
    "h2_streams",
    "h2_resets",
    "h2_goaways",
)
#: Snapshot keys that are the worker's state now: summed over live workers only.
GAUGES: Final = ("in_flight", "connections", "ws_open")


class Metrics:
    """One worker's counters (see the module docstring). Every method is a few integer additions.
    (No ``__slots__``: compiled, the attributes are a fixed C struct anyway, and the names would be
    written twice; the snapshot keys are ``COUNTERS``.)"""

    def __init__(self) -> None:
        self.requests = [0] * (len(METHODS) * _NC * _NP)
        self.durations = [0] * (_NP * _NB)
        self.duration_sum = [0.0] * _NP
        self.received = 0
        self.sent = 0
        self.rejected: dict[str, int] = {}
        self.ws_sessions = 0
        self.ws_messages_in = 0
        self.ws_messages_out = 0
        self.h2_streams = 0
        self.h2_resets: dict[str, int] = {}  # "by:code"
        self.h2_goaways: dict[str, int] = {}  # error code name
        self.loop_lag = 0.0
        self.sum_http11 = 0.0  # duration_sum[1], kept apart (see request)

    def request(  # noqa: PLR0917 - called positionally once per request
        self, method: str, status: int, version: str, seconds: float, received: int, sent: int
    ) -> None:
        """An HTTP request is over (``status`` 0: no response head was sent). Compiled with the
        hot path: the common cases (GET, HTTP/1.1, a request under a millisecond) take the first
        branch of each choice."""
        m = 0 if method == "GET" else _METHOD_INDEX.get(method, _OTHER)
        p = 1 if version == "1.1" else PROTOCOL_INDEX.get(version, 1)
        self.requests[(m * _NC + status // 100) * _NP + p] += 1
        self.durations[p * _NB + _bucket(seconds)] += 1
        if p == 1:  # a native float attribute: no float object per request
            self.sum_http11 += seconds
        else:
            self.duration_sum[p] += seconds
        self.received += received
        self.sent += sent

    def websocket(self, status: int) -> None:
        """A websocket handshake was answered (101: a session opened)."""
        self.requests[(_METHOD_INDEX["GET"] * _NC + status // 100) * _NP + WEBSOCKET] += 1
        if status == 101:
            self.ws_sessions += 1

    def reject(self, reason: str) -> None:
        """A request was refused or cut: a status (``"413"``), or a timeout (``"header_timeout"``)."""
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def count(self, table: dict[str, int], key: str, n: int = 1) -> None:
        """Add ``n`` to ``table[key]`` (resets, GOAWAYs)."""
        if n:
            table[key] = table.get(key, 0) + n

    def http2_frames(self, sent: list[int], received: list[int], goaways: list[int]) -> None:
        """Add an HTTP/2 connection's RST_STREAM and GOAWAY counts (lists indexed by error code)."""
        add_frames(self.h2_resets, self.h2_goaways, sent, received, goaways)

    def snapshot(
        self, open_h2: Iterable[tuple[list[int], list[int], list[int]]] = (), **gauges: Any
    ) -> dict[str, Any]:
        """The counters now (plus the frames counted by the HTTP/2 connections still open,
        ``open_h2``), ``gauges``, and this process's RSS, CPU time, loop lag and pid."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        snap: dict[str, Any] = {}
        for key in COUNTERS:
            value = getattr(self, key)
            snap[key] = value.copy() if isinstance(value, list | dict) else value
        snap["duration_sum"][1] += self.sum_http11
        for frames in open_h2:
            add_frames(snap["h2_resets"], snap["h2_goaways"], *frames)
        snap.update(gauges)
        snap["pid"] = os.getpid()
        snap["rss"] = _rss_bytes()
        snap["cpu"] = usage.ru_utime + usage.ru_stime
        snap["loop_lag"] = self.loop_lag
        return snap


def _bucket(seconds: float) -> int:
    """The index of the first of ``BUCKETS`` at least ``seconds`` (``len(BUCKETS)``: +Inf). Written out
    as literals: compiled, each test is a native comparison (a test checks it matches BUCKETS)."""
    if seconds <= 0.05:
        if seconds <= 0.001:
            return 0
        if seconds <= 0.0025:
            return 1
        if seconds <= 0.005:
            return 2
        if seconds <= 0.01:
            return 3
        if seconds <= 0.025:
            return 4
        return 5
    if seconds <= 0.1:
        return 6
    if seconds <= 0.25:
        return 7
    if seconds <= 0.5:
        return 8
    if seconds <= 1.0:
        return 9
    if seconds <= 2.5:
        return 10
    if seconds <= 5.0:
        return 11
    if seconds <= 10.0:
        return 12
    if seconds <= 30.0:
        return 13
    if seconds <= 60.0:
        return 14
    return 15


#: HTTP/2 error code names (RFC 9113 §7), by code; the last one stands for any higher code.
ERROR_NAMES: Final = (
    "NO_ERROR",
    "PROTOCOL_ERROR",
    "INTERNAL_ERROR",
    "FLOW_CONTROL_ERROR",
    "SETTINGS_TIMEOUT",
    "STREAM_CLOSED",
    "FRAME_SIZE_ERROR",
    "REFUSED_STREAM",
    "CANCEL",
    "COMPRESSION_ERROR",
    "CONNECT_ERROR",
    "ENHANCE_YOUR_CALM",
    "INADEQUATE_SECURITY",
    "HTTP_1_1_REQUIRED",
    "unknown",
)


def add_frames(
    resets: dict[str, int], goaways: dict[str, int], sent: list[int], received: list[int], goaway: list[int]
) -> None:
    """Add per-error-code frame counts into the ``by:code`` reset table and the GOAWAY table."""
    for code, n in enumerate(sent):
        if n:
            key = "server:" + ERROR_NAMES[min(code, len(ERROR_NAMES) - 1)]
            resets[key] = resets.get(key, 0) + n
    for code, n in enumerate(received):
        if n:
            key = "client:" + ERROR_NAMES[min(code, len(ERROR_NAMES) - 1)]
            resets[key] = resets.get(key, 0) + n
    for code, n in enumerate(goaway):
        if n:
            key = ERROR_NAMES[min(code, len(ERROR_NAMES) - 1)]
            goaways[key] = goaways.get(key, 0) + n


_PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def add(total: dict[str, Any], snap: dict[str, Any], keys: Iterable[str]) -> None:
    """Add ``snap``'s ``keys`` into ``total`` (ints, lists element-wise, dicts key-wise)."""
    for key in keys:
        value = snap.get(key)
        if value is None:
            continue
        have = total.get(key)
        if have is None:
            total[key] = value.copy() if isinstance(value, list | dict) else value
        elif isinstance(value, list):
            total[key] = [a + b for a, b in zip(have, value, strict=True)]
        elif isinstance(value, dict):
            merged = dict(have)
            for name, n in value.items():
                merged[name] = merged.get(name, 0) + n
            total[key] = merged
        else:
            total[key] = have + value


def merge(live: Iterable[dict[str, Any]], retired: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole server: ``retired`` (exited workers' counters) plus every live worker's snapshot."""
    total: dict[str, Any] = {}
    if retired:
        add(total, retired, COUNTERS)
    for snap in live:
        add(total, snap, COUNTERS + GAUGES)
    return total


# ---------------------------------------------------------------------- exposition


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help: str) -> None:
        self.lines.append(f"# HELP {name} {help}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        text = ""
        if labels:
            text = "{" + ",".join(f'{k}="{_label(v)}"' for k, v in labels.items()) + "}"
        self.lines.append(f"{name}{text} {_number(value)}")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def render(
    total: dict[str, Any],
    workers: list[dict[str, Any]],
    supervisor: dict[str, Any] | None = None,
) -> str:
    """The Prometheus text exposition of ``total`` (a merged snapshot), the per-worker gauges and,
    under a supervisor, ``supervisor``'s ``workers`` (alive) and ``restarts`` (by cause)."""
    out = _Writer()
    _requests(out, total)
    _bytes_and_rejections(out, total)
    _connections(out, total)
    _http2(out, total)
    _processes(out, workers, supervisor)
    return "\n".join(out.lines) + "\n"


def _requests(out: _Writer, total: dict[str, Any]) -> None:
    out.family(
        "squall_http_requests_total", "counter", "Requests served, by method, status class and protocol."
    )
    requests = total.get("requests") or [0] * (len(METHODS) * _NC * _NP)
    for m, method in enumerate(METHODS):
        for c, status_class in enumerate(STATUS_CLASSES):
            for p, protocol in enumerate(PROTOCOLS):
                n = requests[(m * _NC + c) * _NP + p]
                if n:
                    labels = {"method": method, "status_class": status_class, "protocol": protocol}
                    out.sample("squall_http_requests_total", n, labels)
    out.family(
        "squall_http_request_duration_seconds",
        "histogram",
        "Time from the request head to the end of the response (or of the request), by protocol.",
    )
    durations = total.get("durations") or [0] * (_NP * _NB)
    sums = total.get("duration_sum") or [0.0] * _NP
    for p, protocol in enumerate(PROTOCOLS[:WEBSOCKET]):
        running = 0
        for b in range(_NB):
            running += durations[p * _NB + b]
            bound = "+Inf" if b == len(BUCKETS) else repr(BUCKETS[b])
            out.sample(
                "squall_http_request_duration_seconds_bucket", running, {"protocol": protocol, "le": bound}
            )
        out.sample("squall_http_request_duration_seconds_sum", float(sums[p]), {"protocol": protocol})
        out.sample("squall_http_request_duration_seconds_count", running, {"protocol": protocol})
    out.family("squall_http_requests_in_flight", "gauge", "Requests (and websocket sessions) being served.")
    out.sample("squall_http_requests_in_flight", total.get("in_flight", 0))


def _bytes_and_rejections(out: _Writer, total: dict[str, Any]) -> None:
    out.family("squall_http_request_body_bytes_total", "counter", "Request body bytes received.")
    out.sample("squall_http_request_body_bytes_total", total.get("received", 0))
    out.family("squall_http_response_body_bytes_total", "counter", "Response body bytes sent.")
    out.sample("squall_http_response_body_bytes_total", total.get("sent", 0))
    out.family(
        "squall_http_rejected_total",
        "counter",
        "Requests refused or cut by squall, by reason (a status code, or which timeout).",
    )
    for reason, n in sorted((total.get("rejected") or {}).items()):
        out.sample("squall_http_rejected_total", n, {"reason": reason})


def _connections(out: _Writer, total: dict[str, Any]) -> None:
    out.family("squall_connections_open", "gauge", "Open client connections, by protocol.")
    for protocol, n in sorted((total.get("connections") or {}).items()):
        out.sample("squall_connections_open", n, {"protocol": protocol})
    out.family("squall_websocket_sessions_open", "gauge", "Websocket sessions open (HTTP/1.1 and HTTP/2).")
    out.sample("squall_websocket_sessions_open", total.get("ws_open", 0))
    out.family("squall_websocket_sessions_total", "counter", "Websocket sessions accepted.")
    out.sample("squall_websocket_sessions_total", total.get("ws_sessions", 0))
    out.family("squall_websocket_messages_total", "counter", "Websocket messages, by direction.")
    out.sample("squall_websocket_messages_total", total.get("ws_messages_in", 0), {"direction": "received"})
    out.sample("squall_websocket_messages_total", total.get("ws_messages_out", 0), {"direction": "sent"})


def _http2(out: _Writer, total: dict[str, Any]) -> None:
    out.family("squall_http2_streams_total", "counter", "HTTP/2 request streams opened by clients.")
    out.sample("squall_http2_streams_total", total.get("h2_streams", 0))
    out.family("squall_http2_resets_total", "counter", "HTTP/2 RST_STREAM frames, by sender and error code.")
    for key, n in sorted((total.get("h2_resets") or {}).items()):
        by, _, code = key.partition(":")
        out.sample("squall_http2_resets_total", n, {"by": by, "code": code})
    out.family("squall_http2_goaways_total", "counter", "HTTP/2 GOAWAY frames sent, by error code.")
    for code, n in sorted((total.get("h2_goaways") or {}).items()):
        out.sample("squall_http2_goaways_total", n, {"code": code})


def _processes(out: _Writer, workers: list[dict[str, Any]], supervisor: dict[str, Any] | None) -> None:
    out.family("squall_workers", "gauge", "Worker processes alive.")
    out.sample("squall_workers", len(workers) if supervisor is None else supervisor.get("workers", 0))
    out.family("squall_worker_restarts_total", "counter", "Workers replaced, by cause.")
    for cause in RESTART_CAUSES:
        out.sample(
            "squall_worker_restarts_total",
            (supervisor or {}).get("restarts", {}).get(cause, 0),
            {"cause": cause},
        )
    families = (
        ("squall_event_loop_lag_seconds", "gauge", "Lateness of the worker's last 0.5 s timer.", "loop_lag"),
        ("squall_process_resident_memory_bytes", "gauge", "Resident set size of the worker.", "rss"),
        ("squall_process_cpu_seconds_total", "counter", "CPU time (user + system) of the worker.", "cpu"),
    )
    for name, kind, help, key in families:
        out.family(name, kind, help)
        for snap in workers:
            out.sample(name, snap.get(key, 0), {"worker": str(snap.get("pid", 0))})


#: Why the supervisor replaced a worker (``squall_worker_restarts_total{cause}``).
RESTART_CAUSES: Final = ("crash", "health_check", "max_requests", "max_memory", "reload")


# ---------------------------------------------------------------------- the metrics listener


def http_response(head: bytes, body: str) -> bytes:
    """The HTTP/1.0 answer to a request ``head`` read by a metrics listener: the exposition for
    ``GET /metrics`` (or ``/``), 404 for another path, 405 for another method."""
    line = head.split(b"\r\n", 1)[0].split(b" ")
    if len(line) != 3:
        return _plain(400, b"Bad Request")
    method, target = line[0], line[1].split(b"?", 1)[0]
    if method not in (b"GET", b"HEAD"):
        return _plain(405, b"Method Not Allowed")
    if target not in (b"/metrics", b"/"):
        return _plain(404, b"Not Found")
    data = body.encode("utf-8")
    head_out = (
        b"HTTP/1.0 200 OK\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n" % len(data)
    )
    return head_out if method == b"HEAD" else head_out + data


def _plain(status: int, text: bytes) -> bytes:
    body = text + b"\n"
    return (
        b"HTTP/1.0 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
        % (
            status,
            text,
            len(body),
            body,
        )
    )


#: Longest request head a metrics listener reads.
MAX_HEAD: Final = 8192


def bind_metrics(host: str, port: int) -> socket.socket:
    """The metrics listener's socket (``--metrics-host``/``--metrics-port``); raises OSError."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(16)
    except OSError:
        sock.close()
        raise
    return sock
