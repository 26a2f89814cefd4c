"""The WSGI adapter driven with fake ``receive``/``send`` on a running loop."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from squall.asgi.types import ClientDisconnected, Message
from squall.asgi.wsgi import DaemonThreadPool, ErrorStream, InputStream, WSGIAdapter, build_environ

Environ = dict[str, Any]


def make_scope(
    method: str = "GET",
    path: str = "/",
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    root_path: str = "",
    **extra: Any,
) -> dict[str, Any]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.5"},
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "client": ("10.0.0.1", 5555),
        "root_path": root_path,
        "method": method,
        "path": root_path + path,
        "raw_path": (root_path + path).encode(),
        "query_string": query,
        "headers": headers if headers is not None else [(b"host", b"example.com")],
    }
    scope.update(extra)
    return scope


class Peer:
    """Fake ASGI server side: queued request messages in, sent messages recorded."""

    def __init__(self, body: list[bytes] | None = None, *, disconnect: bool = False) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        chunks = body if body is not None else [b""]
        for index, chunk in enumerate(chunks):
            more = index < len(chunks) - 1 or disconnect
            self.inbox.put_nowait({"type": "http.request", "body": chunk, "more_body": more})
        if disconnect:
            self.inbox.put_nowait({"type": "http.disconnect"})
        self.sent: list[dict[str, Any]] = []
        self.receives = 0
        self.completed = 0
        self.send_delay = 0
        self.send_error: BaseException | None = None
        self.receiving = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        self.receives += 1
        self.receiving.set()
        return await self.inbox.get()

    async def send(self, message: Message) -> None:
        assert threading.current_thread() is threading.main_thread()
        if self.send_error is not None:
            raise self.send_error
        self.sent.append(dict(message))
        for _ in range(self.send_delay):  # give a thread that did not wait a chance to race ahead
            await asyncio.sleep(0)
        self.completed += 1

    @property
    def start(self) -> dict[str, Any]:
        assert self.sent[0]["type"] == "http.response.start"
        return self.sent[0]

    @property
    def status(self) -> int:
        return int(self.start["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.start["headers"])

    @property
    def bodies(self) -> list[tuple[bytes, bool]]:
        return [(m["body"], m["more_body"]) for m in self.sent[1:]]

    @property
    def body(self) -> bytes:
        assert all(m["type"] == "http.response.body" for m in self.sent[1:])
        assert not self.sent[-1]["more_body"]
        return b"".join(m["body"] for m in self.sent[1:])


async def call(app: Any, peer: Peer | None = None, **scope: Any) -> Peer:
    peer = peer or Peer()
    adapter = WSGIAdapter(app, max_workers=2)
    try:
        await asyncio.wait_for(adapter(make_scope(**scope), peer.receive, peer.send), 10)
    finally:
        adapter.shutdown()
    return peer


def simple(body: bytes = b"hello", headers: list[tuple[str, str]] | None = None) -> Any:
    def app(environ: Environ, start_response: Any) -> list[bytes]:
        start_response("200 OK", headers or [("Content-Type", "text/plain")])
        return [body]

    return app


# ---------------------------------------------------------------------------- environ


async def test_environ_keys() -> None:
    seen: dict[str, Any] = {}

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        seen.update(environ)
        start_response("200 OK", [])
        return [b""]

    headers = [
        (b"host", b"example.com"),
        (b"content-type", b"text/plain"),
        (b"content-length", b"0"),
        (b"x-multi", b"a"),
        (b"x-multi", b"b"),
        (b"cookie", b"a=1"),
        (b"cookie", b"b=2"),
        (b"x_sneaky", b"dropped"),
        (b"accept", b"\xe9"),
    ]
    await call(
        app, method="POST", path="/caf\u00e9/x", query=b"q=%C3%A9&x=\xff", headers=headers, root_path="/api"
    )
    assert seen["REQUEST_METHOD"] == "POST"
    assert seen["SCRIPT_NAME"] == "/api"
    assert seen["PATH_INFO"] == "/caf\u00e9/x".encode().decode("latin-1")
    assert seen["QUERY_STRING"] == "q=%C3%A9&x=\xff"
    assert seen["SERVER_NAME"] == "127.0.0.1"
    assert seen["SERVER_PORT"] == "8000"
    assert seen["REMOTE_ADDR"] == "10.0.0.1"
    assert seen["REMOTE_PORT"] == "5555"
    assert seen["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert seen["CONTENT_TYPE"] == "text/plain"
    assert seen["CONTENT_LENGTH"] == "0"
    assert "HTTP_CONTENT_TYPE" not in seen and "HTTP_CONTENT_LENGTH" not in seen
    assert seen["HTTP_HOST"] == "example.com"
    assert seen["HTTP_X_MULTI"] == "a, b"
    assert seen["HTTP_COOKIE"] == "a=1; b=2"
    assert seen["HTTP_ACCEPT"] == "\xe9"
    assert "HTTP_X_SNEAKY" not in seen
    assert seen["wsgi.version"] == (1, 0)
    assert seen["wsgi.url_scheme"] == "http"
    assert isinstance(seen["wsgi.input"], InputStream)
    assert isinstance(seen["wsgi.errors"], ErrorStream)
    assert seen["wsgi.multithread"] is True
    assert seen["wsgi.multiprocess"] is False
    assert seen["wsgi.run_once"] is False
    for key, value in seen.items():
        if key.isupper():
            assert type(value) is str, key


def test_environ_unix_socket_and_defaults() -> None:
    scope = make_scope(server=("/tmp/squall.sock", None), client=None, scheme="https", http_version="1.0")
    environ = build_environ(scope, None)  # type: ignore[arg-type]
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("/tmp/squall.sock", "0")
    assert "REMOTE_ADDR" not in environ
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.0"
    environ = build_environ(make_scope(server=None, scheme="https"), None)  # type: ignore[arg-type]
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("localhost", "443")


def test_environ_path_equal_to_root_path() -> None:
    environ = build_environ(make_scope(path="", root_path="/api"), None)  # type: ignore[arg-type]
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/api", "")


# ---------------------------------------------------------------------------- request body


def reading_app(how: str) -> tuple[Any, list[Any]]:
    got: list[Any] = []

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        if how == "read":
            got.append(stream.read())
        elif how == "read-n":
            while chunk := stream.read(4):
                got.append(chunk)
        elif how == "readline":
            while line := stream.readline():
                got.append(line)
        elif how == "readline-n":
            got.append(stream.readline(3))
            got.append(stream.readline())
        elif how == "readlines":
            got.extend(stream.readlines())
        elif how == "iter":
            got.extend(stream)
        start_response("200 OK", [])
        return [b"ok"]

    return app, got


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("read", [b"ab\ncd\nef"]),
        ("read-n", [b"ab\nc", b"d\nef"]),
        ("readline", [b"ab\n", b"cd\n", b"ef"]),
        ("readline-n", [b"ab\n", b"cd\n"]),
        ("readlines", [b"ab\n", b"cd\n", b"ef"]),
        ("iter", [b"ab\n", b"cd\n", b"ef"]),
    ],
)
async def test_input_methods(how: str, expected: list[bytes]) -> None:
    app, got = reading_app(how)
    peer = await call(app, Peer([b"a", b"b\nc", b"", b"d\ne", b"f"]), method="POST")
    assert got == expected
    assert peer.body == b"ok"


async def test_input_is_pulled_on_demand() -> None:
    """Each read fetches only what it needs: the body is never drained up front."""
    peer = Peer([b"x" * 10, b"y" * 10, b"z" * 10])
    counts: list[int] = []

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        counts.append(peer.receives)
        assert stream.read(5) == b"xxxxx"
        counts.append(peer.receives)
        assert stream.read(10) == b"xxxxxyyyyy"
        counts.append(peer.receives)
        assert stream.read() == b"y" * 5 + b"z" * 10
        counts.append(peer.receives)
        assert stream.read() == b""
        assert stream.read(1) == b""
        counts.append(peer.receives)
        start_response("204 No Content", [])
        return []

    await call(app, peer, method="POST")
    assert counts == [0, 1, 2, 3, 3]


async def test_input_disconnect_raises_oserror() -> None:
    errors: list[BaseException] = []

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        assert stream.read(3) == b"par"
        try:
            stream.read()
        except OSError as exc:
            errors.append(exc)
            raise
        return []

    with pytest.raises(ClientDisconnected):
        await call(app, Peer([b"partial"], disconnect=True), method="POST")
    assert len(errors) == 1


# ---------------------------------------------------------------------------- response


async def test_single_chunk_list_response() -> None:
    peer = await call(simple(b"hello"))
    assert peer.status == 200
    assert peer.headers == {b"content-type": b"text/plain"}
    assert peer.bodies == [(b"hello", False)]


async def test_reason_phrase_and_header_case() -> None:
    peer = await call(simple(b"", headers=[("X-Custom-Thing", "Value")]))
    assert peer.start["headers"] == [(b"x-custom-thing", b"Value")]


async def test_generator_streamed_chunk_by_chunk_with_back_pressure() -> None:
    """The next chunk is only produced once the send of the previous one has completed."""
    peer = Peer()
    peer.send_delay = 5
    seen: list[tuple[int, int]] = []

    def app(environ: Environ, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        for n in range(3):
            seen.append((len(peer.sent), peer.completed))
            yield b"chunk%d" % n
            yield b""  # empty chunks are skipped

    await call(app, peer)
    assert seen == [(0, 0), (2, 2), (3, 3)]
    assert peer.bodies == [(b"chunk0", True), (b"chunk1", True), (b"chunk2", True), (b"", False)]


async def test_huge_iterable_is_not_buffered() -> None:
    """A lazy iterable of 1000 chunks is consumed one chunk per send."""
    peer = Peer()
    alive: list[int] = []

    class Chunks:
        def __init__(self) -> None:
            self.n = 0

        def __iter__(self) -> Iterator[bytes]:
            return self

        def __next__(self) -> bytes:
            if self.n == 1000:
                raise StopIteration
            self.n += 1
            alive.append(len(peer.sent))
            return b"x" * 1024

    def app(environ: Environ, start_response: Any) -> Chunks:
        start_response("200 OK", [])
        return Chunks()

    await call(app, peer)
    # When chunk n is produced, every earlier chunk has already been sent.
    assert alive[0] == 0
    assert alive[1:] == list(range(2, 1001))
    assert len(peer.body) == 1000 * 1024


async def test_write_callable() -> None:
    def app(environ: Environ, start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"one,")
        write(b"two,")
        return [b"three"]

    peer = await call(app)
    assert peer.bodies == [(b"one,", True), (b"two,", True), (b"three", False)]
    assert peer.status == 200


async def test_write_before_start_response_fails() -> None:
    def app(environ: Environ, start_response: Any) -> list[bytes]:
        start_response.__self__.write(b"x")
        return []

    with pytest.raises(RuntimeError, match="before start_response"):
        await call(app)


async def test_close_called_on_success_error_and_disconnect() -> None:
    closed: list[str] = []

    class Body:
        def __init__(self, name: str, fail: bool = False) -> None:
            self.name = name
            self.fail = fail

        def __iter__(self) -> Iterator[bytes]:
            yield b"a"
            if self.fail:
                raise ValueError("iteration failed")
            yield b"b"

        def close(self) -> None:
            closed.append(self.name)

    def make(name: str, fail: bool = False) -> Any:
        def app(environ: Environ, start_response: Any) -> Body:
            start_response("200 OK", [])
            return Body(name, fail)

        return app

    peer = await call(make("ok"))
    assert peer.body == b"ab"
    with pytest.raises(ValueError, match="iteration failed"):
        await call(make("fail", fail=True))
    gone = Peer()
    gone.send_error = ClientDisconnected("client disconnected")
    with pytest.raises(ClientDisconnected):
        await call(make("gone"), gone)
    assert closed == ["ok", "fail", "gone"]


async def test_exception_before_output_propagates() -> None:
    def app(environ: Environ, start_response: Any) -> list[bytes]:
        raise KeyError("boom")

    peer = Peer()
    with pytest.raises(KeyError, match="boom"):
        await call(app, peer)
    assert peer.sent == []


async def test_exception_in_lazy_iterable_before_output_sends_nothing() -> None:
    def app(environ: Environ, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b""
        raise RuntimeError("late")

    peer = Peer()
    with pytest.raises(RuntimeError, match="late"):
        await call(app, peer)
    assert peer.sent == []


async def test_exc_info_replaces_headers_before_output() -> None:
    def app(environ: Environ, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("X-First", "1")])
        try:
            raise ValueError("handled")
        except ValueError:
            start_response("500 Internal Server Error", [("X-Second", "2")], sys.exc_info())
        return [b"error page"]

    peer = await call(app)
    assert peer.status == 500
    assert peer.headers == {b"x-second": b"2"}
    assert peer.body == b"error page"


async def test_exc_info_after_output_reraises() -> None:
    raised: list[BaseException] = []

    def app(environ: Environ, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"partial"
        try:
            raise ValueError("too late")
        except ValueError:
            try:
                start_response("500 Internal Server Error", [], sys.exc_info())
            except ValueError as exc:
                raised.append(exc)
                raise

    peer = Peer()
    with pytest.raises(ValueError, match="too late"):
        await call(app, peer)
    assert len(raised) == 1
    assert peer.bodies == [(b"partial", True)]


async def test_second_start_response_without_exc_info_fails() -> None:
    def app(environ: Environ, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        start_response("200 OK", [])
        return []

    with pytest.raises(RuntimeError, match="second time"):
        await call(app)


async def test_no_start_response() -> None:
    def app(environ: Environ, start_response: Any) -> list[bytes]:
        return [b"x"]

    with pytest.raises(RuntimeError, match="did not call start_response"):
        await call(app)


@pytest.mark.parametrize(
    ("status", "headers", "error", "match"),
    [
        (200, [], TypeError, "status must be a str"),
        ("200", [], ValueError, "3 digits"),
        ("OK 200", [], ValueError, "3 digits"),
        ("101 Switching", [], ValueError, "from 200 to 599"),
        ("200 OK", (("a", "b"),), TypeError, "must be a list"),
        ("200 OK", [("a", "b", "c")], TypeError, "not a \\(name, value\\) tuple"),
        ("200 OK", ["ab"], TypeError, "not a \\(name, value\\) tuple"),
        ("200 OK", [(b"a", "b")], TypeError, "must be str"),
        ("200 OK", [("a", 1)], TypeError, "must be str"),
        ("200 OK", [("bad name", "x")], ValueError, "invalid WSGI response header name"),
        ("200 OK", [("X-Evil", "a\r\nX-Injected: 1")], ValueError, "CR, LF"),
        ("200 OK", [("X-Snow", "\u2603")], ValueError, "latin-1"),
        ("200 OK", [("Content-Length", "ten")], ValueError, "Content-Length"),
    ],
)
async def test_invalid_status_and_headers(
    status: Any, headers: Any, error: type[Exception], match: str
) -> None:
    def app(environ: Environ, start_response: Any) -> list[bytes]:
        start_response(status, headers)
        return [b""]

    peer = Peer()
    with pytest.raises(error, match=match):
        await call(app, peer)
    assert peer.sent == []


async def test_non_bytes_chunk_is_a_clear_error() -> None:
    def app(environ: Environ, start_response: Any) -> list[Any]:
        start_response("200 OK", [])
        return ["text"]

    with pytest.raises(TypeError, match="must give bytes, got str"):
        await call(app)


async def test_returning_bytes_instead_of_an_iterable() -> None:
    def app(environ: Environ, start_response: Any) -> bytes:
        start_response("200 OK", [])
        return b"body"

    with pytest.raises(TypeError, match="returned bytes; it must return an iterable of bytes"):
        await call(app)


async def test_list_header_pairs_accepted() -> None:
    peer = await call(simple(b"x", headers=[["X-A", "1"]]))  # type: ignore[list-item]
    assert peer.headers == {b"x-a": b"1"}


async def test_hop_by_hop_headers_dropped() -> None:
    peer = await call(
        simple(b"x", headers=[("Connection", "close"), ("Transfer-Encoding", "chunked"), ("A", "b")])
    )
    assert peer.headers == {b"a": b"b"}


async def test_content_length_honoured() -> None:
    def app(environ: Environ, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Length", "6")])
        yield b"abc"
        yield b"defgh"
        raise AssertionError("iteration must stop at Content-Length")

    peer = await call(app)
    assert peer.headers[b"content-length"] == b"6"
    assert peer.bodies == [(b"abc", True), (b"def", False)]


async def test_content_length_exact_in_generator_ends_early() -> None:
    def app(environ: Environ, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Length", "3")])
        yield b"abc"
        raise AssertionError("not reached")

    peer = await call(app)
    assert peer.bodies == [(b"abc", False)]


async def test_content_length_short_body_is_an_error() -> None:
    def app(environ: Environ, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Length", "10")])
        yield b"abc"

    peer = Peer()
    with pytest.raises(RuntimeError, match="ended after 3 bytes of its 10-byte Content-Length"):
        await call(app, peer)
    assert peer.bodies == [(b"abc", True)]


async def test_write_past_content_length_fails() -> None:
    def app(environ: Environ, start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Length", "3")])
        write(b"ab")
        write(b"cd")
        return []

    with pytest.raises(ValueError, match="past the response's Content-Length"):
        await call(app)


async def test_head_keeps_content_length_without_body() -> None:
    def app(environ: Environ, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "100")])
        return []

    peer = await call(app, method="HEAD")
    assert peer.headers[b"content-length"] == b"100"
    assert peer.bodies == [(b"", False)]


async def test_empty_iterable_ends_response() -> None:
    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        start_response("204 No Content", [])
        return iter(())

    peer = await call(app)
    assert peer.status == 204
    assert peer.bodies == [(b"", False)]


async def test_wsgi_errors_go_to_the_error_log(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: Environ, start_response: Any) -> list[bytes]:
        errors = environ["wsgi.errors"]
        errors.write("first line\n")
        errors.write("partial ")
        errors.writelines(["line", "\n"])
        errors.write("unterminated")
        errors.flush()
        errors.write("left at the end")
        start_response("200 OK", [])
        return [b""]

    with caplog.at_level(logging.ERROR, logger="squall.error"):
        await call(app)
    messages = [r.getMessage() for r in caplog.records if r.name == "squall.error"]
    assert messages == ["first line", "partial line", "unterminated", "left at the end"]


async def test_cancellation_unblocks_the_worker_thread() -> None:
    """If the request task is cancelled while the app waits for body, the thread gets an OSError."""
    peer = Peer([])
    outcome: list[str] = []

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        try:
            environ["wsgi.input"].read()
        except OSError as exc:
            outcome.append(type(exc).__name__)
        return []

    adapter = WSGIAdapter(app)
    task = asyncio.create_task(adapter(make_scope(method="POST"), peer.receive, peer.send))
    await asyncio.wait_for(peer.receiving.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    executor = adapter.executor
    adapter.shutdown()
    await asyncio.get_running_loop().run_in_executor(None, executor.shutdown, True)
    assert outcome == ["ClientDisconnected"]


async def test_context_variables_reach_the_thread() -> None:
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")
    var.set("from the loop")
    seen: list[str] = []

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        seen.append(var.get())
        start_response("200 OK", [])
        return [b""]

    await call(app)
    assert seen == ["from the loop"]


async def test_concurrent_requests_run_in_parallel_threads() -> None:
    barrier = threading.Barrier(2, timeout=5)

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        barrier.wait()  # both requests must be in the app at once
        start_response("200 OK", [])
        return [threading.current_thread().name.encode()]

    adapter = WSGIAdapter(app, max_workers=2)
    peers = [Peer(), Peer()]
    await asyncio.wait_for(asyncio.gather(*(adapter(make_scope(), p.receive, p.send) for p in peers)), 10)
    adapter.shutdown()
    names = {p.body for p in peers}
    assert len(names) == 2
    assert all(name.startswith(b"squall-wsgi") for name in names)


# ---------------------------------------------------------------------------- thread pool


def test_thread_pool_threads_are_daemons_reused_and_bounded() -> None:
    pool = DaemonThreadPool(2)
    release = threading.Event()
    started = threading.Barrier(3, timeout=5)

    def blocker() -> str:
        started.wait()
        release.wait(5)
        return threading.current_thread().name

    first = [pool.submit(blocker) for _ in range(2)]
    started.wait()  # both run at once, in two threads
    queued = pool.submit(threading.current_thread)
    assert not queued.done()  # the pool is full: the third call waits for a thread
    release.set()
    names = {f.result(5) for f in first}
    assert queued.result(5).daemon
    assert len(names) == 2 and len(pool._threads) == 2
    assert all(t.daemon for t in pool._threads)
    assert pool.submit(lambda: 41 + 1).result(5) == 42  # an idle thread is reused
    assert len(pool._threads) == 2
    pool.shutdown(wait=True)
    assert not any(t.is_alive() for t in pool._threads)
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(lambda: None)


def test_thread_pool_shutdown_cancels_queued_work() -> None:
    pool = DaemonThreadPool(1)
    release = threading.Event()
    running = pool.submit(release.wait, 5)
    queued = pool.submit(lambda: "never")
    pool.shutdown(wait=False, cancel_futures=True)
    assert queued.cancelled()
    release.set()
    assert running.result(5) is True
    pool.shutdown(wait=True)


def test_thread_pool_propagates_exceptions() -> None:
    pool = DaemonThreadPool(1)

    def fail() -> None:
        raise ZeroDivisionError("in the thread")

    with pytest.raises(ZeroDivisionError, match="in the thread"):
        pool.submit(fail).result(5)
    pool.shutdown()


# ---------------------------------------------------------------------------- other scopes


async def test_lifespan_answers_and_releases_threads() -> None:
    adapter = WSGIAdapter(simple())
    executor = adapter.executor
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[dict[str, Any]] = []

    async def send(message: Message) -> None:
        sent.append(dict(message))

    for kind in ("lifespan.startup", "lifespan.shutdown"):
        inbox.put_nowait({"type": kind})
    await asyncio.wait_for(adapter({"type": "lifespan", "state": {}}, inbox.get, send), 5)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert executor._shutdown
    assert adapter.executor is not executor  # a later request gets a fresh pool
    adapter.shutdown()


async def test_websocket_is_closed() -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(dict(message))

    await WSGIAdapter(simple())({"type": "websocket", "path": "/"}, receive, send)
    assert [m["type"] for m in sent] == ["websocket.close"]


async def test_unknown_scope_type() -> None:
    async def receive() -> dict[str, Any]:
        raise AssertionError

    with pytest.raises(ValueError, match="cannot serve 'weird'"):
        await WSGIAdapter(simple())({"type": "weird"}, receive, receive)  # type: ignore[arg-type]


def test_max_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_workers"):
        WSGIAdapter(simple(), max_workers=0)


def test_loader_wraps_wsgi_apps() -> None:
    from squall.config import AppSettings
    from squall.loader import detect_interface, load_app

    assert detect_interface(simple()) == "wsgi"
    settings = AppSettings(app="tests.asgi.test_wsgi:module_level_wsgi_app")
    assert isinstance(load_app(settings), WSGIAdapter)


def module_level_wsgi_app(environ: Environ, start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b"module level"]
