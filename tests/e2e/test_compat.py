"""Switching from uvicorn by changing one word: its command lines, logs, env and exit codes.

Each test runs a real squall with a uvicorn command line (``squall`` in place of ``uvicorn``) and
checks what the app and the operator see. The app is written into the test's directory.
"""

from __future__ import annotations

import collections
import json
import re
import ssl
import textwrap
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from .conftest import StartServer
from .h2util import Certs, certs
from .harness import run_cli

__all__ = ["certs"]

APP = """
import asyncio, contextvars, json, logging, os

IMPORTED = contextvars.ContextVar("imported", default="unset")
IMPORTED.set("import")
LIFESPAN = contextvars.ContextVar("lifespan", default="unset")


def new_loop():
    loop = asyncio.new_event_loop()
    loop.made_by_compatapp = True
    return loop


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                LIFESPAN.set("lifespan")
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": "echo " + message["text"]})
        await send({"type": "websocket.close"})
        return
    if scope["path"] == "/log":
        logging.getLogger("uvicorn.error").warning("app says hi through uvicorn.error")
    loop = asyncio.get_running_loop()
    data = {
        "pid": os.getpid(),
        "env": os.environ.get("COMPAT_VALUE"),
        "imported": IMPORTED.get(),
        "lifespan": LIFESPAN.get(),
        "custom_loop": getattr(loop, "made_by_compatapp", False),
    }
    body = json.dumps(data).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
"""

UVICORN_YAML = """
version: 1
disable_existing_loggers: false
formatters:
  default:
    "()": uvicorn.logging.DefaultFormatter
    fmt: "%(levelprefix)s %(message)s"
    use_colors: false
  access:
    "()": {access}
    fmt: 'ACCESS %(client_addr)s "%(request_line)s" %(status_code)s'
    use_colors: false
handlers:
  default:
    formatter: default
    class: logging.StreamHandler
    stream: ext://sys.stderr
  access:
    formatter: access
    class: logging.StreamHandler
    stream: ext://sys.stdout
loggers:
  {prefix}.error:
    handlers: [default]
    level: INFO
    propagate: false
  {prefix}.access:
    handlers: [access]
    level: INFO
    propagate: false
"""

INI = """
[loggers]
keys=root,access

[handlers]
keys=access

[formatters]
keys=access

[logger_root]
level=WARNING
handlers=

[logger_access]
level=INFO
handlers=access
qualname=uvicorn.access
propagate=0

[handler_access]
class=StreamHandler
formatter=access
args=(sys.stdout,)

[formatter_access]
format=INI %(client_addr)s %(request_line)s %(status_code)s
class=uvicorn.logging.AccessFormatter
"""


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "compatapp.py").write_text(textwrap.dedent(APP))
    return tmp_path


def serve(start_server: StartServer, app_dir: Path, *args: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return start_server("--app-dir", str(app_dir), *args, app="compatapp:app", **kwargs)


def get(url: str, path: str = "/", **kwargs: object) -> dict[str, object]:
    response = httpx.get(url + path, timeout=20, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


# --- logs ----------------------------------------------------------------------------------------


def test_uvicorns_startup_facts_on_stderr_access_lines_on_stdout(
    start_server: StartServer, app_dir: Path
) -> None:
    server = serve(start_server, app_dir)
    get(server.url, "/fixed?x=1")
    assert server.stop() == 0
    pid = server.pid
    errors = "\n".join(server.stderr_lines)
    for fact in (
        f"INFO Started server process [{pid}]",
        "INFO Waiting for application startup.",
        "INFO Application startup complete.",
        "running on http://127.0.0.1:",
        "INFO Waiting for application shutdown.",
        "INFO Application shutdown complete.",
        f"INFO Finished server process [{pid}]",
    ):
        assert fact in errors
    assert [line for line in server.stdout_lines if '"GET /fixed?x=1 HTTP/1.1" 200 ' in line]
    assert not [line for line in server.stderr_lines if "GET /fixed" in line]


def test_an_app_logging_to_uvicorn_error_reaches_squalls_error_log(
    start_server: StartServer, app_dir: Path
) -> None:
    server = serve(start_server, app_dir)
    get(server.url, "/log")
    line = server.wait_for_line("app says hi through uvicorn.error").string
    assert " WARNING " in line and line in server.stderr_lines


@pytest.mark.parametrize(
    "formatter", ["uvicorn.logging.AccessFormatter", "squall.logs.AccessFormatter"], ids=["uvicorn", "squall"]
)
def test_log_config_yaml_copied_from_uvicorn_changes_the_access_format(
    start_server: StartServer, app_dir: Path, formatter: str
) -> None:
    config = app_dir / "log.yaml"
    config.write_text(UVICORN_YAML.format(access=formatter, prefix="uvicorn"))
    server = serve(start_server, app_dir, "--log-config", str(config))
    get(server.url, "/fixed")
    get(server.url, "/fixed")
    pattern = r'^ACCESS 127\.0\.0\.1:\d+ "GET /fixed HTTP/1\.1" 200 OK$'
    first = server.wait_for_line(pattern).string
    server.wait_for_line(pattern, start=server.lines.index(first) + 1)  # every request: no logging error
    assert first in server.stdout_lines
    assert not any("Logging error" in x or "Traceback" in x for x in server.lines)
    assert any(x.startswith("INFO:     Squall ") for x in server.stderr_lines)  # uvicorn's error format
    note = server.wait_for_line(r"--log-config .* configures uvicorn\.access, uvicorn\.error").string
    assert "squall.error and squall.access" in note


def test_log_config_json_naming_squalls_loggers(start_server: StartServer, app_dir: Path) -> None:
    config = app_dir / "log.json"
    spec = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "access": {"()": "squall.logs.AccessFormatter", "fmt": "J %(method)s %(path)s %(status)d"}
        },
        "handlers": {
            "out": {"class": "logging.StreamHandler", "formatter": "access", "stream": "ext://sys.stdout"}
        },
        "loggers": {"squall.access": {"handlers": ["out"], "level": "INFO", "propagate": False}},
    }
    config.write_text(json.dumps(spec))
    server = serve(start_server, app_dir, "--log-config", str(config))
    get(server.url, "/x?y=1")
    assert server.wait_for_line(r"^J GET /x\?y=1 200$").string in server.stdout_lines
    assert not any("configures uvicorn" in x for x in server.lines)


def test_log_config_ini_file_config(start_server: StartServer, app_dir: Path) -> None:
    config = app_dir / "log.ini"
    config.write_text(INI)
    server = serve(start_server, app_dir, "--log-config", str(config))
    get(server.url, "/ini")
    assert (
        server.wait_for_line(r"^INI 127\.0\.0\.1:\d+ GET /ini HTTP/1\.1 200 OK$").string
        in server.stdout_lines
    )


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("version: [1\n", "not valid YAML"),
        ("- a list\n", "must hold a mapping"),
        ("version: 7\n", "cannot apply"),
    ],
    ids=["syntax", "not-a-mapping", "bad-config"],
)
def test_unusable_log_config_is_one_line_exit_2(app_dir: Path, content: str, named: str) -> None:
    config = app_dir / "log.yaml"
    config.write_text(content)
    result = run_cli(["tests.e2e.apps:app", "--port", "0", "--log-config", str(config)])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--log-config" in lines[0] and named in lines[0], result.stderr


# --- environment ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [[], ["--workers", "2"]], ids=["one-process", "workers"])
def test_env_file_is_loaded_before_the_app(start_server: StartServer, app_dir: Path, mode: list[str]) -> None:
    (app_dir / ".env").write_text('# settings\nexport COMPAT_VALUE="from dotenv"\n')
    server = serve(start_server, app_dir, "--env-file", str(app_dir / ".env"), *mode)
    assert get(server.url)["env"] == "from dotenv"


def test_web_concurrency_sets_the_workers(start_server: StartServer, app_dir: Path) -> None:
    server = serve(start_server, app_dir, env={"WEB_CONCURRENCY": "2"})
    server.wait_for_line(r"Supervisor \[\d+\]: 2 worker\(s\) ready")


def test_uvicorn_variables_and_meaningless_options_get_one_warning_each(
    start_server: StartServer, app_dir: Path
) -> None:
    server = serve(
        start_server,
        app_dir,
        "--timeout-notify",
        "30",
        "--h11-max-incomplete-event-size",
        "1000",
        env={"UVICORN_PORT": "9", "UVICORN_WORKERS": "3"},
    )
    warnings = [line for line in server.stderr_lines if " WARNING " in line]
    assert len(warnings) == 3, warnings
    assert any(
        "UVICORN_PORT, UVICORN_WORKERS set" in w and "SQUALL_PORT, SQUALL_WORKERS" in w for w in warnings
    )
    assert any("--timeout-notify is accepted for compatibility and has no effect" in w for w in warnings)
    assert any("--h11-max-incomplete-event-size" in w and "--limit-request-head" in w for w in warnings)


# --- the done-when command lines -----------------------------------------------------------------


def test_workers_with_uvicorns_request_limit_and_jitter(start_server: StartServer, app_dir: Path) -> None:
    server = serve(
        start_server,
        app_dir,
        "--workers",
        "4",
        "--limit-max-requests",
        "1000",
        "--limit-max-requests-jitter",
        "100",
    )
    server.wait_for_line(r"Supervisor \[\d+\]: 4 worker\(s\) ready")
    assert get(server.url)["env"] is None


def test_http_httptools_ws_websockets(start_server: StartServer, app_dir: Path) -> None:
    server = serve(start_server, app_dir, "--http", "httptools", "--ws", "websockets", "--log-level", "debug")
    assert get(server.url)["lifespan"] == "unset"
    with connect(server.url.replace("http://", "ws://") + "/ws") as websocket:
        websocket.send("hi")
        assert websocket.recv(timeout=10) == "echo hi"
    server.wait_for_line(r"DEBUG --http httptools: squall serves HTTP/1\.1 with httptools")
    server.wait_for_line(r"DEBUG --ws websockets: squall serves WebSockets with the websockets package")
    server.wait_for_line(r'"WebSocket /ws HTTP/1\.1" 101 ')


def test_ssl_version_17_and_5(start_server: StartServer, app_dir: Path, certs: Certs) -> None:
    server = serve(start_server, app_dir, *certs.args("--ssl-version", "17"))
    assert get(server.url, verify=certs.ssl_context())["env"] is None
    only_12 = serve(start_server, app_dir, *certs.args("--ssl-version", "5"))
    with httpx.Client(base_url=only_12.url, verify=certs.ssl_context()) as client:
        assert client.get("/scope").status_code == 200
    tls13 = certs.ssl_context()
    tls13.minimum_version = ssl.TLSVersion.TLSv1_3
    with pytest.raises((httpx.ConnectError, ssl.SSLError)), httpx.Client(verify=tls13) as client:
        client.get(only_12.url)


def test_insecure_ssl_version_is_refused(certs: Certs) -> None:
    result = run_cli(["tests.e2e.apps:app", *certs.args("--ssl-version", "3")])
    assert result.returncode == 2
    assert "--ssl-version" in result.stderr and "17" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# --- event loop and context ----------------------------------------------------------------------


def test_loop_none_and_an_import_string(start_server: StartServer, app_dir: Path) -> None:
    assert get(serve(start_server, app_dir, "--loop", "none").url)["custom_loop"] is False
    assert get(serve(start_server, app_dir, "--loop", "compatapp:new_loop").url)["custom_loop"] is True


def test_unimportable_loop_exits_3_with_one_line(app_dir: Path) -> None:
    result = run_cli(["compatapp:app", "--app-dir", str(app_dir), "--port", "0", "--loop", "nowhere:loop"])
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--loop" in lines[0] and "nowhere" in lines[0], result.stderr


def test_reset_contextvars(start_server: StartServer, app_dir: Path) -> None:
    plain = get(serve(start_server, app_dir).url)
    assert (plain["imported"], plain["lifespan"]) == ("import", "unset")
    reset = get(serve(start_server, app_dir, "--reset-contextvars").url)
    assert (reset["imported"], reset["lifespan"]) == ("unset", "unset")


# --- --limit-max-requests ------------------------------------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("keep_alive", [False, True], ids=["fresh-connections", "keep-alive"])
def test_limit_max_requests_counts_exactly(
    start_server: StartServer, app_dir: Path, workers: str, keep_alive: bool
) -> None:
    server = serve(start_server, app_dir, "--workers", workers, "--limit-max-requests", "5")
    served: collections.Counter[int] = collections.Counter()
    with httpx.Client(base_url=server.url, timeout=20) as client:
        for _ in range(16):
            if keep_alive:
                served[client.get("/").json()["pid"]] += 1
            else:
                served[get(server.url)["pid"]] += 1  # type: ignore[index]
    assert max(served.values()) <= 5, served
    recycled = re.compile(r"Worker \[(\d+)\] served 5 requests \(limit 5\); recycling it")
    server.wait_for_line(recycled)
    retired = {int(m[1]) for m in map(recycled.search, server.lines) if m}
    assert retired and all(served[pid] == 5 for pid in retired), (served, retired)
    assert server.stop() == 0
