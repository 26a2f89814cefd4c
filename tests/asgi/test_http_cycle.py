"""The ASGI HTTP cycle driven through a fake channel: messages in, protocol events out."""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

import pytest

from squall.asgi.http import Channel, HTTPCycle, build_scope, read_file_into, validate_headers
from squall.asgi.types import ASGIMessageError, ClientDisconnected
from squall.events import Data, Event, Informational, Request, Response
from squall.observe.access import AccessLog
from squall.observe.hooks import Observer


class FakeChannel(Channel):
    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.write_paused = False
        self.sent: list[Event] = []
        self.flushes = 0
        self.soon = 0
        self.aborted = False
        self.completed = False
        self.finished = asyncio.Event()
        self.consumed = 0

    def send_event(self, event: Event) -> None:
        self.sent.append(event)

    def flush(self) -> None:
        self.flushes += 1

    def flush_soon(self) -> None:
        self.soon += 1

    async def drain(self) -> None:
        return None

    async def send_file(self, stream_id: int, fd: int, offset: int, count: int) -> None:
        await read_file_into(self, stream_id, fd, offset, count)

    def body_wanted(self, cycle: HTTPCycle) -> None:
        pass

    def body_consumed(self, cycle: HTTPCycle) -> None:
        self.consumed += 1

    def response_complete(self, cycle: HTTPCycle) -> None:
        self.completed = True

    def cycle_finished(self, cycle: HTTPCycle) -> None:
        self.finished.set()

    def abort(self) -> None:
        self.aborted = True


def make_scope(method: str = "GET", raw_path: bytes = b"/", root_path: str = "") -> dict[str, Any]:
    template = {"type": "http", "client": ("1.2.3.4", 5), "state": {"k": "v"}}
    request = Request(1, method, raw_path, b"q=1", "1.1", [(b"host", b"h")])
    return dict(build_scope(template, request, root_path))


async def run(
    app: Any, *, method: str = "GET", body: list[bytes] | None = None, expect_continue: bool = False
) -> FakeChannel:
    channel = FakeChannel()
    cycle = HTTPCycle(channel, app, make_scope(method), 1, expect_continue=expect_continue)
    cycle.start()
    for chunk in body or []:
        cycle.on_body(chunk)
    cycle.on_body_end()
    await asyncio.wait_for(channel.finished.wait(), 5)
    return channel


def start(status: int = 200, headers: list[Any] | None = None) -> dict[str, Any]:
    return {"type": "http.response.start", "status": status, "headers": headers or []}


def body(data: bytes = b"", more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


def test_build_scope_decodes_path_and_copies_state() -> None:
    template = {"type": "http", "state": {"a": 1}}
    request = Request(1, "GET", b"/caf%C3%A9/x%2Fy", b"", "1.1", [])
    scope = build_scope(template, request, "/root")
    assert scope["path"] == "/root/café/x/y"
    assert scope["raw_path"] == b"/root/caf%C3%A9/x%2Fy"
    scope["state"]["a"] = 2
    assert template["state"] == {"a": 1}


def test_validate_headers_names_the_problem() -> None:
    assert validate_headers([(b"X-A", b"1")]) == [(b"x-a", b"1")]
    with pytest.raises(ASGIMessageError, match="name and value must be bytes"):
        validate_headers([("x", b"1")])
    with pytest.raises(ASGIMessageError, match="invalid header name"):
        validate_headers([(b"bad name", b"1")])
    with pytest.raises(ASGIMessageError, match="CR, LF"):
        validate_headers([(b"x", b"a\r\nb")])
    with pytest.raises(ASGIMessageError, match="not a \\[name, value\\] pair"):
        validate_headers([(b"x",)])


@pytest.mark.parametrize(
    "make",
    [
        lambda pairs: [tuple(p) for p in pairs],
        lambda pairs: [list(p) for p in pairs],
        lambda pairs: tuple(tuple(p) for p in pairs),
        lambda pairs: (tuple(p) for p in pairs),
        lambda pairs: [tuple(p) if i % 2 else list(p) for i, p in enumerate(pairs)],
    ],
    ids=["list-of-tuples", "list-of-lists", "tuple", "generator", "mixed"],
)
def test_validate_headers_takes_any_iterable_of_pairs_twice_alike(make: Any) -> None:
    # The first call validates the names one by one; the second finds them known (the fast
    # paths for a list and for other iterables): both answer the same, and bad pairs still fail.
    pairs = [(b"X-Shape-Test", b"1"), (b"Content-Type", b"text/plain")]
    expected = [(b"x-shape-test", b"1"), (b"content-type", b"text/plain")]
    assert validate_headers(make(pairs)) == expected
    assert validate_headers(make(pairs)) == expected
    assert validate_headers(make([(b"X-Shape-Test", bytearray(b"2"))])) == [(b"x-shape-test", b"2")]
    with pytest.raises(ASGIMessageError, match="not a \\[name, value\\] pair"):
        validate_headers(make([(b"X-Shape-Test", b"1", b"2")]))
    with pytest.raises(ASGIMessageError, match="CR, LF"):
        validate_headers(make([(b"X-Shape-Test", b"a\nb")]))


async def test_single_body_gets_content_length_and_one_flush() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(start(200, [(b"content-type", b"text/plain")]))
        await send(body(b"hello"))

    channel = await run(app)
    response, data = channel.sent
    assert isinstance(response, Response) and (b"content-length", b"5") in response.headers
    assert isinstance(data, Data) and data.end and data.data == b"hello"
    assert channel.completed and not channel.aborted


async def test_streaming_body_has_no_computed_length() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(start())
        await send(body(b"a", more=True))
        await send(body(b"b"))

    channel = await run(app)
    response = channel.sent[0]
    assert isinstance(response, Response) and not any(n == b"content-length" for n, _ in response.headers)
    assert [e.data for e in channel.sent[1:] if isinstance(e, Data)] == [b"a", b"b"]


async def test_receive_body_then_disconnect_after_response() -> None:
    got: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append(await receive())
        await send(start())
        await send(body())
        got.append(await receive())

    await run(app, method="POST", body=[b"ab", b"cd"])
    assert got == [{"type": "http.request", "body": b"abcd", "more_body": False}, {"type": "http.disconnect"}]


async def test_bodies_of_requests_one_after_another_stay_apart() -> None:
    # A cycle starts with a shared empty chunk list (most requests have no body) and makes its
    # own on the first chunk: no body may reach another request.
    got: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append(await receive())
        await send(start())
        await send(body())

    await run(app, method="POST", body=[b"first"])
    await run(app, method="GET")
    await run(app, method="POST", body=[b"se", b"cond"])
    assert [message["body"] for message in got] == [b"first", b"", b"second"]


async def test_expect_continue_sent_only_on_receive() -> None:
    async def reads(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(start())
        await send(body())

    async def ignores(scope: Any, receive: Any, send: Any) -> None:
        await send(start())
        await send(body())

    channel = FakeChannel()
    cycle = HTTPCycle(channel, reads, make_scope("POST"), 1, expect_continue=True)
    cycle.start()
    await asyncio.sleep(0)
    assert isinstance(channel.sent[0], Informational) and channel.sent[0].status == 100
    cycle.on_body_end()
    await asyncio.wait_for(channel.finished.wait(), 5)
    assert not any(isinstance(e, Informational) for e in (await run(ignores, expect_continue=True)).sent)


@pytest.mark.parametrize(
    ("messages", "problem"),
    [
        ([body()], "expected 'http.response.start'"),
        ([{"type": b"http.response.start"}], "expected 'http.response.start', got b'http"),
        ([{"type": None}], "expected 'http.response.start', got None"),
        ([{"no": "type"}], "message must be a dict with a 'type' key"),
        ([["http.response.start"]], "message must be a dict with a 'type' key"),
        ([None], "message must be a dict with a 'type' key"),
        ([start(status="200")], "'status' must be an int"),  # type: ignore[arg-type]
        ([start(status=99)], "'status' must be an int"),
        ([start(status=True)], "'status' must be an int"),
        ([start(headers=[(b"x", "str")])], "must be bytes"),
        ([start(), {"type": "http.response.body", "body": "text"}], "'body' must be bytes"),
        ([start(), {"type": "http.response.body", "more_body": 1}], "'more_body' must be a bool"),
        ([start(headers=[(b"content-length", b"abc")])], "invalid Content-Length"),
    ],
)
async def test_invalid_messages_before_body_give_500(
    messages: list[Any], problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        for message in messages:
            await send(message)

    channel = await run(app)
    # The head waits for the first body chunk, so even a bad body message can still get a 500.
    response = channel.sent[0]
    assert isinstance(response, Response) and response.status == 500
    assert not channel.aborted
    assert problem in caplog.text


async def test_raise_before_start_is_500_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("boom")

    channel = await run(app)
    assert isinstance(channel.sent[0], Response) and channel.sent[0].status == 500
    assert "Exception in ASGI application" in caplog.text and "boom" in caplog.text


async def test_raise_after_start_aborts() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(start())
        await send(body(b"x", more=True))
        raise ValueError("late")

    assert (await run(app)).aborted


async def test_return_without_response_is_500(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    channel = await run(app)
    assert isinstance(channel.sent[0], Response) and channel.sent[0].status == 500
    assert "without starting a response" in caplog.text


async def test_content_length_enforced() -> None:
    async def longer(scope: Any, receive: Any, send: Any) -> None:
        await send(start(200, [(b"content-length", b"2")]))
        await send(body(b"abc"))

    async def longer_later(scope: Any, receive: Any, send: Any) -> None:
        await send(start(200, [(b"content-length", b"2")]))
        await send(body(b"a", more=True))
        await send(body(b"bc"))

    channel = await run(longer)
    assert not any(isinstance(e, Data) and e.data == b"abc" for e in channel.sent)
    assert isinstance(channel.sent[0], Response) and channel.sent[0].status == 500
    channel = await run(longer_later)
    assert [e.data for e in channel.sent if isinstance(e, Data)] == [b"a"]
    assert channel.aborted


async def test_send_after_disconnect_raises_oserror(caplog: pytest.LogCaptureFixture) -> None:
    raised: list[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "http.request"
        assert (await receive())["type"] == "http.disconnect"
        try:
            await send(start())
        except OSError as exc:
            raised.append(exc)
            raise

    channel = FakeChannel()
    cycle = HTTPCycle(channel, app, make_scope(), 1)
    cycle.start()
    cycle.on_body_end()
    await asyncio.sleep(0)
    cycle.on_disconnect()
    await asyncio.wait_for(channel.finished.wait(), 5)
    assert raised and isinstance(raised[0], ClientDisconnected)
    assert "ERROR" not in caplog.text


async def test_message_after_completion_is_an_error(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(start())
        await send(body())
        await send(body())

    await run(app)
    assert "already complete" in caplog.text


def make_scope_with(headers: list[tuple[bytes, bytes]], method: str = "GET") -> dict[str, Any]:
    request = Request(1, method, b"/", b"", "1.1", [(b"host", b"h"), *headers])
    return dict(build_scope({"type": "http", "client": None}, request, ""))


async def run_scope(app: Any, scope: dict[str, Any]) -> FakeChannel:
    channel = FakeChannel()
    cycle = HTTPCycle(channel, app, scope, 1)
    cycle.start()
    cycle.on_body_end()
    await asyncio.wait_for(channel.finished.wait(), 5)
    return channel


async def test_early_hint_before_the_head_leaves() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.early_hint", "links": [b"</a.css>; rel=preload"]})
        await send(start())
        await send({"type": "http.response.early_hint", "links": [b"</b.js>; rel=preload"]})
        await send(body(b"x", more=True))
        await send({"type": "http.response.early_hint", "links": [b"</late>"]})  # ignored
        await send(body())

    channel = await run(app)
    hints = [e for e in channel.sent if isinstance(e, Informational)]
    assert [h.status for h in hints] == [103, 103]
    assert hints[0].headers == [(b"link", b"</a.css>; rel=preload")]
    assert channel.sent.index(hints[1]) < next(
        i for i, e in enumerate(channel.sent) if isinstance(e, Response)
    )


class BytesSubclass(bytes):
    pass


@pytest.mark.parametrize("data", [BytesSubclass(b"abc"), bytearray(b"abc"), memoryview(b"abc")])
async def test_a_bytes_like_body_is_sent_as_bytes(data: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(start())
        await send({"type": "http.response.body", "body": data})

    sent = (await run(app)).sent
    assert isinstance(sent[0], Response) and sent[0].status == 200
    assert isinstance(sent[1], Data) and type(sent[1].data) is bytes and sent[1].data == b"abc"


async def test_early_hint_links_from_a_generator_are_all_sent() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        links = (link for link in [b"</a.css>", b"</b.js>"])
        await send({"type": "http.response.early_hint", "links": links})
        await send(start())
        await send(body())

    hint = (await run(app)).sent[0]
    assert isinstance(hint, Informational)
    assert hint.headers == [(b"link", b"</a.css>"), (b"link", b"</b.js>")]


@pytest.mark.parametrize("links", [None, 5, b"</a>", [b"</a>", "</b>"]])
async def test_early_hint_links_not_an_iterable_of_bytes_is_a_500(
    links: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.early_hint", "links": links})

    response = (await run(app)).sent[0]
    assert isinstance(response, Response) and response.status == 500
    assert "'links' of http.response.early_hint must be an iterable of bytes" in caplog.text


@pytest.mark.parametrize("te", [True, False])
async def test_trailers_only_to_a_client_that_takes_them(te: bool) -> None:
    from squall.events import Trailers

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send(body(b"data"))
        await send({"type": "http.response.trailers", "headers": [(b"x-a", b"1")], "more_trailers": True})
        await send({"type": "http.response.trailers", "headers": [(b"x-b", b"2")]})

    channel = await run_scope(app, make_scope_with([(b"te", b"trailers")] if te else []))
    response = channel.sent[0]
    assert isinstance(response, Response) and not any(n == b"content-length" for n, _ in response.headers)
    assert isinstance(channel.sent[1], Data) and not channel.sent[1].end
    last = channel.sent[-1]
    if te:
        assert isinstance(last, Trailers) and last.headers == [(b"x-a", b"1"), (b"x-b", b"2")]
    else:
        assert isinstance(last, Data) and last.end and last.data == b""
    assert channel.completed


async def test_pathsend_streams_the_file_with_its_length(tmp_path: Any) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB: several chunks
    path = tmp_path / "file.bin"
    path.write_bytes(payload)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert "http.response.pathsend" in scope["extensions"]
        await send(start())
        await send({"type": "http.response.pathsend", "path": str(path)})

    scope = make_scope_with([])
    scope["extensions"] = {"http.response.pathsend": {}}
    channel = await run_scope(app, scope)
    response = channel.sent[0]
    assert (
        isinstance(response, Response) and (b"content-length", str(len(payload)).encode()) in response.headers
    )
    data = [e for e in channel.sent if isinstance(e, Data)]
    assert b"".join(e.data for e in data) == payload and data[-1].end and len(data) > 1


async def test_pathsend_of_a_missing_file_is_a_500(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(start())
        await send({"type": "http.response.pathsend", "path": "/nonexistent/squall-test"})

    channel = await run(app)
    assert isinstance(channel.sent[0], Response) and channel.sent[0].status == 500
    assert "cannot open" in caplog.text


async def test_an_int_subclass_status_is_its_int_value() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(start(status=HTTPStatus.CREATED))
        await send(body(b"made"))

    channel = await run(app)
    response = channel.sent[0]
    assert isinstance(response, Response) and response.status == 201 and type(response.status) is int


@pytest.mark.parametrize(
    ("key", "value"), [("path", b"/bytes"), ("query_string", "q=str"), ("client", ("host",)), ("path", None)]
)
async def test_an_app_that_changes_the_scope_still_gets_its_access_line(
    key: str, value: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope[key] = value
        await send(start())
        await send(body(b"x"))

    channel = FakeChannel()
    cycle = HTTPCycle(channel, app, make_scope(), 1, observer=Observer(AccessLog()))
    caplog.set_level("INFO")
    cycle.start()
    cycle.on_body_end()
    await asyncio.wait_for(channel.finished.wait(), 5)
    assert channel.completed
    assert [r.levelname for r in caplog.records] == ["INFO"], caplog.text
    record = caplog.records[0]
    assert record.getMessage().endswith(" 200")
    assert (record.status, record.response_bytes) == (200, 1)


class ScopeMakingChannel(FakeChannel):
    """A channel that makes the scope itself, as HTTP/1.1's connection does."""

    def __init__(self) -> None:
        super().__init__()
        self.made: list[Request] = []

    def make_scope(self, request: Request) -> dict[str, Any]:
        self.made.append(request)
        return build_scope({"type": "http", "client": ("1.2.3.4", 5)}, request, "")


async def test_a_cycle_without_a_scope_makes_it_once_when_its_app_starts() -> None:
    channel = ScopeMakingChannel()
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)
        await send(start())
        await send({"type": "http.response.body", "body": b"x"})

    request = Request(1, "HEAD", b"/p", b"", "1.1", [(b"host", b"h")])
    cycle = HTTPCycle(channel, app, None, 1, request=request)
    assert channel.made == []  # not when the request is read
    cycle.start()
    assert channel.made == []  # nor when its task is made: when the task runs
    await asyncio.wait_for(channel.finished.wait(), 5)
    assert channel.made == [request]
    assert seen == [cycle.scope]
    assert cycle.scope["method"] == "HEAD"
    assert cycle.scope["path"] == "/p"
    assert channel.made == [request]  # made once
    assert isinstance(channel.sent[0], Response)


async def test_a_cycle_that_never_ran_still_has_a_scope_for_its_access_line() -> None:
    channel = ScopeMakingChannel()
    lines: list[Any] = []

    class Log(AccessLog):
        def write(self, record: Any) -> None:
            lines.append(record)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not started")

    request = Request(1, "POST", b"/upload", b"", "1.1", [])
    cycle = HTTPCycle(channel, app, None, 1, request=request, observer=Observer(Log()))
    cycle.on_disconnect("rejected")  # e.g. a body over the limit, before the app started
    assert [line.scope["path"] for line in lines] == ["/upload"]
    assert channel.made == [request]
