"""The vocabulary shared by the wire protocols (``protocol/``) and the ASGI layer (``asgi/``).

Every event is a small slotted object keyed by ``stream_id`` (the request's sequence number on an
HTTP/1.1 connection, the stream id on HTTP/2). Incoming events are facts about what the peer sent;
outgoing events are what the application wants sent. Neither side knows the other's wire format.
"""

from __future__ import annotations

Headers = list[tuple[bytes, bytes]]


class Event:
    """Base class of every protocol event."""

    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _all_slots(type(self)))
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and all(
            getattr(self, name) == getattr(other, name) for name in _all_slots(type(self))
        )

    __hash__ = None  # type: ignore[assignment]


def _all_slots(cls: type) -> list[str]:
    """The attribute names of an event class, base class first, compiled (mypyc lists them in
    ``__mypyc_attrs__``) or not (``__slots__``)."""
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        own = klass.__dict__.get("__mypyc_attrs__") or klass.__dict__.get("__slots__", ())
        names.extend(name for name in own if not name.startswith("__") and name not in names)
    return names


# --- incoming: what the client sent -------------------------------------------------------------


class Request(Event):
    """A request head was received. ``target`` parts are raw bytes exactly as sent."""

    __slots__ = (
        "method",
        "raw_path",
        "query_string",
        "http_version",
        "headers",
        "expect_continue",
        "upgrade",
    )

    def __init__(
        self,
        stream_id: int,
        method: str,
        raw_path: bytes,
        query_string: bytes,
        http_version: str,
        headers: Headers,
        expect_continue: bool = False,
        upgrade: bytes | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.method = method
        self.raw_path = raw_path
        self.query_string = query_string
        self.http_version = http_version
        self.headers = headers
        self.expect_continue = expect_continue
        self.upgrade = upgrade


class Body(Event):
    """A chunk of request body arrived."""

    __slots__ = ("data",)

    def __init__(self, stream_id: int, data: bytes) -> None:
        self.stream_id = stream_id
        self.data = data


class EndBody(Event):
    """The request body is complete (also sent for requests without a body)."""

    __slots__ = ()


class Rejected(Event):
    """The peer sent something malformed; an error response has been queued and the connection
    must close once it is flushed. ``detail`` is for the error log, never for the client."""

    __slots__ = ("status", "detail")

    def __init__(self, stream_id: int, status: int, detail: str) -> None:
        self.stream_id = stream_id
        self.status = status
        self.detail = detail


# --- incoming, HTTP/2 only -------------------------------------------------------------------------


class StreamReset(Event):
    """A stream is gone: the client reset it (RST_STREAM), or the server did because of a protocol
    error in what the client sent on it. Its request is abandoned."""

    __slots__ = ("error_code",)

    def __init__(self, stream_id: int, error_code: int) -> None:
        self.stream_id = stream_id
        self.error_code = error_code


class PeerGoingAway(Event):
    """The client sent GOAWAY: it opens no more streams; ``stream_id`` is 0."""

    __slots__ = ("error_code",)

    def __init__(self, stream_id: int, error_code: int) -> None:
        self.stream_id = stream_id
        self.error_code = error_code


# --- outgoing: what the application sends --------------------------------------------------------


class Informational(Event):
    """A 1xx interim response (100 Continue, 103 Early Hints)."""

    __slots__ = ("status", "headers")

    def __init__(self, stream_id: int, status: int, headers: Headers | None = None) -> None:
        self.stream_id = stream_id
        self.status = status
        self.headers = headers or []


class Response(Event):
    """The final response head. Header names are lower-case and already validated."""

    __slots__ = ("status", "headers")

    def __init__(self, stream_id: int, status: int, headers: Headers) -> None:
        self.stream_id = stream_id
        self.status = status
        self.headers = headers


class Data(Event):
    """A chunk of response body; ``end`` marks the last one."""

    __slots__ = ("data", "end")

    def __init__(self, stream_id: int, data: bytes, end: bool) -> None:
        self.stream_id = stream_id
        self.data = data
        self.end = end


class Trailers(Event):
    """Response trailers: they end the response after its last body chunk."""

    __slots__ = ("headers",)

    def __init__(self, stream_id: int, headers: Headers) -> None:
        self.stream_id = stream_id
        self.headers = headers
