"""One HTTP request/response cycle: scope, ``receive()``, ``send()`` — for every HTTP version.

How it works
------------
The connection creates an ``HTTPCycle`` per request event and feeds it the request body
(``on_body``/``on_body_end``) and the client's departure (``on_disconnect``). The application
pulls the body with ``receive()`` and answers with ``send()``; this module checks each message
against the spec and turns it into protocol events for the connection (the ``Channel``).

Response state machine (``_state``)::

    START --http.response.start--> STARTED --http.response.body--> STREAMING --...--> DONE
                                   (head held back so it leaves with the first body chunk)

The head is held until the first body chunk so that both leave in one write; if that first chunk
is also the last and the app gave no Content-Length, one is added (no chunked framing needed).

Observation (``Observer``, None when the access log, metrics, request id and deadline are all off):
``_report(ended)`` runs exactly once per request, when its outcome is known: the response is
complete (``completed``, or ``app_error`` for squall's 500, ``timeout`` for its 504), the client
left first (``on_disconnect``), or the response was cut (app error, ``--timeout-request``). It
writes the access line and counts the request.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable
from time import perf_counter
from typing import Any, Final, cast
from urllib.parse import unquote

from mypy_extensions import mypyc_attr

from squall.asgi.types import ASGIApp, ASGIMessageError, ClientDisconnected, Message, Scope
from squall.events import Data, Event, Headers, Informational, Request, Response, Trailers
from squall.grammar import BAD_FIELD_VALUE, TOKEN
from squall.observe.access import APP_ERROR, CLIENT_LEFT, COMPLETED, TIMED_OUT, AccessRecord, request_id
from squall.observe.hooks import Observer

logger: Final = logging.getLogger("squall.error")

_START: Final = 0
_STARTED: Final = 1
_STREAMING: Final = 2
_TRAILERS: Final = 3
_DONE: Final = 4
_PATH_CHUNK: Final = 256 * 1024
#: Body chunks the app sends within one pass of the event loop leave in one write, up to this
#: many bytes; then they are written at once (and the transport's back-pressure applies).
_COALESCE_MAX: Final = 64 * 1024

#: The ASGI extensions every HTTP scope advertises (asgiref docs/extensions.rst).
HTTP_EXTENSIONS: Final[dict[str, dict[str, Any]]] = {
    "http.response.early_hint": {},
    "http.response.trailers": {},
    "http.response.pathsend": {},
    "http.response.zerocopysend": {},
}
_NO_BODY_STATUS: Final = frozenset((204, 304))
_DISCONNECT: Final[dict[str, Any]] = {"type": "http.disconnect"}
_TASK_NAME: Final = "squall: ASGI request"
_UNTYPED: Final = object()  # a message without "type"
#: The body chunks of a request none has arrived for (never appended to): most requests have no
#: body, and a list each would be one more object held from the request's read to its app's step.
_NO_CHUNKS: Final[list[bytes]] = []
_Task: Final = asyncio.Task  # (compiled: a static, not the module attribute looked up per request)


@mypyc_attr(allow_interpreted_subclasses=True)  # http3.H3Stream, h2websocket.H2WebSocket, tests
class Channel(asyncio.Protocol):
    """What a cycle needs from its connection (HTTP/1.1) or stream (HTTP/2, HTTP/3).

    A base class, not a ``typing.Protocol``: compiled, a cycle's calls through it are native
    (a vtable) where a Protocol's are Python method calls, about 200 instructions each and six of
    them per request. It derives from ``asyncio.Protocol`` (no state, methods that do nothing)
    only because a compiled class has a single base: HTTP/1.1's connection is both its
    transport's protocol and its cycles' channel."""

    loop: asyncio.AbstractEventLoop
    write_paused: bool

    def send_event(self, event: Event) -> None:
        """Frame ``event`` (it leaves with the next ``flush``)."""
        raise NotImplementedError

    def make_scope(self, request: Request) -> Scope:
        """The scope of ``request``, for a cycle made without one (``HTTPCycle.scope``)."""
        raise NotImplementedError

    def flush(self) -> None:
        """Write what is framed."""
        raise NotImplementedError

    def flush_soon(self) -> None:
        """``flush`` once the ready callbacks of this loop pass have run."""
        raise NotImplementedError

    async def drain(self) -> None:
        """Wait while the client holds the output back."""
        raise NotImplementedError

    async def send_file(self, stream_id: int, fd: int, offset: int, count: int) -> None:
        """``count`` bytes of ``fd`` from ``offset`` as response body."""
        raise NotImplementedError

    def body_consumed(self, cycle: HTTPCycle) -> None:
        """The app has read the request body received so far."""
        raise NotImplementedError

    def body_wanted(self, cycle: HTTPCycle) -> None:
        """The app waits for more request body."""
        raise NotImplementedError

    def response_complete(self, cycle: HTTPCycle) -> None:
        """The response's last event is framed."""
        raise NotImplementedError

    def cycle_finished(self, cycle: HTTPCycle) -> None:
        """The app returned (or raised)."""
        raise NotImplementedError

    def abort(self) -> None:
        """Drop the connection or stream: the response cannot be completed."""
        raise NotImplementedError


#: The keys ``build_scope`` sets per request. A connection's template holds them already (``None``
#: until then): a copy of the template is then the scope's size, and setting them replaces values
#: in place, where adding six keys to a copy of eight would grow it once per request (a new, larger
#: table and every entry moved; callgrind, h1 hello: one allocation and ~500 instructions less).
REQUEST_KEYS: Final = ("http_version", "method", "path", "raw_path", "query_string", "headers")


def build_scope(template: dict[str, Any], request: Request, root_path: str) -> dict[str, Any]:
    """The HTTP scope for ``request``; ``template`` holds the per-connection keys (and
    ``REQUEST_KEYS``, which this sets)."""
    raw_path = request.raw_path
    path = raw_path.decode("ascii", "surrogateescape")
    if "%" in path:
        path = unquote(path)
    if root_path:
        path = root_path + path
        raw_path = root_path.encode() + raw_path
    scope = template.copy()
    scope["http_version"] = request.http_version
    scope["method"] = request.method
    scope["path"] = path
    scope["raw_path"] = raw_path
    scope["query_string"] = request.query_string
    scope["headers"] = request.headers
    state = template.get("state")
    if type(state) is dict:
        scope["state"] = cast(dict[str, Any], state).copy()  # (compiled: a native copy)
    elif state is not None:
        scope["state"] = state.copy()
    return scope


_NAMES: Final[dict[bytes, bytes]] = {}  # header names already validated → their lower-case form
_VALUES: Final[set[bytes]] = set()  # short header values already validated
_CACHE_MAX: Final = 4096


_DECIMALS: Final[dict[int, bytes]] = {}  # body lengths already formatted (up to _CACHE_MAX of them)


def _decimal(number: int) -> bytes:
    """``b"%d" % number``, from a cache: % formatting is the costlier part of a small response's
    framing, and the same lengths come back."""
    text = _DECIMALS.get(number)
    if text is None:
        text = b"%d" % number
        if len(_DECIMALS) < _CACHE_MAX:
            _DECIMALS[number] = text
    return text


_LENGTHS: Final[dict[bytes, int]] = {}  # Content-Length values already parsed (the same come back)


def _content_length(value: bytes) -> int:
    """An app's Content-Length value as a number (``ASGIMessageError`` unless it is digits): from a
    cache, as ``isdigit()`` and ``int()`` of bytes cost about 1,100 instructions (Starlette sets
    the header on every response)."""
    length = _LENGTHS.get(value)
    if length is None:
        if not value.isdigit():
            raise ASGIMessageError(f"invalid Content-Length {value!r}")
        length = int(value)
        if len(_LENGTHS) < _CACHE_MAX:
            _LENGTHS[value] = length
    return length


def validate_headers(headers: Iterable[Any]) -> Headers:
    """Check response headers; return them with lower-case names. Raises ASGIMessageError."""
    if type(headers) is not list:
        try:
            headers = list(headers)  # read once: a generator cannot be read again on the slow path
        except TypeError:
            return _validate_slowly(headers)
    try:
        checked = _checked_list(headers)
    except TypeError:  # an unhashable name
        checked = None
    return checked if checked is not None else _validate_slowly(headers)


def _checked_list(headers: list[Any]) -> Headers | None:
    """``validate_headers`` for names already seen valid: compiled, the loop and the pairs are
    read natively. None for anything else: the slow path says what is wrong."""
    checked: Headers = []
    for item in headers:
        # Each branch narrowed apart: compiled, their reads are native (a union's are not).
        if type(item) is tuple and len(item) == 2:  # noqa: SIM114
            name, value = item[0], item[1]
        elif type(item) is list and len(item) == 2:
            name, value = item[0], item[1]
        else:
            return None
        lower = _checked_field(name, value)
        if lower is None:
            return None
        checked.append((lower, value))
    return checked


def _checked_field(name: Any, value: Any) -> bytes | None:
    """The lower-case name of a header already seen valid, its value checked; None for anything
    else (``_validate_slowly`` then says what is wrong)."""
    lower = _NAMES.get(name)
    if lower is None or type(value) is not bytes:
        return None
    values = _VALUES
    if value not in values:
        if BAD_FIELD_VALUE.search(value):
            return None
        if len(values) < _CACHE_MAX and len(value) <= 64:
            values.add(value)
    return lower


def _validate_slowly(headers: Iterable[Any]) -> Headers:
    """The checks of ``validate_headers`` one by one, with an error naming the problem."""
    checked: Headers = []
    try:
        items = list(headers)
    except TypeError:
        raise ASGIMessageError("'headers' must be an iterable of [name, value] pairs") from None
    for item in items:
        try:
            name, value = item
        except (TypeError, ValueError):
            raise ASGIMessageError(f"header {item!r} is not a [name, value] pair") from None
        if type(name) is not bytes or type(value) is not bytes:
            if not isinstance(name, bytes | bytearray) or not isinstance(value, bytes | bytearray):
                raise ASGIMessageError(
                    f"header {item!r}: name and value must be bytes, "
                    f"got {type(name).__name__} and {type(value).__name__}"
                )
            name, value = bytes(name), bytes(value)
        if not TOKEN.fullmatch(name):
            raise ASGIMessageError(f"invalid header name {name!r}")
        if BAD_FIELD_VALUE.search(value):
            raise ASGIMessageError(f"header {name!r} has a value with CR, LF or a control byte")
        lower = name.lower()
        if len(_NAMES) < _CACHE_MAX:
            _NAMES[name] = lower
        checked.append((lower, value))
    return checked


def plain_int(value: Any) -> int | None:
    """``value`` as an int, an int subclass (``HTTPStatus.OK``, an IntEnum) as its value; None
    for anything else, a bool included."""
    if type(value) is int:
        return value
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    return int(value)


def checked_status(status: Any) -> int:
    """A response ``status``: an int (see ``plain_int``) from 200 to 599. Raises ASGIMessageError."""
    code = plain_int(status)
    if code is None or not 200 <= code <= 599:
        raise ASGIMessageError(f"'status' must be an int from 200 to 599, got {status!r}")
    return code


def field(message: Message, key: str, default: Any) -> Any:
    """``message.get(key, default)``; compiled, a plain dict (what apps send) is read without a
    method call."""
    if type(message) is dict:
        return cast(dict[str, Any], message).get(key, default)
    return message.get(key, default)


def response_body(message: Message) -> tuple[bytes, bool]:
    """``body`` and ``more_body`` of a response body message, checked. Raises ASGIMessageError."""
    body = field(message, "body", b"")
    more = field(message, "more_body", False)
    if type(body) is not bytes:
        if not isinstance(body, bytes | bytearray | memoryview):  # a bytes subclass is bytes
            raise ASGIMessageError(f"'body' must be bytes, got {type(body).__name__}")
        body = bytes(body)
    if type(more) is not bool:
        raise ASGIMessageError(f"'more_body' must be a bool, got {type(more).__name__}")
    return body, more


def _file_descriptor(file: Any) -> int:
    """The OS file descriptor of a ``zerocopysend`` ``file`` (a file object, or an int)."""
    try:
        fd = file if type(file) is int else file.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    if type(fd) is not int or fd < 0:
        raise ASGIMessageError(
            f"'file' of http.response.zerocopysend must be a file with a descriptor, got {file!r}"
        )
    return fd


async def read_file_into(
    channel: Channel, stream_id: int, fd: int, offset: int, count: int, *, size: int = _PATH_CHUNK
) -> None:
    """``Channel.send_file`` by reading: ``count`` bytes of ``fd`` from ``offset`` as body chunks of
    up to ``size`` bytes, read off the event loop, with back-pressure (TLS, HTTP/2, local clients).
    Raises ASGIMessageError when the file ends first."""
    loop = channel.loop
    while count:
        chunk = await loop.run_in_executor(None, os.pread, fd, min(count, size), offset)
        if not chunk:
            raise ASGIMessageError(f"the file ended {count} bytes before the end of the body")
        offset += len(chunk)
        count -= len(chunk)
        channel.send_event(Data(stream_id, chunk, False))
        channel.flush()
        if channel.write_paused:
            await channel.drain()


class HTTPCycle:
    """One request/response exchange between a connection and the application."""

    __slots__ = (
        "_scope",
        "_request",
        "stream_id",
        "task",
        "buffered",
        "_channel",
        "_app",
        "_chunks",
        "_body_done",
        "_request_done",
        "_disconnected",
        "_waiter",
        "_expect_continue",
        "_state",
        "_status",
        "_headers",
        "_remaining",
        "_bytes_sent",
        "_unflushed",
        "_started_at",
        "_trailers",
        "_observer",
        "_outcome",
        "_reported",
        "_received",
        "_request_id",
        "_deadline_at",
        "_deadline",
    )

    def __init__(
        self,
        channel: Channel,
        app: ASGIApp,
        scope: Scope | None,
        stream_id: int,
        *,
        expect_continue: bool = False,
        observer: Observer | None = None,
        began: float = 0.0,
        request: Request | None = None,
    ) -> None:
        self._scope = scope
        self._request = request  # without a scope: it is made from this when first needed
        self.stream_id = stream_id
        self.task: asyncio.Task[None] | None = None
        self.buffered = 0
        self._channel = channel
        self._app = app
        self._chunks = _NO_CHUNKS  # a list of its own once a body chunk arrives
        self._body_done = False
        self._request_done = False
        self._disconnected = False
        self._waiter: asyncio.Future[None] | None = None
        self._expect_continue = expect_continue
        self._state = _START
        self._status = 0
        self._headers: Headers = []
        self._remaining: int | None = None
        self._bytes_sent = 0
        self._unflushed = 0
        self._trailers: Headers | None = None  # set when the app announced trailers
        self._observer = observer
        self._outcome = COMPLETED  # how the request ends if the response completes
        self._reported = False
        self._received = 0
        self._request_id: str | None = None
        self._deadline_at = 0.0
        self._deadline: asyncio.TimerHandle | None = None
        self._started_at = 0.0
        if observer is not None:
            self._started_at = perf_counter()
            if observer.request_id_header is not None or observer.timeout is not None:
                self._observe_start(observer, began)

    def _observe_start(self, observer: Observer, began: float) -> None:
        header = observer.request_id_header
        if header is not None:
            rid = self._request_id = request_id(self.scope["headers"], header)
            state = self.scope.get("state")
            if state is None:
                state = self.scope["state"] = {}
            state["request_id"] = rid
        if observer.timeout is not None:
            self._deadline_at = (began or self._channel.loop.time()) + observer.timeout

    # ------------------------------------------------------------ connection side

    @property
    def scope(self) -> Scope:
        """The request's scope. HTTP/1.1 makes it when the app starts (``Channel.make_scope``),
        not when the request is read: the scopes of a pass's requests then do not all wait in
        memory for the next pass, when their apps run. Each is made and, for an app that answers
        at once, freed in its task's step, so the next one reuses the same memory (callgrind's
        cache model, bench/h1_profile.py at 256 connections: L2 misses per request 127 -> 102,
        L1 743 -> 642)."""
        scope = self._scope
        if scope is None:
            request = self._request
            if request is None:
                raise RuntimeError("HTTPCycle made with neither a scope nor a request")
            scope = self._scope = self._channel.make_scope(request)
            self._request = None
        return scope

    @property
    def body_done(self) -> bool:
        """True once the whole request body has arrived."""
        return self._body_done

    @property
    def response_started(self) -> bool:
        """True once the response head has been handed to the connection."""
        return self._state >= _STREAMING

    @property
    def awaiting_continue(self) -> bool:
        """True while the client waits for ``100 Continue`` before sending its body."""
        return self._expect_continue

    def start(self) -> None:
        """Start the application for this request."""
        # An ordinary task, measured: 3.12's eager_start was slower with uvloop (hello world 19.9k
        # against 29.2k req/s), and stepping the coroutine without a task would break anyio cancel
        # scopes, asyncio.timeout and current_task(). Made as loop.create_task makes it, but named:
        # the default "Task-<n>" name is a string format per request.
        loop = self._channel.loop
        if loop.get_task_factory() is None:
            self.task = _Task(self._run(), loop=loop, name=_TASK_NAME)
        else:
            self.task = loop.create_task(self._run())
        if self._deadline_at:  # armed when the request's turn comes (pipelining keeps order)
            self._deadline = loop.call_at(self._deadline_at, self._on_deadline)

    def on_body(self, data: bytes) -> None:
        """A request body chunk arrived."""
        if self._chunks is _NO_CHUNKS:
            self._chunks = [data]
        else:
            self._chunks.append(data)
        self.buffered += len(data)
        self._received += len(data)
        self._wake()

    def on_body_end(self) -> None:
        """The request body is complete."""
        self._body_done = True
        self._wake()

    def on_disconnect(self, ended: str = CLIENT_LEFT) -> None:
        """The client is gone (or squall gave up on the request, ``ended`` says why):
        ``receive()`` returns ``http.disconnect``, ``send()`` raises."""
        self._disconnected = True
        if self._state != _DONE and self._observer is not None:
            self._report(ended)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # ------------------------------------------------------------ application side

    async def _run(self) -> None:
        try:
            await self._app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            logger.debug("client disconnected before the response was sent")
        except Exception as exc:
            self._app_failed(exc)
        else:
            self._app_returned()
        finally:
            self._channel.cycle_finished(self)

    def _app_failed(self, exc: Exception) -> None:
        self._outcome = APP_ERROR
        if isinstance(exc, ASGIMessageError):
            logger.error("ASGI application sent an invalid message: %s", exc, exc_info=exc)
            if self._state == _STARTED:
                self._state = _START  # nothing reached the wire yet: a 500 can still be sent
        else:
            logger.error("Exception in ASGI application", exc_info=exc)
        self._respond_to_failure()

    def _app_returned(self) -> None:
        if self._disconnected:
            return  # the client left; an app that stops then has done nothing wrong
        if self._state == _START:
            logger.error("ASGI application returned without starting a response")
        elif self._state != _DONE:
            logger.error("ASGI application returned without completing its response")
        else:
            return
        self._outcome = APP_ERROR
        self._respond_to_failure()

    def _respond_to_failure(self, status: int = 500, body: bytes = b"Internal Server Error\n") -> None:
        if self._disconnected or self._state == _DONE:
            return
        if self._state in (_START, _STARTED) and (self._state == _START or status != 500):
            self._status = status  # nothing is on the wire yet (a held head is dropped)
            self._headers = [  # and close: the app failed, the connection's state is unknown
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"connection", b"close"),
            ]  # Content-Length: added by _send_body, as for any one-message body
            self._add_request_id(self._headers)
            self._remaining = None
            self._trailers = None
            self._state = _STARTED
            self._send_body(body, False)
        else:
            if self._observer is not None:
                self._report(self._outcome)
            self._state = _DONE
            self._channel.abort()

    def _on_deadline(self) -> None:
        """``--timeout-request`` passed: 504 if nothing was sent, else cut the response; the app
        is cancelled either way."""
        self._deadline = None
        if self._state == _DONE or self._disconnected:
            return
        observer = self._observer
        if observer is not None and observer.metrics is not None:
            observer.metrics.reject("request_timeout")
        logger.info(
            "request deadline (--timeout-request) passed: %s %s",
            self.scope.get("method"),
            self.scope.get("path"),
        )
        self._outcome = TIMED_OUT
        self._respond_to_failure(504, b"Gateway Timeout\n")
        self._disconnected = True  # receive() says http.disconnect, send() raises
        self._wake()
        task = self.task
        if task is not None and not task.done():
            task.cancel()

    async def receive(self) -> Message:
        """ASGI ``receive``: the request body, then ``http.disconnect``."""
        while True:
            if self._disconnected:
                return _DISCONNECT
            if self._request_done:
                if self._state == _DONE:
                    return _DISCONNECT
            elif self._chunks or self._body_done:
                return self._take_body()
            else:
                if self._expect_continue:
                    self._send_continue()
                self._channel.body_wanted(self)  # the app waits on the client: the rate is timed
            await self._wait()

    def _take_body(self) -> Message:
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        more = not self._body_done
        self._request_done = not more
        if self.buffered:
            self.buffered = 0
            self._channel.body_consumed(self)
        return {"type": "http.request", "body": body, "more_body": more}

    def _send_continue(self) -> None:
        self._expect_continue = False
        if self._state == _START:
            self._channel.send_event(Informational(self.stream_id, 100))
            self._channel.flush()

    async def _wait(self) -> None:
        waiter = self._waiter = self._channel.loop.create_future()
        await waiter

    async def send(self, message: Message) -> None:
        """ASGI ``send``: validates the message and hands it to the connection."""
        if self._disconnected:
            raise ClientDisconnected("client disconnected")
        try:
            mtype = field(message, "type", _UNTYPED)
        except AttributeError:  # no mapping at all
            mtype = _UNTYPED
        if mtype is _UNTYPED:
            raise ASGIMessageError(f"message must be a dict with a 'type' key: {message!r}")
        if type(mtype) is str:  # (narrowed: compiled, the comparisons below are native)
            kind: str = mtype
            state = self._state
            if state == _START and kind == "http.response.start":
                self._start_response(message)
                return
            if state in (_STARTED, _STREAMING) and kind == "http.response.body":
                body, more = response_body(message)
                self._send_body(body, more)
                if more and self._channel.write_paused:
                    await self._channel.drain()
                return
        await self._send_extension(mtype, message)

    async def _send_extension(self, mtype: Any, message: Message) -> None:
        """The extension messages (early hints, trailers, pathsend), or a message out of order.
        (``mtype`` is whatever the app put under "type": compiled code would check a ``str``.)"""
        state = self._state
        if mtype == "http.response.early_hint" and state in (_START, _STARTED):
            self._send_early_hint(message.get("links", ()))
        elif mtype == "http.response.early_hint" and state != _DONE:
            pass  # the head is on the wire already: too late for a hint, which may be ignored
        elif mtype == "http.response.trailers" and state == _TRAILERS:
            self._send_trailers(message)
        elif mtype == "http.response.pathsend" and state == _STARTED:
            await self._send_path(message.get("path"))
        elif mtype == "http.response.zerocopysend" and state in (_STARTED, _STREAMING):
            await self._send_zerocopy(message)
        elif mtype == "http.response.push" and state in (_STARTED, _STREAMING):
            self._push(message)
        elif state == _DONE:
            raise ASGIMessageError(f"unexpected {mtype!r}: the response is already complete")
        else:
            expected = {
                _START: "'http.response.start'",
                _STARTED: "'http.response.body'",
                _STREAMING: "'http.response.body'",
                _TRAILERS: "'http.response.trailers'",
            }[state]
            raise ASGIMessageError(f"expected {expected}, got {mtype!r}")

    def _send_early_hint(self, links: Any) -> None:
        try:  # once: a generator can be iterated only once
            items = None if isinstance(links, bytes | str) else list(links)
        except TypeError:
            items = None
        if items is None or not all(isinstance(link, bytes) for link in items):
            raise ASGIMessageError("'links' of http.response.early_hint must be an iterable of bytes")
        headers = validate_headers([(b"link", link) for link in items])
        if headers:
            self._channel.send_event(Informational(self.stream_id, 103, headers))
            self._channel.flush()

    def _send_trailers(self, message: Message) -> None:
        more = message.get("more_trailers", False)
        if type(more) is not bool:
            raise ASGIMessageError(f"'more_trailers' must be a bool, got {type(more).__name__}")
        trailers = self._trailers
        assert trailers is not None
        trailers.extend(validate_headers(message.get("headers", ())))
        if more:
            return
        channel = self._channel
        if self._client_takes_trailers():
            channel.send_event(Trailers(self.stream_id, trailers))
        else:  # RFC 9110 §6.5.1: only to a client that said "TE: trailers"
            channel.send_event(Data(self.stream_id, b"", True))
        self._complete()

    def _push(self, message: Message) -> None:
        """``http.response.push``: only HTTP/2 channels whose client allows push can; else ignored."""
        path = message.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ASGIMessageError(
                f"'path' of http.response.push must be a str starting with '/', got {path!r}"
            )
        headers = validate_headers(message.get("headers", ()))
        push = getattr(self._channel, "push", None)
        if push is not None and "http.response.push" in self.scope.get("extensions", {}):
            push(path, headers)

    def _client_takes_trailers(self) -> bool:
        headers = self.scope["headers"]
        return any(name == b"te" and value.lower().find(b"trailers") >= 0 for name, value in headers)

    async def _send_path(self, path: Any) -> None:
        """``http.response.pathsend``: the body is the file at ``path`` (see ``_send_file``)."""
        if not isinstance(path, str) or not os.path.isabs(path):
            raise ASGIMessageError(f"'path' of http.response.pathsend must be an absolute str, got {path!r}")
        try:
            handle = await self._channel.loop.run_in_executor(None, open, path, "rb")
        except OSError as exc:
            raise ASGIMessageError(f"http.response.pathsend: cannot open {path!r}: {exc.strerror}") from None
        with handle:
            fd = handle.fileno()
            await self._send_file(fd, 0, os.fstat(fd).st_size, False)

    async def _send_zerocopy(self, message: Message) -> None:
        """``http.response.zerocopysend``: ``count`` bytes (default: to its end) of the open file
        ``file`` from ``offset`` (default: its position, which then moves past them)."""
        fd = _file_descriptor(message.get("file"))
        offset, count, more = message.get("offset"), message.get("count"), message.get("more_body", False)
        if type(more) is not bool:
            raise ASGIMessageError(f"'more_body' must be a bool, got {type(more).__name__}")
        for name, value in (("offset", offset), ("count", count)):
            if value is not None and (plain_int(value) is None or value < 0):
                raise ASGIMessageError(f"'{name}' of http.response.zerocopysend must be an int >= 0")
        try:
            start = os.lseek(fd, 0, os.SEEK_CUR) if offset is None else int(offset)
            if count is None:
                count = max(os.fstat(fd).st_size - start, 0)
            await self._send_file(fd, start, int(count), more)
            if offset is None:
                os.lseek(fd, start + count, os.SEEK_SET)
        except OSError as exc:
            if isinstance(exc, ClientDisconnected):
                raise
            raise ASGIMessageError(f"http.response.zerocopysend: {exc}") from None

    async def _send_file(self, fd: int, offset: int, count: int, more: bool) -> None:
        """``count`` bytes of ``fd`` from ``offset`` as body: through the channel's ``send_file``
        (``sendfile(2)`` on plain TCP, a read loop otherwise), with back-pressure."""
        whole = self._state == _STARTED and not more and self._trailers is None
        if whole and self._remaining is None and self._status not in _NO_BODY_STATUS:
            self._headers.append((b"content-length", _decimal(count)))  # the whole body: its length
            self._remaining = count if self.scope["method"] != "HEAD" else None
        if count and self._status not in _NO_BODY_STATUS and self.scope["method"] != "HEAD":
            remaining = self._remaining
            if remaining is not None and count > remaining:
                raise ASGIMessageError("response body is longer than its Content-Length")
            if self._state == _STARTED:
                self._send_body(b"", True)  # the head
            await self._channel.send_file(self.stream_id, fd, offset, count)
            if remaining is not None:
                self._remaining = remaining - count
            self._bytes_sent += count
        if not more or self._state == _STARTED:
            self._send_body(b"", more)

    def _start_response(self, message: Message) -> None:
        status = checked_status(field(message, "status", None))
        headers = validate_headers(field(message, "headers", ()))
        for name, value in headers:
            if name == b"content-length":
                if self._remaining is not None:
                    raise ASGIMessageError(f"invalid Content-Length {value!r}")
                self._remaining = _content_length(value)
                if status == 204 or status == 304 or self.scope["method"] == "HEAD":  # noqa: PLR1714
                    self._remaining = None
        trailers = field(message, "trailers", False)
        if type(trailers) is not bool:
            raise ASGIMessageError(f"'trailers' must be a bool, got {type(trailers).__name__}")
        if trailers:
            self._trailers = []
        if self._request_id is not None:
            self._add_request_id(headers)
        self._status = status
        self._headers = headers
        self._state = _STARTED

    def _send_body(self, body: bytes, more: bool) -> None:
        remaining = self._remaining
        if remaining is not None:
            remaining = self._count_down(remaining, len(body), more)
        channel = self._channel
        sid = self.stream_id
        trailers = self._trailers is not None
        if self._state == _STARTED:
            headers = self._headers
            if (
                not more
                and not trailers
                and remaining is None
                and self._status not in _NO_BODY_STATUS
                and (body or self.scope["method"] != "HEAD")
            ):
                headers.append((b"content-length", _decimal(len(body))))
            channel.send_event(Response(sid, self._status, headers))
            self._state = _STREAMING
        size = len(body)
        self._bytes_sent += size
        if more or trailers:
            channel.send_event(Data(sid, body, False))
            unflushed = self._unflushed + size
            if unflushed < _COALESCE_MAX:  # more may follow in this loop pass: one write for all
                self._unflushed = unflushed
                channel.flush_soon()
            else:
                self._unflushed = 0
                channel.flush()
            if not more:
                self._state = _TRAILERS  # the app sends http.response.trailers next
            return
        channel.send_event(Data(sid, body, True))
        self._complete()

    def _complete(self) -> None:
        self._state = _DONE
        self._channel.response_complete(self)
        if self._observer is not None:
            self._report(self._outcome)
        if self._waiter is not None:
            self._wake()

    def _count_down(self, remaining: int, size: int, more: bool) -> int:
        """Enforce the app's Content-Length: never more bytes than promised, nor fewer."""
        if size > remaining:
            raise ASGIMessageError("response body is longer than its Content-Length")
        remaining -= size
        if not more and remaining:
            raise ASGIMessageError("response ended before its Content-Length was sent")
        self._remaining = remaining
        return remaining

    def _add_request_id(self, headers: Headers) -> None:
        rid = self._request_id
        observer = self._observer
        if rid is None or observer is None or observer.request_id_header is None:
            return
        name = observer.request_id_header
        if not any(key == name for key, _ in headers):
            headers.append((name, rid.encode("ascii")))

    def _report(self, ended: str) -> None:
        """The request is over (see the module docstring): log it and count it, once."""
        observer = self._observer
        if self._reported or observer is None:
            return
        self._reported = True
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        seconds = perf_counter() - self._started_at
        status = self._status if self._state >= _STREAMING else 0  # 0: no head went out
        scope = self.scope
        method = scope.get("method")
        sent = self._bytes_sent
        if status == 204 or status == 304 or method == "HEAD":  # noqa: PLR1714 - no set lookup
            sent = 0  # the body the app gave was not sent
        metrics = observer.metrics
        if metrics is not None:
            version = scope.get("http_version")
            if type(method) is not str or type(version) is not str:
                method, version = str(method), str(version)  # the app changed them: count as is
            metrics.request(method, status, version, seconds, self._received, sent)
        access = observer.access
        if access is not None:
            record = AccessRecord(
                scope,
                status,
                sent,
                self._received,
                seconds,
                ended,
                self._headers,
                self._request_id,
                self.stream_id,
            )
            access.write(record)
