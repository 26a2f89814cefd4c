"""The Python API: ``squall.Server`` embedded in the test's own event loop (real sockets, httpx),
and ``squall.run`` in a real script run as ``python main.py``, as uvicorn users write it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

import squall
from squall.config import OptionError

from .harness import REPO_ROOT, clean_env

Scope = dict[str, Any]


async def hello(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["path"] == "/hang":
        await asyncio.Event().wait()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello " + scope["path"].encode()})


def embedded(app: Any = hello, **options: Any) -> squall.Server:
    return squall.Server(squall.Config(app, port=0, **options), handle_signals=False)


async def test_serve_in_the_running_loop_on_a_free_port_then_stop() -> None:
    server = embedded()
    serving = asyncio.create_task(server.serve())
    await server.wait_started()
    assert server.started
    port = server.port
    assert port and server.bound_addresses == [("127.0.0.1", port)]
    assert len(server.servers) == 1
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/x")
    assert response.text == "hello /x"
    server.should_exit = True
    await asyncio.wait_for(serving, 10)
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{port}/x")


async def test_stopping_leaves_the_host_program_s_tasks_alone() -> None:
    host_task = asyncio.create_task(asyncio.Event().wait())
    server = embedded()
    serving = asyncio.create_task(server.serve())
    await server.wait_started()
    server.should_exit = True
    await asyncio.wait_for(serving, 10)
    assert not host_task.done()  # the old drain cancelled every task in the loop
    host_task.cancel()


async def test_two_servers_in_one_loop_stopping_one_spares_the_other_s_requests() -> None:
    hanging: asyncio.Queue[int] = asyncio.Queue()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await hanging.put(scope["server"][1])
        await hello(scope, receive, send)

    first = embedded(app, lifespan="off", timeout_graceful_shutdown=0.2)
    second = embedded(app, lifespan="off")
    tasks = [asyncio.create_task(first.serve()), asyncio.create_task(second.serve())]
    await first.wait_started()
    await second.wait_started()
    async with httpx.AsyncClient(timeout=10) as client:
        hung_on_first = asyncio.create_task(client.get(f"http://127.0.0.1:{first.port}/hang"))
        hung_on_second = asyncio.create_task(client.get(f"http://127.0.0.1:{second.port}/hang"))
        assert {await hanging.get(), await hanging.get()} == {first.port, second.port}
        first.should_exit = True
        await asyncio.wait_for(tasks[0], 10)  # its hung request was cancelled after 0.2 s
        with pytest.raises(httpx.HTTPError):
            await hung_on_first
        assert not hung_on_second.done()  # the other server's request still runs
        second.force_exit = True
        await asyncio.wait_for(tasks[1], 10)
        with pytest.raises(httpx.HTTPError):
            await hung_on_second


async def test_an_app_that_does_not_import_fails_serve_and_wait_started() -> None:
    server = embedded("no_such_module_here:app")
    serving = asyncio.create_task(server.serve())
    with pytest.raises(squall.StartupFailed, match="no_such_module_here"):
        await server.wait_started()
    with pytest.raises(squall.StartupFailed):
        await serving


async def test_a_port_in_use_fails_with_the_address() -> None:
    first = embedded()
    serving = asyncio.create_task(first.serve())
    await first.wait_started()
    taken = squall.Server(squall.Config(hello, port=first.port), handle_signals=False)
    with pytest.raises(squall.StartupFailed, match=f"cannot bind 127.0.0.1:{first.port}"):
        await taken.serve()
    first.should_exit = True
    await serving


async def test_lifespan_startup_failure_is_startup_failed() -> None:
    async def failing(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    server = embedded(failing, lifespan="on")
    with pytest.raises(squall.StartupFailed, match="no database"):
        await server.serve()


async def test_should_exit_before_serving_starts_stops_at_once() -> None:
    server = embedded()
    server.should_exit = True
    await asyncio.wait_for(server.serve(), 10)
    assert server.started  # it started, saw the flag, and stopped


def test_options_are_the_command_line_s_with_uvicorn_spellings() -> None:
    config = squall.Config(
        "main:app",
        port="9000",
        reload_dirs=["src"],
        headers=[("x-a", "1")],
        log_level=10,
        ws_ping_interval=None,
        forwarded_allow_ips=["10.0.0.0/8", "unix:"],
        ssl_cert_reqs=2,
    )
    assert (config.port, config.reload_dir, config.header) == (9000, ["src"], [("x-a", "1")])
    assert (config.log_level, config.ws_ping_interval) == ("debug", None)
    assert config.forwarded_allow_ips == "10.0.0.0/8,unix:"
    assert config.settings.tls.ssl_cert_reqs == 2


@pytest.mark.parametrize(
    ("options", "error", "text"),
    [
        ({"port": "x"}, OptionError, "port: invalid value 'x': not a number"),
        ({"port": True}, OptionError, "port"),
        ({"access_log": "maybe"}, OptionError, "access_log"),
        ({"forwarded_allow_ips": "10.0.0.0/33"}, OptionError, "forwarded_allow_ips"),
        ({"prot": 80}, TypeError, "did you mean 'port'"),
        ({"uds": "/tmp/s", "fd": 3}, OptionError, "uds"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, Any], error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        squall.Config("main:app", **options)


def test_workers_with_an_app_object_is_a_clear_error() -> None:
    with pytest.raises(OptionError, match=r"workers: needs the app as an import string"):
        squall.run(hello, workers=2)
    with pytest.raises(OptionError, match=r"reload: needs the app as an import string"):
        squall.run(hello, reload=True)


def test_import_squall_stays_light() -> None:
    code = "import sys, squall; assert 'asyncio' not in sys.modules; squall.Config; assert 'asyncio' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT, timeout=30)


# --- squall.run in a script ------------------------------------------------------------------------

SCRIPT = """
    import asyncio, os, sys
    import squall

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({{"type": message["type"] + ".complete"}})
                if message["type"] == "lifespan.shutdown":
                    return
        await send({{"type": "http.response.start", "status": 200, "headers": []}})
        await send({{"type": "http.response.body", "body": str(os.getpid()).encode()}})

    if __name__ == "__main__":
        squall.run({app}, port=0, {options})
        print("APP run returned", file=sys.stderr, flush=True)
"""


def start_script(tmp_path: Path, app: str, options: str) -> tuple[subprocess.Popen[str], str, list[str]]:
    (tmp_path / "main.py").write_text(textwrap.dedent(SCRIPT.format(app=app, options=options)))
    proc = subprocess.Popen(
        [sys.executable, "main.py"],
        cwd=tmp_path,
        env=clean_env(),
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "running on" in line:
            return proc, line.split("running on ")[1].split()[0], lines
    proc.wait(10)
    raise AssertionError("no startup line:\n" + "".join(lines))


@pytest.mark.parametrize(
    ("app", "options", "processes"),
    [('"main:app"', "", 1), ("app", "access_log=False", 1), ('"main:app"', "workers=2", 2)],
    ids=["import-string", "app-object", "workers"],
)
def test_run_in_a_script(tmp_path: Path, app: str, options: str, processes: int) -> None:
    proc, url, lines = start_script(tmp_path, app, options)
    try:
        pids = {httpx.get(url, headers={"connection": "close"}, timeout=10).text for _ in range(20)}
        if processes == 1:
            assert pids == {str(proc.pid)}  # served in the script's own process
        else:
            assert str(proc.pid) not in pids and pids  # served by worker processes
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "APP run returned" in rest, "".join(lines) + rest


def test_run_exits_with_the_command_s_code_and_line(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(
        "import squall\nif __name__ == '__main__':\n    squall.run('nowhere_at_all:app', port=0)\n"
    )
    result = subprocess.run(
        [sys.executable, "main.py"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("squall: error: cannot import module 'nowhere_at_all'")
    )


EMBED_SCRIPT = """
    import asyncio, sys
    import squall

    async def app(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    async def main():
        host = asyncio.create_task(asyncio.Event().wait())
        server = squall.Server(squall.Config(app, port=0, lifespan="off"))
        serving = asyncio.create_task(server.serve())
        await server.wait_started()
        print(f"APP listening {server.port}", file=sys.stderr, flush=True)
        await serving
        print(f"APP host task cancelled: {host.cancelled() or host.done()}", file=sys.stderr, flush=True)

    asyncio.run(main())
"""


def test_embedded_server_stops_gracefully_on_sigterm_and_spares_the_host(tmp_path: Path) -> None:
    (tmp_path / "embed.py").write_text(textwrap.dedent(EMBED_SCRIPT))
    proc = subprocess.Popen(
        [sys.executable, "embed.py"], cwd=tmp_path, env=clean_env(), stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if "APP listening" in line:
                port = int(line.split()[-1])
                break
        else:
            raise AssertionError("no listening line")
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "ok"
        os.kill(proc.pid, signal.SIGTERM)
        _, rest = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "APP host task cancelled: False" in rest
    assert proc.returncode == 0
