"""The graceful stop cancels only what squall started: a request still running after the grace
period is cancelled, but a task the app started in lifespan startup lives until lifespan shutdown
stops it (one process and with a supervisor)."""

from __future__ import annotations

import contextlib
import threading

import httpx
import pytest

from .conftest import StartServer

APP = "tests.e2e.lifespan_task_app:app"


@pytest.mark.parametrize("mode", [[], ["--workers", "2"]], ids=["single", "workers"])
def test_lifespan_task_is_stopped_by_shutdown_not_cancelled_first(
    start_server: StartServer, mode: list[str]
) -> None:
    server = start_server("--timeout-graceful-shutdown", "0.5", *mode, app=APP)
    hung = threading.Thread(target=lambda: _ignore_errors(server.url + "/hang"), daemon=True)
    hung.start()
    pid = server.wait_for_line(r"APP request (\d+) hanging").group(1)
    assert server.stop(timeout=15) == 0
    log = server.log()
    assert f"APP request {pid} cancelled" in log  # squall's own task, past the grace period
    assert "cancelled before shutdown" not in log
    workers = 2 if mode else 1
    assert log.count("stopped by shutdown") == workers, log


def _ignore_errors(url: str) -> None:
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(url, timeout=20)
