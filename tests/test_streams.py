"""The stream channels (``server/streams.py`` and its HTTP/2 and HTTP/3 subclasses) in process:
``drain()`` while paused, ``wake()``, and what a waiting ``drain()`` raises once the stream is gone."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from bench.h2_profile import make_connection
from squall.asgi.types import ClientDisconnected
from squall.events import Event
from squall.observe.access import REJECTED
from squall.server.http2 import H2Stream
from squall.server.http3 import H3Stream
from squall.server.streams import StreamChannel


class Host:
    """A connection as far as a stream uses it (``StreamHost``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.proto = self

    def send(self, event: Event) -> None: ...
    def body_wanted(self, stream: object) -> None: ...
    def stream_finished(self, stream: object) -> None: ...


class Cycle:
    """A stream's cycle, as far as ``disconnect`` tells it."""

    body_done = False

    def __init__(self) -> None:
        self.ended: list[str] = []

    def on_body(self, data: bytes) -> None: ...
    def on_body_end(self) -> None: ...
    def on_disconnect(self, ended: str = "") -> None:
        self.ended.append(ended)


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(coroutine)
    finally:
        loop.close()


async def waiting_drain(stream: StreamChannel[Any]) -> asyncio.Task[None]:
    """A task in ``stream.drain()``, run until it waits."""
    task = asyncio.get_running_loop().create_task(stream.drain())
    await asyncio.sleep(0)
    assert not task.done()
    return task


def h3_stream() -> H3Stream:
    stream = H3Stream(Host(asyncio.get_running_loop()), 4)  # type: ignore[arg-type]
    stream.cycle = Cycle()  # type: ignore[assignment]
    return stream


def test_drain_waits_while_paused_until_woken() -> None:
    async def check() -> None:
        stream = h3_stream()
        await stream.drain()  # not paused: returns at once
        stream.write_paused = True
        task = await waiting_drain(stream)
        stream.wake()  # still paused: waits again
        await asyncio.sleep(0)
        assert not task.done()
        stream.write_paused = False
        stream.wake()
        await task

    run(check())


def test_h3_a_waiting_drain_raises_stream_reset_whatever_the_cause() -> None:
    async def check() -> None:
        stream = h3_stream()
        stream.write_paused = True
        task = await waiting_drain(stream)
        stream.disconnect(ClientDisconnected("request body too large"), REJECTED)
        with pytest.raises(ClientDisconnected, match=r"^stream reset$"):
            await task
        assert stream.gone and stream.cycle.ended == [REJECTED]  # type: ignore[union-attr]
        with pytest.raises(ClientDisconnected, match=r"^stream reset$"):
            await stream.drain()

    run(check())


def test_h3_a_gone_stream_is_not_marked_paused() -> None:
    async def check() -> None:
        stream = h3_stream()
        stream.disconnect(ClientDisconnected("stream reset"))
        assert stream.gone and not stream.write_paused

    run(check())


def test_h2_a_waiting_drain_raises_the_cause_and_the_stream_counts_as_paused() -> None:
    async def check() -> None:
        conn, _ = make_connection(asyncio.get_running_loop())
        stream = H2Stream(conn, 1)
        stream.write_paused = True
        task = await waiting_drain(stream)
        cause = ClientDisconnected("request body too large")
        stream.disconnect(cause, REJECTED)
        with pytest.raises(ClientDisconnected) as raised:
            await task
        assert raised.value is cause
        other = H2Stream(conn, 3)
        assert not other.write_paused
        other.disconnect(ClientDisconnected("client disconnected"))
        assert other.gone and other.write_paused
        with pytest.raises(ClientDisconnected, match=r"^stream reset$"):
            await other.drain()

    run(check())
