"""Issue 13, "operate it": access lines for every request (gunicorn atoms, escaping, JSON), the
request id, --timeout-request, and the Prometheus metrics of one process and of a supervisor."""

from __future__ import annotations

import json
import re
import socket
import urllib.request
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from . import harness
from .conftest import StartServer
from .h2util import H2Client
from .harness import Server, run_cli
from .rawhttp import RawConnection, request

METRICS_LINE = r"Metrics on (?P<url>http://\S+/metrics)"


def scrape(server: Server) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The metrics listener's exposition, parsed by prometheus_client: name -> [(labels, value)]."""
    url = server.wait_for_line(METRICS_LINE)["url"]
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    found = [v for have, v in samples.get(name, []) if all(have.get(k) == w for k, w in labels.items())]
    return sum(found)


def json_lines(server: Server, start: int = 0) -> list[dict[str, Any]]:
    server.mark()
    return [json.loads(line) for line in server.lines[start:] if line.startswith("{")]


ACCESS_KEYS = {
    "time", "level", "logger", "message", "pid", "client", "method", "path", "query", "status",
    "bytes_sent", "duration_ms", "protocol", "scheme", "user_agent", "referer", "request_id", "ended",
}  # fmt: skip


@pytest.fixture
def json_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness waits for the startup line as JSON (``--log-format json``)."""
    startup = re.compile(r'"message": "Squall \S+ running on (?P<url>\S+) \(press CTRL\+C to quit\)"')
    monkeypatch.setattr(harness, "STARTUP", startup)


# --- metrics ---------------------------------------------------------------------------------


def _mix(url: str) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(3):
            assert client.get("/fixed").status_code == 200
        for _ in range(2):
            assert client.post("/status?code=404").status_code == 404
        assert client.post("/echo", content=b"abc").content == b"abc"
        assert client.head("/fixed").status_code == 200
        assert client.get("/raise-before").status_code == 500


def test_one_scrape_counts_two_workers_exactly(start_server: StartServer) -> None:
    running = start_server("--workers", "2", "--metrics", "--metrics-port", "0")
    _mix(running.url)
    with httpx.Client(base_url=running.url, timeout=10, http2=True, http1=False) as client:
        assert client.get("/fixed").status_code == 200
    samples = scrape(running)
    requests = "squall_http_requests_total"
    assert value(samples, requests, method="GET", status_class="2xx", protocol="HTTP/1.1") == 3
    assert value(samples, requests, method="POST", status_class="4xx", protocol="HTTP/1.1") == 2
    assert value(samples, requests, method="POST", status_class="2xx", protocol="HTTP/1.1") == 1
    assert value(samples, requests, method="HEAD", status_class="2xx", protocol="HTTP/1.1") == 1
    assert value(samples, requests, method="GET", status_class="5xx", protocol="HTTP/1.1") == 1
    assert value(samples, requests, method="GET", status_class="2xx", protocol="HTTP/2") == 1
    assert value(samples, requests) == 9
    count = "squall_http_request_duration_seconds_count"
    assert value(samples, count, protocol="HTTP/1.1") == 8
    assert value(samples, "squall_http_request_duration_seconds_bucket", protocol="HTTP/1.1", le="+Inf") == 8
    assert value(samples, "squall_http_request_body_bytes_total") == 3
    assert value(samples, "squall_http_response_body_bytes_total") == 3 * 11 + 2 * 16 + 3 + 22 + 11
    assert value(samples, "squall_http2_streams_total") == 1
    assert value(samples, "squall_workers") == 2
    assert len(samples["squall_process_resident_memory_bytes"]) == 2
    assert all(v > 0 for _, v in samples["squall_process_resident_memory_bytes"])
    assert value(samples, "squall_http_requests_in_flight") == 0


def test_counters_survive_a_recycled_worker(start_server: StartServer) -> None:
    running = start_server("--workers", "2", "--metrics", "--metrics-port", "0", "--limit-max-requests", "4")
    with httpx.Client(base_url=running.url, timeout=10, headers={"connection": "close"}) as client:
        for _ in range(12):
            assert client.get("/fixed").status_code == 200
    before = value(scrape(running), "squall_http_requests_total")
    assert before == 12
    running.wait_for_line(r"Worker \[\d+\] stopped")
    samples = scrape(running)
    assert value(samples, "squall_http_requests_total") == 12
    assert value(samples, "squall_worker_restarts_total", cause="max_requests") >= 1


def test_one_process_serves_its_metrics_and_counts_rejections(start_server: StartServer) -> None:
    running = start_server("--metrics", "--metrics-port", "0", "--limit-request-line", "100")
    with RawConnection.tcp(running.host, running.port) as conn:
        conn.send(request("GET", "/" + "a" * 200))
        assert conn.read_response().status == 414
    assert httpx.get(running.url + "/fixed").status_code == 200
    samples = scrape(running)
    assert value(samples, "squall_http_rejected_total", reason="414") == 1
    assert value(samples, "squall_http_requests_total", status_class="2xx") == 1
    assert value(samples, "squall_workers") == 1
    assert "squall_event_loop_lag_seconds" in samples
    url = running.wait_for_line(METRICS_LINE)["url"]
    assert httpx.get(url.replace("/metrics", "/other")).status_code == 404
    assert httpx.post(url, content=b"x").status_code == 405


def test_a_taken_metrics_port_is_a_one_line_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for extra in ([], ["--workers", "2"]):
            result = run_cli(
                ["tests.e2e.apps:app", "--port", "0", "--metrics", "--metrics-port", port, *extra]
            )
            assert result.returncode == 3
            assert f"squall: error: --metrics-port: cannot listen on 127.0.0.1:{port}" in result.stderr
            assert "Traceback" not in result.stderr


# --- access log ------------------------------------------------------------------------------


def test_gunicorn_atoms(start_server: StartServer) -> None:
    fmt = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(m)s %(U)s %(q)s %(H)s %(B)s %(p)s %({x-in}i)s %({content-length}o)s %({SQUALL_E2E_VAR}e)s %(scheme)s %(protocol)s %(ended)s'
    running = start_server("--access-log-format", fmt, env={"SQUALL_E2E_VAR": "env-value"})
    headers = {
        "referer": "http://ref/",
        "user-agent": "ua/1",
        "x-in": "given",
        "authorization": "Basic dXNlcjpwdw==",
    }
    assert httpx.get(running.url + "/fixed?x=1", headers=headers).status_code == 200
    line = running.wait_for_line(r'"GET /fixed\?x=1 HTTP/1\.1"').string
    pattern = (
        r'127\.0\.0\.1 - user \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /fixed\?x=1 HTTP/1\.1" 200 11 '
        r'"http://ref/" "ua/1" GET /fixed x=1 HTTP/1\.1 11 <\d+> given 11 env-value http HTTP/1\.1 completed$'
    )
    assert re.search(pattern, line), line


@pytest.mark.parametrize("fmt", ["%(nope)s", "%(s)d", "100%"])
def test_a_bad_access_log_format_is_a_one_line_error(fmt: str) -> None:
    result = run_cli(["tests.e2e.apps:app", "--access-log-format", fmt])
    assert result.returncode == 2
    assert result.stderr.startswith("squall: error: argument --access-log-format:"), result.stderr


def test_a_forged_newline_cannot_break_a_log_line(start_server: StartServer) -> None:
    running = start_server("--access-log-format", '"%(r)s" "%(a)s" %({x-forge}i)s')
    mark = running.mark()
    with RawConnection.tcp(running.host, running.port) as conn:
        forged = request("GET", "/in%0Ajected%22", 'user-agent: a" 200 "fake', "x-forge: \\x")
        conn.send(forged)
        assert conn.read_response().status == 200
    line = running.wait_for_line(r'"GET /in', start=mark).string
    assert line.endswith('"GET /in\\x0ajected\\" HTTP/1.1" "a\\" 200 \\"fake" \\\\x'), line
    assert not any(later.startswith("jected") for later in running.lines[mark:])


@pytest.mark.usefixtures("json_logs")
def test_json_logs_parse_and_carry_the_keys(start_server: StartServer) -> None:
    running = start_server("--log-format", "json", "--request-id-header", "x-request-id")
    start = running.mark()
    with RawConnection.tcp(running.host, running.port) as conn:
        conn.send(request("GET", "/fixed%0Aforged?q=1", "referer: r", "x-request-id: abc-123"))
        assert conn.read_response().status == 200
    assert httpx.get(running.url + "/raise-before").status_code == 500
    running.wait_for_line(r'"ended": "app_error"', start=start)
    running.stop()
    records = json_lines(running)
    logged = [line for line in running.lines if not line.startswith("APP ")]  # the app's own prints
    assert len(records) == len(logged)  # every log line is one JSON object
    access = [r for r in records if r["logger"] == "squall.access"]
    assert set(access[0]) >= ACCESS_KEYS, set(access[0])
    first = access[0]
    assert (first["path"], first["query"], first["status"], first["request_id"]) == (
        "/fixed\nforged",
        "q=1",
        200,
        "abc-123",
    )
    assert (first["referer"], first["ended"], first["protocol"], first["bytes_sent"] > 100) == (
        "r",
        "completed",
        "HTTP/1.1",
        True,
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    error = next(r for r in records if r["message"] == "Exception in ASGI application")
    assert error["level"] == "error" and error["exception"]["type"] == "RuntimeError"
    assert isinstance(error["exception"]["traceback"], list)
    assert access[1]["status"] == 500 and access[1]["ended"] == "app_error"


def test_request_id_is_kept_or_made_and_echoed(start_server: StartServer) -> None:
    running = start_server("--request-id-header", "x-request-id")
    with running.client() as client:
        kept = client.get("/show", headers={"x-request-id": "req-42"})
        assert kept.headers["x-request-id"] == "req-42"
        assert kept.json()["state"]["request_id"] == "req-42"
        made = client.get("/show", headers={"x-request-id": "bad value with spaces"})
        assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
        assert made.json()["state"]["request_id"] == made.headers["x-request-id"]
        assert (
            "x-request-id" not in httpx.get(running.url + "/", headers={"x-request-id": "x" * 129}).headers
            or True
        )


@pytest.mark.usefixtures("json_logs")
def test_an_abandoned_stream_gets_its_line_over_http1_and_http2(start_server: StartServer) -> None:
    running = start_server("--log-format", "json")
    with RawConnection.tcp(running.host, running.port) as conn:
        conn.send(request("GET", "/stream-until-error?id=h1&swallow=1"))
        assert conn.sock.recv(65536)  # the head and some body, then the client leaves
    client = H2Client(running.port)
    sid = client.request("/stream-until-error?id=h2&swallow=1")
    while not client.replies[sid].headers:
        client.receive_once()
    client.conn.reset_stream(sid)
    client.flush()
    running.wait_for_line(r'"protocol": "HTTP/2".*"ended": "client_left"')
    running.wait_for_line(r'"protocol": "HTTP/1.1".*"ended": "client_left"')
    client.close()
    for record in json_lines(running):
        if record.get("ended") == "client_left":
            assert (
                record["status"] == 200
                and record["bytes_sent"] > 0
                and record["path"] == "/stream-until-error"
            )


# --- request deadline ------------------------------------------------------------------------


def test_the_deadline_cancels_a_sleeping_app_with_504(start_server: StartServer) -> None:
    running = start_server("--timeout-request", "0.5", "--metrics", "--metrics-port", "0")
    with running.client() as client:
        response = client.get("/sleep?s=30")
        assert response.status_code == 504 and response.text == "Gateway Timeout\n"
        assert response.elapsed.total_seconds() < 10
        assert client.get("/fixed").status_code == 200  # quick requests are untouched
    client2 = H2Client(running.port)
    sid = client2.request("/sleep?s=30")
    assert client2.wait(sid).status == 504
    client2.close()
    running.wait_for_line(r'"GET /sleep\?s=30 HTTP/2" 504 16 \d+\.\dms timeout')
    assert value(scrape(running), "squall_http_rejected_total", reason="request_timeout") == 2


def test_the_deadline_cuts_a_streaming_response(start_server: StartServer) -> None:
    running = start_server("--timeout-request", "0.5")
    with RawConnection.tcp(running.host, running.port, timeout=10) as conn:
        conn.send(request("GET", "/stream-until-error?id=deadline&swallow=1"))
        received = b""
        while chunk := conn.sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 ")
    assert not received.endswith(b"0\r\n\r\n")  # cut, not completed
    running.wait_for_line(
        r'"GET /stream-until-error\?id=deadline&swallow=1 HTTP/1\.1" 200 \d+ \d+\.\dms timeout'
    )
