"""Fixtures: a module-scoped squall for the router app, and a factory for per-test servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .harness import Server

StartServer = Callable[..., Server]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """One squall serving ``tests.e2e.apps:app``, shared by the tests of a module."""
    running = Server(["--timeout-graceful-shutdown", "3"]).start()
    try:
        yield running
    finally:
        running.stop()
        running.kill()
        print(f"--- stderr of the module server:\n{running.log()}")


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Start squall with special flags for one test; every server is stopped afterwards."""
    started: list[Server] = []

    def start(*args: str, **kwargs: object) -> Server:
        instance = Server(args, **kwargs)  # type: ignore[arg-type]
        started.append(instance)
        return instance.start()

    yield start
    for instance in started:
        instance.kill()
        print(f"--- stderr of {instance.command}:\n{instance.log()}")  # shown if the test failed
