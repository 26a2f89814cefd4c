"""The command line: flags, environment variables, listeners, app loading."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import httpx
import pytest

import squall

from .conftest import StartServer
from .harness import Server, run_cli


def test_version_prints_version_and_exits_0() -> None:
    result = run_cli(["--version"])
    assert result.returncode == 0
    assert result.stdout.strip() == f"squall {squall.__version__} ({squall.build_info()})"
    assert ("compiled" in result.stdout) != ("pure Python" in result.stdout)


def test_help_lists_option_groups() -> None:
    result = run_cli(["--help"])
    assert result.returncode == 0
    for group in ("Application", "Socket binding", "HTTP and limits", "Runtime and logging"):
        assert f"{group}:" in result.stdout
    for flag in ("--port", "--uds", "--fd", "--timeout-keep-alive", "--limit-concurrency", "--root-path"):
        assert flag in result.stdout


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--port", "abc"], "--port"),
        (["--port", "70000"], "--port"),
        (["--timeout-keep-alive", "-1"], "--timeout-keep-alive"),
        (["--loop", "nope"], "--loop"),
        (["--limit-concurrency", "0"], "--limit-concurrency"),
        (["--header", "no-colon"], "--header"),
    ],
    ids=["port-abc", "port-range", "keepalive-negative", "loop-nope", "concurrency-0", "header-format"],
)
def test_bad_flag_value_exits_2_with_one_line(args: list[str], flag: str) -> None:
    result = run_cli(["tests.e2e.apps:app", *args])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert flag in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_environment_value_exits_2_naming_the_variable() -> None:
    result = run_cli(["tests.e2e.apps:app"], env={"SQUALL_TIMEOUT_KEEP_ALIVE": "soon"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SQUALL_TIMEOUT_KEEP_ALIVE" in lines[0], result.stderr


@pytest.mark.parametrize(
    ("app", "named"),
    [
        ("tests.e2e.no_such_module:app", "tests.e2e.no_such_module"),
        ("tests.e2e.apps:no_such_attribute", "no_such_attribute"),
        ("not-a-spec", "not-a-spec"),
    ],
    ids=["missing-module", "missing-attribute", "malformed-spec"],
)
def test_unloadable_app_exits_3_with_one_line(app: str, named: str) -> None:
    result = run_cli([app, "--port", "0"])
    assert result.returncode == 3  # uvicorn's startup-failure code since 0.50
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
    assert "Traceback" not in result.stderr


def test_default_headers_present(server: Server) -> None:
    response = httpx.get(server.url + "/")
    assert response.headers["server"] == "squall"
    assert "date" in response.headers


def test_header_flag_adds_response_header(start_server: StartServer) -> None:
    running = start_server("--header", "X-A:1", "--header", "X-Team: e2e")
    response = httpx.get(running.url + "/")
    assert response.headers["x-a"] == "1"
    assert response.headers["x-team"] == "e2e"


def test_no_server_and_no_date_header(start_server: StartServer) -> None:
    running = start_server("--no-server-header", "--no-date-header")
    response = httpx.get(running.url + "/")
    assert response.status_code == 200
    assert "server" not in response.headers
    assert "date" not in response.headers


def test_environment_variables_configure_the_server(start_server: StartServer) -> None:
    running = start_server(env={"SQUALL_SERVER_HEADER": "false", "SQUALL_ROOT_PATH": "/from-env"})
    response = httpx.get(running.url + "/scope")
    assert "server" not in response.headers
    assert response.json()["root_path"] == "/from-env"


def test_environment_port_is_used(start_server: StartServer) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    running = start_server(env={"SQUALL_PORT": str(free_port)}, ephemeral_port=False)
    assert running.port == free_port
    assert httpx.get(running.url + "/").text == "hello"


def test_command_line_beats_environment(start_server: StartServer) -> None:
    running = start_server("--root-path", "/cli", env={"SQUALL_ROOT_PATH": "/env"})
    assert httpx.get(running.url + "/scope").json()["root_path"] == "/cli"


def test_root_path_in_scope(start_server: StartServer) -> None:
    running = start_server("--root-path", "/api")
    scope = httpx.get(running.url + "/items?x=1").json()
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/items"
    assert scope["query_string"] == "x=1"


def test_unix_domain_socket(start_server: StartServer, tmp_path: Path) -> None:
    path = str(tmp_path / "squall.sock")
    running = start_server("--uds", path)
    assert running.url == f"unix:{path}"
    transport = httpx.HTTPTransport(uds=path)
    with httpx.Client(transport=transport, base_url="http://localhost") as client:
        scope = client.get("/scope").json()
    assert scope["server"] == [path, None]
    assert scope["types"]["server"] in ("list", "tuple")
    running.terminate()
    assert running.wait_exit(10) == 0
    # The drain removed the path first: a new connect fails at once (nginx tries its next
    # upstream) instead of queueing on a socket about to close (uvicorn removes it at exit too).
    assert not os.path.exists(path)


def test_a_unix_socket_path_bound_again_by_another_process_is_left_alone(
    start_server: StartServer, tmp_path: Path
) -> None:
    path = str(tmp_path / "squall.sock")
    running = start_server("--uds", path)
    os.unlink(path)  # a new instance took the path over, as a deploy may do before the old stops
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as successor:
        successor.bind(path)
        successor.listen(4)
        running.terminate()
        assert running.wait_exit(10) == 0
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(5)
            client.connect(path)  # still the successor's
            successor.settimeout(5)
            successor.accept()[0].close()


def test_inherited_file_descriptor(start_server: StartServer) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    try:
        fd = listener.fileno()
        running = start_server("--fd", str(fd), pass_fds=[fd], ephemeral_port=False)
        assert running.port == port
        scope = httpx.get(f"http://127.0.0.1:{port}/scope").json()
        assert scope["server"] == ["127.0.0.1", port]
        running.terminate()
        assert running.wait_exit(10) == 0
        # The socket is still ours after squall's drain: it must not be left refusing connections
        # (a drain does that only to sockets it owns).
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            listener.settimeout(5)
            accepted, _ = listener.accept()
            accepted.close()
    finally:
        listener.close()


def test_fd_and_uds_together_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli(["tests.e2e.apps:app", "--fd", "3", "--uds", str(tmp_path / "s")])
    assert result.returncode == 2
    assert "--fd" in result.stderr and "Traceback" not in result.stderr


def test_factory_flag_calls_the_factory(start_server: StartServer) -> None:
    running = start_server("--factory", "--lifespan", "off", app="tests.e2e.apps:make_app")
    assert httpx.get(running.url + "/").text == "made by factory"


def test_asgi2_app_is_detected(start_server: StartServer) -> None:
    running = start_server("--lifespan", "off", app="tests.e2e.apps:Asgi2App")
    response = httpx.get(running.url + "/two")
    assert response.status_code == 200
    assert response.text == "asgi2 /two"


def test_no_app_serves_the_demo(start_server: StartServer) -> None:
    running = start_server(app=None)
    page = httpx.get(running.url + "/")
    assert page.status_code == 200
    assert "Hello from squall" in page.text
    assert page.headers["content-type"].startswith("text/html")
    with httpx.stream("GET", running.url + "/stream", timeout=10) as response:
        assert response.headers["transfer-encoding"] == "chunked"
        text = response.read().decode()
    assert text == "".join(f"line {n}\n" for n in range(10))
