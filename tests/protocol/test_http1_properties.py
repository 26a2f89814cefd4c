"""Property tests: however input is split or garbled, the HTTP/1.1 core ends in a valid state."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from squall.events import Body, EndBody, Event, Rejected, Request
from squall.protocol.http1 import HTTP1Server

REQUESTS = [
    b"GET /a?b=c HTTP/1.1\r\nHost: h\r\nX: 1\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
    b"PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    # a 1.0 request that keeps the connection, with " HTTP/1.1\r\n" where a split head could
    # mislead a reader that looked at the wrong chunk for the version
    b"GET /ab HTTP/1.0\r\nConnection: keep-alive\r\nX: HTTP/1.1\r\n\r\n",
    b"\r\nGET /ab HTTP/1.1\r\nHost: h\r\n\r\n",  # a stray CRLF before a request is skipped
]


def feed(proto: HTTP1Server, data: bytes, cuts: list[int]) -> list[Event]:
    events: list[Event] = []
    start = 0
    for cut in sorted(set(cuts)):
        events += proto.receive_data(data[start:cut])
        start = cut
    events += proto.receive_data(data[start:])
    return events


def summary(events: list[Event]) -> list[tuple[str, object]]:
    """Events with bodies merged, so that different splits compare equal."""
    out: list[tuple[str, object]] = []
    for event in events:
        if isinstance(event, Body):
            if out and out[-1][0] == "body":
                out[-1] = ("body", out[-1][1] + event.data)  # type: ignore[operator]
            else:
                out.append(("body", event.data))
        elif isinstance(event, Request):
            fields = (event.method, event.raw_path, event.query_string, event.http_version, event.headers)
            out.append(("request", fields))
        else:
            out.append((type(event).__name__, event.stream_id))
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(REQUESTS), min_size=1, max_size=4),
    st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_any_split_of_pipelined_requests_gives_the_same_events(
    requests: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(requests)
    whole = summary(HTTP1Server().receive_data(data))
    split = summary(feed(HTTP1Server(), data, [c for c in cuts if c <= len(data)]))
    assert split == whole
    # an HTTP/1.0 request without keep-alive is the connection's last: later bytes are ignored
    served = next((i + 1 for i, r in enumerate(requests) if r == b"GET / HTTP/1.0\r\n\r\n"), len(requests))
    assert [kind for kind, _ in whole].count("request") == served
    assert [kind for kind, _ in whole].count("EndBody") == served
    versions = [fields[3] for kind, fields in whole if kind == "request"]  # type: ignore[index]
    assert versions == ["1.0" if b" HTTP/1.0\r\n" in r else "1.1" for r in requests[:served]]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=300), max_size=6))
def test_garbage_never_raises_and_ends_rejected_or_waiting(data: bytes, cuts: list[int]) -> None:
    proto = HTTP1Server()
    events = feed(proto, data, [c for c in cuts if c <= len(data)])
    rejected = [e for e in events if isinstance(e, Rejected)]
    assert len(rejected) <= 1
    if rejected:
        assert events[-1] is rejected[0]  # nothing is parsed after a rejection
        assert proto.input_closed and not proto.keep_alive
        assert proto.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n") == []
    for event in events:
        assert isinstance(event, Request | Body | EndBody | Rejected)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(REQUESTS), st.integers(min_value=0, max_value=200), st.binary(min_size=1, max_size=4))
def test_a_corrupted_byte_is_rejected_or_parsed_never_crashes(
    request: bytes, where: int, junk: bytes
) -> None:
    where = min(where, len(request))
    data = request[:where] + junk + request[where:]
    proto = HTTP1Server()
    events = proto.receive_data(data)
    requests = [e for e in events if isinstance(e, Request)]
    for req in requests:  # whatever was accepted is well formed
        assert req.method.isupper() and req.http_version in ("1.0", "1.1")
        assert all(name == name.lower() for name, _ in req.headers)
