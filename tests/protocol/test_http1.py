"""HTTP/1.1 protocol core: bytes in, events out; responses checked with h11 as the client peer."""

from __future__ import annotations

import h11
import pytest

from squall.events import Body, Data, EndBody, Informational, Rejected, Request, Response
from squall.protocol.http1 import HTTP1Server, LocalProtocolError


def server(**kwargs: object) -> HTTP1Server:
    kwargs.setdefault("default_headers", lambda: b"server: test\r\n")
    return HTTP1Server(**kwargs)  # type: ignore[arg-type]


def client_request(
    method: str = "GET",
    target: str = "/",
    headers: list[tuple[str, str]] | None = None,
    body: bytes | None = None,
) -> tuple[h11.Connection, bytes]:
    peer = h11.Connection(h11.CLIENT)
    hdrs = [("Host", "example.com"), *(headers or [])]
    if body is not None:
        hdrs.append(("Content-Length", str(len(body))))
    data = peer.send(h11.Request(method=method, target=target, headers=hdrs))
    if body is not None:
        data += peer.send(h11.Data(data=body))
    data += peer.send(h11.EndOfMessage())
    return peer, data


def client_events(peer: h11.Connection, data: bytes) -> list[object]:
    peer.receive_data(data)
    events = []
    while True:
        event = peer.next_event()
        if event in (h11.NEED_DATA, h11.PAUSED):
            return events
        events.append(event)


# ---------------------------------------------------------------- requests


def test_simple_get_events() -> None:
    proto = server()
    events = proto.receive_data(b"GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nX-Y: 1\r\nX-Y: 2\r\n\r\n")
    assert events == [
        Request(1, "GET", b"/a%20b", b"x=1", "1.1", [(b"host", b"h"), (b"x-y", b"1"), (b"x-y", b"2")]),
        EndBody(1),
    ]


def test_request_split_byte_by_byte() -> None:
    proto = server()
    raw = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
    events = [e for i in range(len(raw)) for e in proto.receive_data(raw[i : i + 1])]
    request = events[0]
    assert isinstance(request, Request) and request.raw_path == b"/p"
    assert b"".join(e.data for e in events if isinstance(e, Body)) == b"hello"
    assert events[-1] == EndBody(1)


def test_chunked_body_and_trailers_dropped() -> None:
    proto = server()
    events = proto.receive_data(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    request = events[0]
    assert isinstance(request, Request)
    assert (b"x-trailer", b"t") not in request.headers
    assert [e.data for e in events if isinstance(e, Body)] == [b"abc", b"de"]
    assert events[-1] == EndBody(1)


def test_pipelined_requests_get_increasing_stream_ids() -> None:
    proto = server()
    events = proto.receive_data(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert [(type(e).__name__, e.stream_id) for e in events] == [
        ("Request", 1),
        ("EndBody", 1),
        ("Request", 2),
        ("EndBody", 2),
    ]


def test_header_values_lose_surrounding_whitespace() -> None:
    proto = server()
    (request, _) = proto.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\nX:  a b \t\r\n\r\n")
    assert isinstance(request, Request) and request.headers[1] == (b"x", b"a b")


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        (b"http://ex.com/p/q?z=1", b"/p/q", b"z=1"),
        # httptools' URL says its parts are bytes, but an absent one is None (compiled code checks)
        (b"http://ex.com/p", b"/p", b""),
        (b"http://ex.com", b"/", b""),
        (b"https://ex.com:8443?z=1", b"/", b"z=1"),
    ],
)
def test_absolute_form_target(target: bytes, path: bytes, query: bytes) -> None:
    proto = server()
    (request, _) = proto.receive_data(b"GET " + target + b" HTTP/1.1\r\nHost: ex.com\r\n\r\n")
    assert isinstance(request, Request)
    assert (request.raw_path, request.query_string) == (path, query)


@pytest.mark.parametrize(
    ("target", "host"),
    [
        (b"http://a.example/p", b"a.example"),
        (b"http://a.example:8080?z=1", b"a.example:8080"),
        (b"https://[::1]:8443/x", b"[::1]:8443"),
    ],
)
def test_absolute_form_authority_replaces_the_host_field(target: bytes, host: bytes) -> None:
    """RFC 9112 §3.2.2: the origin server ignores Host and uses the target's authority."""
    request = server().receive_data(b"GET " + target + b" HTTP/1.1\r\nHost: other.example\r\nX: 1\r\n\r\n")[0]
    assert isinstance(request, Request)
    assert request.headers == [(b"host", host), (b"x", b"1")]
    request = server().receive_data(b"GET " + target + b" HTTP/1.0\r\n\r\n")[0]  # 1.0: no Host needed
    assert isinstance(request, Request) and request.headers == [(b"host", host)]


def test_userinfo_in_an_absolute_form_target_is_rejected() -> None:
    """RFC 9110 §4.2.4: a recipient treats userinfo in an http(s) URI as an error."""
    events = server().receive_data(b"GET http://u:p@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n")
    assert isinstance(events[-1], Rejected) and events[-1].status == 400


def test_an_unknown_method_is_501_only_where_it_can_be_read() -> None:
    """The method of a failed request is read off the chunk only when the request starts it;
    after a valid request in the same chunk, squall cannot tell where it starts: 400."""
    first = server().receive_data(b"\r\nBREW / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert first == [Rejected(1, 501, "unsupported method b'BREW'")]
    events = server().receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\nFOO@ / HTTP/1.1\r\n\r\n")
    assert isinstance(events[-1], Rejected) and (events[-1].status, events[-1].stream_id) == (400, 2)


@pytest.mark.parametrize("target", [b"/p#frag", b"/p?q=1#frag", b"/p#frag?q=1", b"http://h/p#f", b"/#"])
def test_a_fragment_in_the_target_is_400(target: bytes) -> None:
    """RFC 9112 §3.2: a request-target has no fragment; squall used to drop it silently."""
    proto = server()
    events = proto.receive_data(b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    assert events == [Rejected(1, 400, "a fragment (#) in the request target")]
    assert proto.data_to_send().startswith(b"HTTP/1.1 400 ") and proto.input_closed


@pytest.mark.parametrize(
    "raw",
    [
        b"THIS IS NOT HTTP\r\n\r\n",
        b"BREW / HTTX/1.1\r\nHost: h\r\n\r\n",
        b"BREW  / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"BREW / HTTP/1.1 x\r\nHost: h\r\n\r\n",
        b"BREW /",  # the line is not complete: squall cannot tell it is well-formed
    ],
)
def test_a_malformed_request_line_is_400_not_501(raw: bytes) -> None:
    """501 says "a request I understood, with a method I do not implement": only for a request
    line that is well-formed (``METHOD SP target SP HTTP/d.d``)."""
    assert server().receive_data(raw) == [Rejected(1, 400, "malformed request line")]


@pytest.mark.parametrize("target", [b"example.com:443", b"/", b"*"])
def test_connect_is_501_and_never_reaches_the_app(target: bytes) -> None:
    """RFC 9110 §9.3.6: a 2xx to CONNECT means "tunnel established" to every proxy in between."""
    proto = server(upgrades=frozenset((b"websocket", b"h2c", b"connect")))
    events = proto.receive_data(b"CONNECT " + target + b" HTTP/1.1\r\nHost: example.com:443\r\n\r\nxyz")
    assert events == [Rejected(1, 501, "CONNECT is not served (squall opens no tunnels)")]
    assert proto.data_to_send().startswith(b"HTTP/1.1 501 ") and proto.input_closed


def test_expect_continue_flag() -> None:
    proto = server()
    (request,) = proto.receive_data(
        b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    )
    assert isinstance(request, Request) and request.expect_continue


def test_http10_request() -> None:
    proto = server()
    (request, _) = proto.receive_data(b"GET / HTTP/1.0\r\n\r\n")
    assert isinstance(request, Request) and request.http_version == "1.0"


def test_unhonoured_upgrade_is_plain_http_with_its_body() -> None:
    proto = server()
    events = proto.receive_data(
        b"POST / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: foo\r\nContent-Length: 3\r\n\r\n"
        b"abcGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    assert [type(e).__name__ for e in events] == ["Request", "Body", "EndBody", "Request", "EndBody"]
    assert isinstance(events[0], Request) and events[0].upgrade is None
    assert isinstance(events[1], Body) and events[1].data == b"abc"


def test_honoured_upgrade_stops_parsing_and_keeps_trailing_bytes() -> None:
    proto = server(upgrades=frozenset({b"websocket"}))
    events = proto.receive_data(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x00"
    )
    assert isinstance(events[0], Request) and events[0].upgrade == b"websocket"
    assert proto.trailing_data == b"\x81\x00"
    assert proto.input_closed


def test_data_after_connection_close_is_ignored() -> None:
    proto = server()
    events = proto.receive_data(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    assert [type(e).__name__ for e in events] == ["Request", "EndBody"]
    assert proto.input_closed


# ---------------------------------------------------------------- malformed input


MALFORMED = [
    ("bad request line", b"GARBAGE\r\n\r\n", 400),
    ("space in target", b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    ("unknown method", b"FROB / HTTP/1.1\r\nHost: h\r\n\r\n", 501),
    ("lowercase method", b"get / HTTP/1.1\r\nHost: h\r\n\r\n", 501),
    ("binary garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),
    ("HTTP/1.2", b"GET / HTTP/1.2\r\nHost: h\r\n\r\n", 400),
    ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
    ("HTTP/0.9", b"GET /\r\n\r\n", 400),
    ("header without colon", b"GET / HTTP/1.1\r\nHost: h\r\nfoo\r\n\r\n", 400),
    ("space before colon", b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400),
    ("NUL in value", b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n", 400),
    ("CTL in value", b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x07b\r\n\r\n", 400),
    ("bare CR", b"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", 400),
    ("bare LF", b"GET / HTTP/1.1\nHost: h\n\n", 400),
    ("missing Host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two Hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("invalid Host", b"GET / HTTP/1.1\r\nHost: a b/c\r\n\r\n", 400),
    (
        "two Content-Lengths",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        400,
    ),
    (
        "same Content-Length twice",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na",
        400,
    ),
    ("Content-Length list", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1\r\n\r\na", 400),
    ("negative Content-Length", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400),
    ("hex Content-Length", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x1\r\n\r\n", 400),
    (
        "Content-Length overflow",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        400,
    ),
    (
        "CL and TE",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    ),
    ("TE gzip", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    ("TE chunked, gzip", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
    (
        "TE chunked twice",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    ),
    ("TE gzip, chunked", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    ("TE xchunked", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", 400),
    ("TE on HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("Expect other", b"GET / HTTP/1.1\r\nHost: h\r\nExpect: magic\r\n\r\n", 417),
    ("absolute-form non-http", b"GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    (
        "upgrade with chunked body",
        b"POST / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    ),
]


@pytest.mark.parametrize(
    ("raw", "status"), [(raw, status) for _, raw, status in MALFORMED], ids=[name for name, _, _ in MALFORMED]
)
def test_malformed_request_is_rejected(raw: bytes, status: int) -> None:
    proto = server()
    events = proto.receive_data(raw)
    assert not any(isinstance(e, Request) for e in events)
    assert isinstance(events[-1], Rejected) and events[-1].status == status
    output = proto.data_to_send()
    assert output.startswith(b"HTTP/1.1 %d " % status)
    assert b"connection: close\r\n" in output
    assert proto.input_closed and not proto.keep_alive
    assert proto.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n") == []


BAD_CHUNKS = [
    ("invalid chunk size", b"zz\r\nabc\r\n0\r\n\r\n"),
    ("chunk size overflow", b"fffffffffffffffffffff\r\nabc\r\n0\r\n\r\n"),
    ("missing CRLF after chunk", b"3\r\nabcX0\r\n\r\n"),
    ("space after chunk size", b"3 \r\nabc\r\n0\r\n\r\n"),
]


@pytest.mark.parametrize("chunks", [c for _, c in BAD_CHUNKS], ids=[n for n, _ in BAD_CHUNKS])
def test_malformed_chunked_body_becomes_the_response(chunks: bytes) -> None:
    proto = server()
    events = proto.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
    assert isinstance(events[0], Request)
    assert isinstance(events[-1], Rejected) and events[-1].status == 400
    assert proto.data_to_send().startswith(b"HTTP/1.1 400 ")
    with pytest.raises(LocalProtocolError):
        proto.send(Response(1, 200, []))


@pytest.mark.parametrize(
    "limits", [{}, {"max_request_line": None, "max_head_size": None}], ids=["default", "off"]
)
def test_a_target_spanning_many_reads_arrives_whole(limits: dict[str, object]) -> None:
    path = b"/" + b"/".join(b"segment%d" % n for n in range(300))
    query = b"q=" + b"x" * 500
    request = b"GET " + path + b"?" + query + b" HTTP/1.1\r\nHost: h\r\n\r\n"
    proto = server(**limits)
    events: list[object] = []
    for at in range(0, len(request), 7):  # every read carries a piece of the target
        events += proto.receive_data(request[at : at + 7])
    [first, *_] = events
    assert isinstance(first, Request)
    assert (first.raw_path, first.query_string, first.http_version) == (path, query, "1.1")
    again = proto.receive_data(b"GET /next?a HTTP/1.1\r\nHost: h\r\n\r\n")  # nothing left over
    assert [(e.raw_path, e.query_string) for e in again if isinstance(e, Request)] == [(b"/next", b"a")]


def test_limits() -> None:
    long_target = server(max_request_line=100).receive_data(b"GET /" + b"a" * 200 + b" HTTP/1.1\r\n")
    assert isinstance(long_target[-1], Rejected) and long_target[-1].status == 414
    many = b"".join(b"X-%d: v\r\n" % i for i in range(11))
    too_many = server(max_headers=10).receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n" + many + b"\r\n")
    assert isinstance(too_many[-1], Rejected) and too_many[-1].status == 431
    big = server(max_head_size=1000).receive_data(
        b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"v" * 2000 + b"\r\n\r\n"
    )
    assert isinstance(big[-1], Rejected) and big[-1].status == 431


@pytest.mark.parametrize("read_size", [65536, 262144, 1000, 7])
def test_pipelined_requests_are_not_counted_against_the_head_limit(read_size: int) -> None:
    """5,001 tiny pipelined GETs written at once: every one is a request (squall once answered a
    3,229th with 431, counting the bytes of the read before the head that began in it)."""
    proto = server()
    data = b"GET /p HTTP/1.1\r\nHost: h\r\nX-Filler: " + b"f" * 40 + b"\r\n\r\n"
    data *= 5001
    events = [
        e for at in range(0, len(data), read_size) for e in proto.receive_data(data[at : at + read_size])
    ]
    assert sum(isinstance(e, Request) for e in events) == 5001
    assert not any(isinstance(e, Rejected) for e in events)


def test_a_head_beginning_mid_read_is_still_limited() -> None:
    proto = server(max_head_size=1000)
    events = proto.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\nX: ")
    for _ in range(4):
        events += proto.receive_data(b"v" * 500)
    assert isinstance(events[-1], Rejected) and events[-1].status == 431


def test_unterminated_header_line_is_bounded() -> None:
    proto = server(max_head_size=1000)
    events = proto.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\nX: ")
    for _ in range(10):
        events += proto.receive_data(b"v" * 500)
    assert isinstance(events[-1], Rejected) and events[-1].status == 431


# ---------------------------------------------------------------- responses


def respond(
    proto: HTTP1Server, sid: int, status: int, headers: list[tuple[bytes, bytes]], *chunks: bytes
) -> bytes:
    proto.send(Response(sid, status, headers))
    for i, chunk in enumerate(chunks):
        proto.send(Data(sid, chunk, i == len(chunks) - 1))
    if not chunks:
        proto.send(Data(sid, b"", True))
    return proto.data_to_send()


def test_content_length_response_round_trip() -> None:
    peer, raw = client_request()
    proto = server()
    proto.receive_data(raw)
    out = respond(proto, 1, 200, [(b"content-length", b"5")], b"hel", b"lo")
    events = client_events(peer, out)
    assert isinstance(events[0], h11.Response) and events[0].status_code == 200
    assert (b"server", b"test") in events[0].headers
    assert b"".join(e.data for e in events if isinstance(e, h11.Data)) == b"hello"
    assert isinstance(events[-1], h11.EndOfMessage)
    assert proto.keep_alive and not proto.response_pending


def test_chunked_when_no_length() -> None:
    peer, raw = client_request()
    proto = server()
    proto.receive_data(raw)
    out = respond(proto, 1, 200, [], b"ab", b"", b"cd", b"")
    assert b"transfer-encoding: chunked" in out and out.endswith(b"0\r\n\r\n")
    events = client_events(peer, out)
    assert b"".join(e.data for e in events if isinstance(e, h11.Data)) == b"abcd"


def test_http10_close_delimited() -> None:
    proto = server()
    proto.receive_data(b"GET / HTTP/1.0\r\n\r\n")
    out = respond(proto, 1, 200, [], b"abc")
    assert b"transfer-encoding" not in out and b"connection: close" in out
    assert out.endswith(b"\r\n\r\nabc")
    assert not proto.keep_alive


def test_http10_keep_alive_with_length() -> None:
    proto = server()
    proto.receive_data(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    out = respond(proto, 1, 200, [(b"content-length", b"3")], b"abc")
    assert b"connection: keep-alive" in out and proto.keep_alive


@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304)])
def test_no_body_responses(method: str, status: int) -> None:
    peer, raw = client_request(method=method)
    proto = server()
    proto.receive_data(raw)
    out = respond(proto, 1, status, [(b"content-length", b"3")], b"abc")
    assert not out.endswith(b"abc") and b"transfer-encoding" not in out
    events = client_events(peer, out)
    assert isinstance(events[0], h11.Response) and events[0].status_code == status
    assert isinstance(events[-1], h11.EndOfMessage)


def test_app_connection_close_ends_keep_alive() -> None:
    _, raw = client_request()
    proto = server()
    proto.receive_data(raw)
    respond(proto, 1, 200, [(b"connection", b"close"), (b"content-length", b"0")])
    assert not proto.keep_alive and proto.input_closed


def test_app_transfer_encoding_is_replaced_by_ours() -> None:
    proto = server()
    proto.receive_data(client_request()[1])
    out = respond(proto, 1, 200, [(b"transfer-encoding", b"chunked")], b"x", b"")
    assert out.count(b"transfer-encoding") == 1


def test_app_server_and_date_override_defaults() -> None:
    proto = server(default_headers=lambda: b"server: squall\r\ndate: D\r\n")
    proto.receive_data(client_request()[1])
    out = respond(proto, 1, 200, [(b"server", b"mine"), (b"content-length", b"0")])
    assert b"server: mine" in out and b"server: squall" not in out and b"date: D" in out


def test_responses_in_pipeline_order_only() -> None:
    proto = server()
    proto.receive_data(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
    with pytest.raises(LocalProtocolError):
        proto.send(Response(2, 200, []))
    respond(proto, 1, 200, [(b"content-length", b"0")])
    respond(proto, 2, 200, [(b"content-length", b"0")])
    assert not proto.response_pending


def test_unread_body_prevents_keep_alive() -> None:
    proto = server()
    proto.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
    respond(proto, 1, 413, [(b"content-length", b"0")])
    assert not proto.keep_alive


def test_continue_and_error_after_pipelined_response() -> None:
    proto = server()
    proto.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
    proto.send(Informational(1, 100))
    assert proto.data_to_send() == b"HTTP/1.1 100 Continue\r\n\r\n"
    proto.receive_data(b"aGET / HTTP/1.1\r\n\r\n")  # second request lacks Host
    assert proto.data_to_send() == b""  # the 400 waits for the first response
    out = respond(proto, 1, 200, [(b"content-length", b"0")])
    assert out.count(b"HTTP/1.1 ") == 2 and b"HTTP/1.1 400 " in out


def test_trailers_end_a_chunked_response() -> None:
    from squall.events import Trailers

    peer, raw = client_request(headers=[("TE", "trailers")])
    proto = server()
    proto.receive_data(raw)
    proto.send(Response(1, 200, [(b"trailer", b"x-checksum")]))
    proto.send(Data(1, b"abc", False))
    proto.send(Trailers(1, [(b"x-checksum", b"42")]))
    out = proto.data_to_send()
    assert out.endswith(b"0\r\nx-checksum: 42\r\n\r\n")
    events = client_events(peer, out)
    end = events[-1]
    assert isinstance(end, h11.EndOfMessage) and (b"x-checksum", b"42") in end.headers
    assert not proto.response_pending and proto.keep_alive


def test_trailers_are_dropped_when_the_framing_cannot_carry_them() -> None:
    from squall.events import Trailers

    proto = server()
    proto.receive_data(client_request()[1])
    proto.send(Response(1, 200, [(b"content-length", b"3")]))
    proto.send(Data(1, b"abc", False))
    proto.send(Trailers(1, [(b"x-checksum", b"42")]))
    out = proto.data_to_send()
    assert out.endswith(b"\r\n\r\nabc") and b"x-checksum" not in out
    assert not proto.response_pending


def test_body_over_the_limit_is_413() -> None:
    declared = server(max_body_size=100).receive_data(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n"
    )
    assert not any(isinstance(e, Request) for e in declared)
    assert isinstance(declared[-1], Rejected) and declared[-1].status == 413
    proto = server(max_body_size=100)
    events = proto.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    events += proto.receive_data(b"40\r\n" + b"x" * 64 + b"\r\n")
    events += proto.receive_data(b"40\r\n" + b"x" * 64 + b"\r\n")
    assert isinstance(events[0], Request)
    assert isinstance(events[-1], Rejected) and events[-1].status == 413
    assert proto.data_to_send().startswith(b"HTTP/1.1 413 ")
    at_limit = server(max_body_size=100).receive_data(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n" + b"x" * 100
    )
    assert isinstance(at_limit[-1], EndBody)


# ---------------------------------------------------------------- chunk extensions (CVE-2024-22019)

CHUNKED_HEAD = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"


def feed(proto: HTTP1Server, data: bytes, read_size: int | None) -> list[object]:
    if read_size is None:
        return list(proto.receive_data(data))
    return [e for at in range(0, len(data), read_size) for e in proto.receive_data(data[at : at + read_size])]


@pytest.mark.parametrize("read_size", [None, 7, 1000, 65536])
@pytest.mark.parametrize(
    "body",
    [
        b"2;" + b"e" * (1 << 20) + b"\r\nab\r\n0\r\n\r\n",  # one 1 MiB extension
        b"2;" + b"e" * 17000 + b"\r\nab\r\n0\r\n\r\n",  # just over the limit
        b"".join(b"1;" + b"e" * 6000 + b"\r\na\r\n" for _ in range(3)) + b"0\r\n\r\n",  # added up
        b"0" * 17000 + b"2\r\nab\r\n0\r\n\r\n",  # leading zeros
        b"2\r\nab\r\n0;" + b"e" * 17000 + b"\r\n\r\n",  # on the last chunk
    ],
    ids=["1MiB", "17000", "3x6000", "zeros", "last-chunk"],
)
def test_chunk_extensions_over_the_limit_are_400(body: bytes, read_size: int | None) -> None:
    proto = server()
    events = feed(proto, CHUNKED_HEAD + body, read_size)
    assert events[-1] == Rejected(1, 400, "chunk extensions too long")
    assert not any(isinstance(e, EndBody) for e in events)  # the app never sees a complete body
    assert proto.data_to_send().startswith(b"HTTP/1.1 400 ") and proto.input_closed


@pytest.mark.parametrize("read_size", [None, 7, 1000])
def test_chunk_framing_within_the_limit_is_served(read_size: int | None) -> None:
    """Only the bytes beyond each chunk's shortest size line count: a long body in tiny chunks, a
    few extensions, trailers and pipelined requests after it are all fine."""
    tiny = b"".join(b"1\r\n%c\r\n" % (65 + i % 26) for i in range(20000))
    body = b"3;name=value\r\nabc\r\n" + tiny + b"0\r\nX-Trailer: " + b"t" * 20000 + b"\r\n\r\n"
    after = b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n" * 3000
    proto = server()
    events = feed(proto, CHUNKED_HEAD + body + after, read_size)
    assert not any(isinstance(e, Rejected) for e in events)
    assert sum(len(e.data) for e in events if isinstance(e, Body)) == 3 + 20000
    assert sum(isinstance(e, Request) for e in events) == 3001


def test_a_pipelined_chunked_request_is_metered_from_its_next_read() -> None:
    """A chunked request that begins after another one in the same read: its start in that read
    is unknown, the following reads are counted."""
    proto = server()
    events = proto.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n" + CHUNKED_HEAD + b"2;")
    for _ in range(5):
        events += proto.receive_data(b"e" * 4000)
    assert events[-1] == Rejected(2, 400, "chunk extensions too long")


def test_a_trailer_field_in_progress_is_bounded_by_the_head_limit() -> None:
    """llhttp buffers a trailer field until its line ends: that too is counted."""
    proto = server(max_head_size=4096)
    events = proto.receive_data(CHUNKED_HEAD + b"2\r\nab\r\n0\r\nX-T: ")
    for _ in range(60):
        events += proto.receive_data(b"t" * 1000)
    assert events[-1] == Rejected(1, 431, "request trailers too large (over --limit-request-head)")
