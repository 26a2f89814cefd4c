"""The garbage collector is tuned once a worker serves (process/collector.py): what startup made is
frozen and generation 0 waits for 50,000 net allocations; an app that tuned it keeps its own."""

from __future__ import annotations

import asyncio
import gc

import httpx
import pytest

import squall
from squall.process.collector import SERVING_THRESHOLD

from .conftest import StartServer

APP = "tests.e2e.gc_app:app"


@pytest.mark.parametrize("mode", [[], ["--workers", "2"]], ids=["single", "workers"])
def test_a_serving_process_freezes_startup_and_raises_generation_0(
    start_server: StartServer, mode: list[str]
) -> None:
    server = start_server(*mode, app=APP)
    seen = httpx.get(server.url + "/").json()
    assert seen["threshold"] == [SERVING_THRESHOLD, 10, 10]
    assert seen["frozen"] > 1000  # the modules and the app loaded at startup


def test_an_app_that_set_its_own_threshold_keeps_it(start_server: StartServer) -> None:
    server = start_server(app=APP, env={"SET_THRESHOLD": "1234"})
    seen = httpx.get(server.url + "/").json()
    assert seen["threshold"] == [1234, 10, 10]
    assert seen["frozen"] == 0


async def test_an_embedded_server_leaves_the_host_program_s_collector_alone() -> None:
    before = gc.get_threshold(), gc.get_freeze_count()

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        return None

    server = squall.Server(squall.Config(app, port=0, lifespan="off"), handle_signals=False)
    serving = asyncio.create_task(server.serve())
    await server.wait_started()
    assert (gc.get_threshold(), gc.get_freeze_count()) == before
    server.should_exit = True
    await asyncio.wait_for(serving, 10)
