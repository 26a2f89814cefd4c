"""The supervisor with an injected dummy worker target: real child processes, no HTTP, no asyncio.

The dummy's behaviour is picked by the config's app string (``ok``, ``fail``, ``hang``, ``busy``,
``fat``, ``fail-if:PATH``). The supervisor runs in a thread (``install_signals=False``) and the
test drives it with ``post()``, the same path its signal handlers take.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from squall.config import AppSettings, Config, ProcessSettings, RuntimeSettings
from squall.process.spawn import WorkerSpec
from squall.process.supervisor import ReloadFilter, Supervisor
from squall.process.systemd import Notifier, listen_fds

WAIT = 20.0  # generous upper bound for one condition on a loaded 2-core machine


def dummy_worker(spec: WorkerSpec) -> None:
    """A worker stand-in: reports ready and answers pings as its mode says; exits 0 on SIGTERM."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    mode, _, arg = spec.config.app.app.partition(":")
    if mode == "fail" or (mode == "fail-if" and os.path.exists(arg)):
        spec.channel.send(("failed", "dummy import error"))
        sys.exit(1)
    if mode == "stuck" or (mode == "stuck-if" and os.path.exists(arg)):
        threading.Event().wait()  # an import or a lifespan startup that never returns
    spec.channel.send(("ready",))
    while True:
        try:
            message = spec.channel.recv()
        except (EOFError, OSError):
            return
        if message == "ping" and mode != "hang":
            requests = 1000 if mode == "busy" else 0
            rss = 1 << 40 if mode == "fat" else 1 << 20
            spec.channel.send(("pong", requests, rss))


@contextlib.contextmanager
def supervising(mode: str = "ok", **process: Any) -> Iterator[tuple[Supervisor, dict[str, int]]]:
    process.setdefault("timeout_worker_healthcheck", 0.4)
    config = Config(
        app=AppSettings(app=mode),
        process=ProcessSettings(**process),
        runtime=RuntimeSettings(timeout_graceful_shutdown=5.0),
    )
    sock = socket.create_server(("127.0.0.1", 0))
    supervisor = Supervisor(config, [sock], target=dummy_worker, notifier=Notifier(address=""))
    result: dict[str, int] = {}
    thread = threading.Thread(target=lambda: result.setdefault("code", supervisor.run(install_signals=False)))
    thread.start()
    try:
        yield supervisor, result
    finally:
        supervisor.post("stop")
        thread.join(WAIT)
        sock.close()
        assert not thread.is_alive(), "supervisor did not stop"


def ready(supervisor: Supervisor, count: int) -> bool:
    return len(supervisor.pids("ready")) == count and len(supervisor.pids()) == count


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def test_starts_n_workers_and_stops_them_gracefully() -> None:
    with supervising(workers=3) as (sup, result):
        assert sup.wait_for(lambda: ready(sup, 3), WAIT)
        pids = sup.pids()
        assert len(set(pids)) == 3
        sup.post("stop")
        assert sup.wait_for(lambda: "code" in result, WAIT)
    assert result["code"] == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_dead_worker_is_replaced_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "squall.error")
    with supervising(workers=2) as (sup, _):
        assert sup.wait_for(lambda: ready(sup, 2), WAIT)
        victim = sup.pids()[0]
        os.kill(victim, signal.SIGKILL)
        assert sup.wait_for(lambda: ready(sup, 2) and victim not in sup.pids(), WAIT)
    assert f"Worker [{victim}] died unexpectedly (killed by signal SIGKILL); replacing it" in messages(caplog)


def test_every_worker_failing_startup_exits_nonzero_without_respawning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, "squall.error")
    started = time.monotonic()
    with supervising("fail", workers=2) as (sup, result):
        assert sup.wait_for(lambda: "code" in result, WAIT)
    assert result["code"] == 3  # STARTUP_FAILURE, whatever the worker exited with
    assert sup.failure == "dummy import error"
    assert time.monotonic() - started < 10
    assert sum("failed to start" in m for m in messages(caplog)) == 2  # no respawn loop


def test_unresponsive_worker_is_killed_and_replaced(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "squall.error")
    with supervising("hang", workers=1, timeout_worker_healthcheck=0.3) as (sup, _):
        assert sup.wait_for(lambda: ready(sup, 1), WAIT)
        first = sup.pids()[0]
        assert sup.wait_for(lambda: ready(sup, 1) and first not in sup.pids(), WAIT)
    assert any(f"Worker [{first}] did not answer the health check" in m for m in messages(caplog))


def test_a_worker_stuck_starting_is_killed_and_reported_as_failed() -> None:
    """No worker can start: squall exits non-zero with the reason, instead of waiting forever."""
    with supervising("stuck", workers=1, timeout_worker_startup=0.5) as (sup, result):
        assert sup.wait_for(lambda: "code" in result, WAIT)
    assert result["code"] == 3  # a startup failure, as uvicorn
    assert sup.failure == "not ready within 0.5 s (--timeout-worker-startup): killed"


def test_a_reload_stuck_starting_keeps_the_running_workers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A rolling reload whose new worker hangs in startup ends: the old worker keeps serving."""
    caplog.set_level(logging.INFO, "squall.error")
    stuck = tmp_path / "stuck"
    with supervising(f"stuck-if:{stuck}", workers=1, timeout_worker_startup=4.0) as (sup, result):
        assert sup.wait_for(lambda: ready(sup, 1), WAIT)
        old = sup.pids()
        stuck.touch()
        sup.post("reload")
        assert sup.wait_for(
            lambda: "Replacement failed; keeping the running worker(s)" in messages(caplog), WAIT
        )
        assert sup.pids("ready") == old and "code" not in result
    assert any("--timeout-worker-startup" in m for m in messages(caplog))


def _assert_rolling(log: list[str], old: list[int]) -> None:
    """Each old worker is stopped only after one more new worker than before reported ready."""
    new_ready = 0
    stopped = 0
    for message in log:
        if message.startswith("Worker [") and message.endswith("] ready"):
            pid = int(message.split("[")[1].split("]")[0])
            new_ready += pid not in old
        elif message.startswith("Stopping worker ["):
            pid = int(message.split("[")[1].split("]")[0])
            if pid in old:
                stopped += 1
                assert new_ready >= stopped, log


def test_reload_replaces_every_worker_new_before_old(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "squall.error")
    with supervising(workers=2) as (sup, _):
        assert sup.wait_for(lambda: ready(sup, 2), WAIT)
        old = sup.pids()
        caplog.clear()
        sup.post("reload")
        done = "Reload complete: 2 new worker(s) ready"
        assert sup.wait_for(lambda: done in messages(caplog), WAIT)
        assert sup.wait_for(lambda: ready(sup, 2) and not set(old) & set(sup.pids()), WAIT)
        log = messages(caplog)
    _assert_rolling(log, old)


def test_failed_reload_keeps_the_running_workers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "squall.error")
    broken = tmp_path / "broken"
    with supervising(f"fail-if:{broken}", workers=1) as (sup, result):
        assert sup.wait_for(lambda: ready(sup, 1), WAIT)
        old = sup.pids()
        broken.touch()
        sup.post("reload")
        assert sup.wait_for(
            lambda: "Replacement failed; keeping the running worker(s)" in messages(caplog), WAIT
        )
        assert sup.pids("ready") == old
        assert "code" not in result


def test_ttin_and_ttou_change_the_worker_count() -> None:
    with supervising(workers=1) as (sup, _):
        assert sup.wait_for(lambda: ready(sup, 1), WAIT)
        sup.post("more")
        sup.post("more")
        assert sup.wait_for(lambda: ready(sup, 3), WAIT)
        sup.post("fewer")
        assert sup.wait_for(lambda: ready(sup, 2), WAIT)
        for _ in range(3):
            sup.post("fewer")
        assert sup.wait_for(lambda: ready(sup, 1), WAIT)


@pytest.mark.parametrize(
    ("mode", "limits", "reason"),
    [
        ("busy", {"limit_max_requests": 10, "limit_max_requests_jitter": 5}, "served 1000 requests"),
        ("fat", {"limit_max_memory": 100}, "MiB (limit 100 MiB); recycling it"),
    ],
)
def test_worker_over_its_limit_is_recycled_by_rolling(
    mode: str, limits: dict[str, int], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "squall.error")
    with supervising(mode, workers=1, **limits) as (sup, _):
        assert sup.wait_for(lambda: ready(sup, 1), WAIT)
        first = sup.pids()[0]
        if "limit_max_requests" in limits:
            assert 10 <= sup.workers[0].max_requests <= 15  # type: ignore[operator]
        assert sup.wait_for(lambda: first not in sup.pids() and len(sup.pids("ready")) == 1, WAIT)
        log = messages(caplog)
    assert any(m.startswith(f"Worker [{first}]") and reason in m for m in log)
    _assert_rolling(log, [first])


def test_pid_file_exists_while_running(tmp_path: Path) -> None:
    pid_file = tmp_path / "squall.pid"
    with supervising(workers=1, pid_file=str(pid_file)) as (sup, result):
        assert sup.wait_for(lambda: ready(sup, 1), WAIT)
        assert pid_file.read_text().strip() == str(os.getpid())
        sup.post("stop")
        assert sup.wait_for(lambda: "code" in result, WAIT)
    assert not pid_file.exists()


def test_parent_never_imports_asyncio() -> None:
    code = "import sys, squall.cli, squall.process.supervisor; assert 'asyncio' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_reload_filter_globs() -> None:
    accept = ReloadFilter(["*.py", "*.toml"], ["*_test.py", "build/*"])
    assert accept(None, "/src/app.py")
    assert accept(None, "/src/pyproject.toml")
    assert not accept(None, "/src/app_test.py")
    assert not accept(None, "/src/notes.txt")
    assert not accept(None, "/src/__pycache__/app.py")
    assert not accept(None, "/src/.git/hooks/x.py")


def test_listen_fds_ignores_another_process_and_clears_the_environment() -> None:
    environ = {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDNAMES": "http"}
    assert listen_fds(environ) == []
    assert environ == {}


@pytest.mark.parametrize("abstract", [False, True])
def test_notifier_sends_datagrams(tmp_path: Path, abstract: bool) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        name = f"squall-test-{os.getpid()}-{time.monotonic_ns()}"
        listener.bind("\0" + name if abstract else str(tmp_path / "notify"))
        listener.settimeout(5)
        Notifier("@" + name if abstract else str(tmp_path / "notify")).notify("READY=1")
        assert listener.recv(4096) == b"READY=1"
    Notifier("").notify("READY=1")  # disabled: a no-op
