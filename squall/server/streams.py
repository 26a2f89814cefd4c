"""The ``Channel`` of one request stream on a multiplexed connection: what HTTP/2 and HTTP/3 share.

How it works
------------
A connection (``server/http2.py``'s ``H2Connection``, ``server/http3.py``'s ``H3Connection``)
makes one ``StreamChannel`` subclass per request stream and hands it to the stream's cycle (an
``HTTPCycle``, or an ``H2WebSocket``): the cycle's events go to the connection's protocol object
(``send_event``); the app waits in ``drain()`` while the stream is ``write_paused`` (its connection
sets that and calls ``wake()`` when the client has taken enough); ``disconnect`` marks the stream
``gone`` (reset, timed out, connection lost), tells the cycle and wakes a waiting ``drain()``,
which then raises ``ClientDisconnected``. Incoming body is counted in ``received`` and, until the
app has read it, ``unacked``. Each version adds what is its own: when to pause (``flush``), how a
read body is acknowledged (``body_consumed``), how a stream is aborted.
"""

from __future__ import annotations

import asyncio
from typing import Any, Generic, Protocol, TypeVar

from mypy_extensions import mypyc_attr

from squall.asgi.http import Channel, HTTPCycle, read_file_into
from squall.asgi.types import ClientDisconnected
from squall.events import Event
from squall.observe.access import CLIENT_LEFT


class StreamCycle(Protocol):
    """What a stream hands its incoming body to: an ``HTTPCycle``, or an ``H2WebSocket``."""

    @property
    def body_done(self) -> bool: ...
    def on_body(self, data: bytes) -> None: ...
    def on_body_end(self) -> None: ...
    def on_disconnect(self, ended: str = CLIENT_LEFT) -> None: ...


class EventSink(Protocol):
    """A connection's sans-I/O protocol object, as far as a stream writes to it."""

    def send(self, event: Event) -> None: ...


class StreamHost(Protocol):
    """What a stream needs from its connection."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...
    @property
    def proto(self) -> EventSink: ...
    def body_wanted(self, stream: Any) -> None: ...
    def stream_finished(self, stream: Any) -> None: ...


C = TypeVar("C", bound=StreamHost)


@mypyc_attr(allow_interpreted_subclasses=True)  # http3.H3Stream is one
class StreamChannel(Channel, Generic[C]):
    """The ``Channel`` of one stream's cycle, on the connection ``conn``. See the module docstring."""

    __slots__ = (
        "conn",
        "loop",
        "stream_id",
        "cycle",
        "write_paused",
        "unacked",
        "received",
        "_waiter",
        "gone",
    )

    def __init__(self, conn: C, loop: asyncio.AbstractEventLoop, stream_id: int, write_paused: bool) -> None:
        self.conn = conn
        self.loop = loop
        self.stream_id = stream_id
        self.cycle: StreamCycle | None = None
        self.write_paused = write_paused
        self.unacked = 0  # body bytes received and not yet read by the app
        self.received = 0
        self._waiter: asyncio.Future[None] | None = None
        self.gone = False

    def send_event(self, event: Event) -> None:
        self.conn.proto.send(event)

    async def send_file(self, stream_id: int, fd: int, offset: int, count: int) -> None:
        await read_file_into(self, stream_id, fd, offset, count)

    async def drain(self) -> None:
        while self.write_paused and not self.gone:
            waiter = self._waiter = self.loop.create_future()
            await waiter
        if self.gone:
            raise ClientDisconnected("stream reset")

    def wake(self, exc: Exception | None = None) -> None:
        """Let a ``drain()`` waiting on this stream go on (or raise ``exc``)."""
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                if exc is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(exc)

    def body_wanted(self, cycle: HTTPCycle) -> None:
        self.conn.body_wanted(self)

    def cycle_finished(self, cycle: HTTPCycle) -> None:
        self.conn.stream_finished(self)

    # Each version's own, the rest of ``Channel``: ``flush`` (and pause the stream if the client
    # holds too much of it back), ``flush_soon``, ``body_consumed`` (give the client its credit
    # back), ``response_complete``, ``abort`` (reset the stream).

    def disconnect(self, exc: Exception, ended: str = CLIENT_LEFT) -> None:
        """The stream is gone (reset, timed out, connection lost); ``ended`` says why, for the log;
        a waiting ``drain()`` raises ``exc``."""
        self.gone = True
        if self.cycle is not None:
            self.cycle.on_disconnect(ended)
        self.wake(exc)
