"""The HTTP/2 connection in process: client bytes in, transport writes out (no sockets)."""

from __future__ import annotations

import asyncio

from bench.h2_profile import client_batches, make_connection
from squall.protocol.http2 import PREFACE


def test_streams_answered_in_one_loop_pass_share_one_write() -> None:
    loop = asyncio.new_event_loop()
    try:
        conn, transport = make_connection(loop)
        first, second = client_batches(20, 10)
        assert first.startswith(PREFACE)

        async def serve() -> None:
            conn.start()
            for batch in (first, second):
                writes = transport.writes
                conn.data_received(batch)
                while conn.streams:
                    await asyncio.sleep(0)
                await asyncio.sleep(0)  # the deferred flush
                assert transport.writes - writes <= 2  # SETTINGS ACK, then all ten responses

        loop.run_until_complete(serve())
        assert conn.server.total_requests == 20
    finally:
        loop.close()


def test_a_leaving_client_gets_its_last_response_before_the_close() -> None:
    loop = asyncio.new_event_loop()
    try:
        conn, transport = make_connection(loop)
        closed_after: list[int] = []
        transport.close = lambda: closed_after.append(transport.written)  # type: ignore[method-assign]
        (batch,) = client_batches(1, 1)
        goaway = b"\0\0\x08\x07\0\0\0\0\0" + b"\0" * 8  # the client's GOAWAY(NO_ERROR)

        async def serve() -> None:
            conn.start()
            conn.data_received(batch + goaway)
            before = transport.written
            while conn.streams:
                await asyncio.sleep(0)
            assert closed_after and closed_after[0] > before  # the response, then the close

        loop.run_until_complete(serve())
    finally:
        loop.close()
