"""Writes in process (no sockets): the body chunks an app sends within one pass of the event loop
leave in one write, up to a bound, over HTTP/1.1 and HTTP/2; the HTTP/1.1 responses that
connections complete in one pass leave after it, back to back; a lone response leaves at once."""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
import pytest

from bench import apps
from bench.h1_profile import REQUEST, Transport, make_connections
from bench.h2_profile import client_batches, make_connection
from squall.server.state import WRITE_BATCH


class Recorder(Transport):
    """The harness transport, keeping what is written."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        super().write(data)
        self.data += data

    def writelines(self, data: list[bytes]) -> None:
        super().writelines(data)
        self.data += b"".join(data)


def response_body(raw: bytes) -> bytes:
    body = bytearray()

    class Collect:
        def on_body(self, chunk: bytes) -> None:
            body.extend(chunk)

    httptools.HttpResponseParser(Collect()).feed_data(raw)
    return bytes(body)


def serve_http1(app: Any, transport: Recorder | None = None) -> Recorder:
    """Serve one GET to ``app`` on one HTTP/1.1 connection whose transport (``transport``, else a
    new one) records the writes; return the transport once the response is complete."""
    transport = Recorder() if transport is None else transport
    serve_http1_all(app, [transport])
    return transport


def serve_http1_all(app: Any, transports: list[Recorder]) -> None:
    """Serve one GET to ``app`` on each of ``len(transports)`` HTTP/1.1 connections, all read in
    one pass of the event loop; return once every response is written (``write_soon``'s too)."""
    loop = asyncio.new_event_loop()
    try:
        conns = [conn for conn, _ in make_connections(loop, app, len(transports))]
        for conn, transport in zip(conns, transports, strict=True):
            conn.connection_made(transport)  # type: ignore[arg-type]
        server = conns[0].server

        async def serve() -> None:
            for conn in conns:
                conn.data_received(REQUEST)
            while server.total_requests < len(conns) or server.active_requests:
                await asyncio.sleep(0)
            await asyncio.sleep(0)  # the pass that writes what waited for the end of the last

        loop.run_until_complete(serve())
    finally:
        loop.close()


def test_http1_chunks_of_one_loop_pass_leave_in_one_write() -> None:
    transport = serve_http1(apps.stream)
    assert transport.writes == 1  # was one per body message: 100
    assert response_body(bytes(transport.data)) == apps.STREAM_CHUNK * apps.STREAM_CHUNKS


def test_http1_chunks_spread_over_loop_passes_are_each_written_in_their_pass() -> None:
    seen: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one", b"two"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0)  # one pass: the deferred write runs
            await asyncio.sleep(0)
            seen.append(transport.writes)
        await send({"type": "http.response.body", "body": b""})

    transport = Recorder()
    serve_http1(app, transport)
    assert seen == [1, 2]  # nothing waits for the end of the response
    assert response_body(bytes(transport.data)) == b"onetwo"


def test_http1_coalescing_is_bounded() -> None:
    """Past 64 KiB of unwritten chunks the output is written at once (so the transport's
    back-pressure applies to an app that never yields)."""
    seen: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(3):
            await send({"type": "http.response.body", "body": b"x" * 30000, "more_body": True})
            seen.append(transport.writes)
        await send({"type": "http.response.body", "body": b""})

    transport = Recorder()
    serve_http1(app, transport)
    assert seen == [0, 0, 1]
    assert response_body(bytes(transport.data)) == b"x" * 90000


def test_http1_responses_completed_in_one_pass_leave_after_it() -> None:
    seen: list[list[int]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hi"})
        seen.append([transport.writes for transport in transports])

    transports = [Recorder(), Recorder(), Recorder()]
    serve_http1_all(app, transports)
    assert seen == [[0, 0, 0]] * 2 + [[0, 0, 1]]  # the last one is alone by then: written at once
    assert [transport.writes for transport in transports] == [1, 1, 1]
    assert all(response_body(bytes(transport.data)) == b"hi" for transport in transports)


def test_http1_responses_waiting_for_the_pass_end_are_bounded() -> None:
    """Past ``WRITE_BATCH`` connections waiting, the batch is written at once: the output held
    for the end of a pass stays bounded however many connections a pass serves."""
    seen: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hi"})
        seen.append(transports[0].writes)

    count = WRITE_BATCH + 8
    transports = [Recorder() for _ in range(count)]
    serve_http1_all(app, transports)
    assert seen[: WRITE_BATCH - 1] == [0] * (WRITE_BATCH - 1)
    assert seen[WRITE_BATCH - 1] == 1  # the batch's last member wrote every one of them
    assert [transport.writes for transport in transports] == [1] * count


class CallCounter(Recorder):
    """Counts ``writelines`` calls (a writev(2) each) apart from ``write`` calls."""

    def __init__(self) -> None:
        super().__init__()
        self.writelines_calls = 0

    def writelines(self, data: list[bytes]) -> None:
        super().writelines(data)
        self.writelines_calls += 1


@pytest.mark.parametrize(("size", "writev"), [(13, 0), (64 * 1024, 1)])
def test_http1_small_output_in_pieces_is_joined_into_one_write(size: int, writev: int) -> None:
    """Head and body up to 4 KiB in all leave joined, by one write(2); beyond, by one writev(2)
    rather than a copy."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x" * size})

    transport = CallCounter()
    serve_http1(app, transport)
    assert (transport.writes, transport.writelines_calls) == (1, writev)
    assert response_body(bytes(transport.data)) == b"x" * size


def test_http1_a_lone_response_is_written_at_once() -> None:
    seen: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hi"})
        seen.append(transport.writes)

    transport = Recorder()
    serve_http1(app, transport)
    assert seen == [1]
    assert response_body(bytes(transport.data)) == b"hi"


def test_http2_streamed_responses_of_one_loop_pass_share_one_write() -> None:
    loop = asyncio.new_event_loop()
    try:
        conn, transport = make_connection(loop, apps.stream)
        first, second = client_batches(20, 10)

        async def serve() -> None:
            conn.start()
            for batch in (first, second):
                writes = transport.writes
                conn.data_received(batch)
                while conn.streams:
                    await asyncio.sleep(0)
                await asyncio.sleep(0)  # the deferred flush
                assert transport.writes - writes <= 2  # was 100 a stream

        loop.run_until_complete(serve())
        assert conn.server.total_requests == 20
        assert transport.written > 20 * apps.STREAM_CHUNKS * len(apps.STREAM_CHUNK)
    finally:
        loop.close()


@pytest.mark.parametrize(("streams", "written_at_once"), [(1, True), (2, False)])
def test_http2_a_lone_response_is_written_at_once(streams: int, written_at_once: bool) -> None:
    # Alone, a completed response is written when it completes, as over HTTP/1.1; with another
    # stream in flight it waits for the end of the loop pass, to leave with the other's.
    seen: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        before = transport.written
        await send({"type": "http.response.body", "body": b"hi"})
        seen.append(transport.written > before)

    loop = asyncio.new_event_loop()
    try:
        conn, transport = make_connection(loop, app)
        (batch,) = client_batches(streams, streams)

        async def serve() -> None:
            conn.start()
            conn.data_received(batch)
            while conn.streams:
                await asyncio.sleep(0)

        loop.run_until_complete(serve())
        assert seen[0] is written_at_once
        assert conn.server.total_requests == streams
    finally:
        loop.close()
