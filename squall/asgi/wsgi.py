"""Serve a WSGI (PEP 3333) application behind the ASGI HTTP cycle, in a thread pool.

How it works
------------
``WSGIAdapter`` is an ASGI 3 application. For each ``http`` scope it builds the PEP 3333
``environ`` on the event loop, then runs the WSGI application in a worker thread of its own
pool (``DaemonThreadPool``: daemon threads, so a call stuck in application code cannot hold
the process up at exit). The thread talks to the event loop through a ``_Bridge``: every
``receive()``/``send()`` is scheduled on the loop with ``asyncio.run_coroutine_threadsafe`` and
the thread blocks until it completes. That gives back-pressure for free: the thread cannot
produce the next response chunk before the previous one was handed to the connection (and,
when the client is slow to read, until the connection drained). The last message
(``more_body=False``) is returned by the thread and sent by the request task instead, which
saves a round trip per request and frees the thread sooner.

Request body. ``wsgi.input`` pulls ``http.request`` messages on demand, so a body is never held
whole in memory unless the application asks for all of it (``read()`` with no size). If the
client disconnects before the body is complete, reads raise ``ClientDisconnected`` (an
``OSError``) rather than returning a short body that looks complete: mod_wsgi raises
``OSError`` here and gunicorn raises ``NoMoreData`` (an ``IOError``) for chunked bodies, and a
silently truncated upload is the worse failure. Once the body is complete, reads return ``b""``.
``wsgi.input_terminated`` is set, so Werkzeug/Flask read chunked bodies too.

Response. ``start_response`` checks and stores the status and headers (PEP 3333 ``exc_info``
rules); nothing is sent until the first non-empty chunk, a ``write()`` call, or the end of the
iterable. Each chunk is sent as it is produced; a list or tuple response sends its last chunk
with ``more_body=False`` so a one-chunk response gets a Content-Length and no chunked framing.
A Content-Length given by the application is honoured: iteration stops once it is reached
(longer chunks are cut), ``write()`` past it raises, and a body that ends short raises so the
connection is aborted rather than left hanging. The iterable's ``close()`` is always called.

Failures. An exception before anything was sent propagates out of the adapter, so the HTTP
cycle logs it and answers 500; after the response started, the cycle aborts the connection.
Invalid statuses or headers raise ``TypeError``/``ValueError`` from ``start_response`` with a
message naming the offending value. Hop-by-hop headers (``Connection``, ``Transfer-Encoding``,
...) are dropped, as gunicorn does: framing is the server's business.

Request headers whose names contain ``_`` are dropped from the environ (gunicorn ≥ 22 and nginx
do the same): ``X_Forwarded_For`` and ``X-Forwarded-For`` would otherwise both become
``HTTP_X_FORWARDED_FOR`` and one could spoof the other.

Other scopes: ``lifespan`` is answered (startup/shutdown complete; shutdown also releases the
thread pool); ``websocket`` is closed at once, since WSGI has no WebSockets.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import os
import queue
import sys
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator
from types import TracebackType
from typing import Any, ParamSpec, Protocol, TypeVar

from squall.asgi.types import ClientDisconnected, Message, Receive, Scope, Send
from squall.grammar import BAD_FIELD_VALUE, TOKEN

logger = logging.getLogger("squall.error")

T = TypeVar("T")
P = ParamSpec("P")
Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
OptExcInfo = ExcInfo | tuple[None, None, None]
WriteCallable = Callable[[bytes], None]


class StartResponse(Protocol):
    """PEP 3333 ``start_response``."""

    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None, /
    ) -> WriteCallable: ...


WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

#: RFC 9110 §7.6.1 plus the RFC 2616 list PEP 3333 refers to.
HOP_BY_HOP = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    )
)
_NO_BODY_STATUS = frozenset((204, 304))


# ---------------------------------------------------------------------------- environ


def build_environ(scope: Scope, body: InputStream, errors: Any = None) -> Environ:
    """The PEP 3333 environ for an ASGI ``http`` scope."""
    root_path: str = scope.get("root_path", "")
    path: str = scope["path"]
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    scheme: str = scope.get("scheme", "http")
    environ: Environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": _latin1(root_path),
        "PATH_INFO": _latin1(path),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": body,
        "wsgi.errors": errors if errors is not None else ErrorStream(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    server = scope.get("server")
    if server:
        host, port = server[0], server[1]
        environ["SERVER_NAME"] = host
        environ["SERVER_PORT"] = "0" if port is None else str(port)
    else:
        environ["SERVER_NAME"] = "localhost"
        environ["SERVER_PORT"] = "443" if scheme in ("https", "wss") else "80"
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = "0" if client[1] is None else str(client[1])
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1")
        value = raw_value.decode("latin-1")
        if name == "content-type":
            key = "CONTENT_TYPE"
        elif name == "content-length":
            key = "CONTENT_LENGTH"
        elif "_" in name:
            continue
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
        if key in environ:
            value = environ[key] + ("; " if key == "HTTP_COOKIE" else ", ") + value
        environ[key] = value
    return environ


def _latin1(text: str) -> str:
    """PEP 3333 "native string": the UTF-8 bytes of ``text`` seen as latin-1."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


class ErrorStream:
    """``wsgi.errors``: text written here goes to the ``squall.error`` log, a record per write.

    A write that does not end a line is held until the line ends or ``flush()``.
    """

    def __init__(self, log: logging.Logger = logger) -> None:
        self._log = log
        self._pending: list[str] = []

    def write(self, text: str) -> int:
        """Log ``text`` (once a line is complete); returns its length."""
        if not isinstance(text, str):
            raise TypeError(f"wsgi.errors.write() takes str, not {type(text).__name__}")
        self._pending.append(text)
        if text.endswith("\n"):
            self.flush()
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        """Write each string of ``lines``."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Log whatever is pending."""
        if self._pending:
            text = "".join(self._pending).rstrip("\n")
            self._pending.clear()
            if text:
                self._log.error("%s", text)


# ---------------------------------------------------------------------------- thread ↔ loop


class _Bridge:
    """Runs the ASGI ``receive``/``send`` of one request on the loop, from the worker thread."""

    __slots__ = ("loop", "receive", "send", "aborted", "_pending")

    def __init__(self, loop: asyncio.AbstractEventLoop, receive: Receive, send: Send) -> None:
        self.loop = loop
        self.receive = receive
        self.send = send
        self.aborted = False
        self._pending: concurrent.futures.Future[Any] | None = None

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result (worker thread only)."""
        if self.aborted:
            coro.close()
            raise ClientDisconnected("request cancelled")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        self._pending = future
        if self.aborted:  # abort() ran between the check above and the assignment
            future.cancel()
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise ClientDisconnected("request cancelled") from None
        finally:
            self._pending = None

    async def receive_message(self) -> Message:
        """``receive()`` as a coroutine (``run_coroutine_threadsafe`` takes nothing else)."""
        return await self.receive()

    def send_all(self, messages: list[Message]) -> None:
        """Send ``messages`` in order, in one trip to the loop."""
        self.call(self._send_all(messages))

    async def _send_all(self, messages: list[Message]) -> None:
        for message in messages:
            await self.send(message)

    def abort(self) -> None:
        """The request task was cancelled: fail the thread's current and next loop calls."""
        self.aborted = True
        pending = self._pending
        if pending is not None:
            pending.cancel()


class InputStream:
    """``wsgi.input``: the request body, pulled from ``receive()`` as the application reads."""

    __slots__ = ("_bridge", "_buffer", "_eof")

    def __init__(self, bridge: _Bridge) -> None:
        self._bridge = bridge
        self._buffer = bytearray()
        self._eof = False

    def _fill(self) -> bool:
        """Fetch the next body chunk; False at the end of the body."""
        if self._eof:
            return False
        message = self._bridge.call(self._bridge.receive_message())
        mtype = message.get("type")
        if mtype == "http.request":
            self._buffer += message.get("body", b"")
            if not message.get("more_body", False):
                self._eof = True
            return True
        if mtype == "http.disconnect":
            raise ClientDisconnected("client disconnected before the request body was complete")
        raise RuntimeError(f"unexpected ASGI message {mtype!r} while reading the request body")

    def _take(self, size: int) -> bytes:
        buffer = self._buffer
        if size >= len(buffer):
            data = bytes(buffer)
            buffer.clear()
        else:
            data = bytes(buffer[:size])
            del buffer[:size]
        return data

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (fewer only at the end of the body); all the rest if negative."""
        if size is None or size < 0:
            while self._fill():
                pass
            return self._take(len(self._buffer))
        while len(self._buffer) < size and self._fill():
            pass
        return self._take(size)

    def read1(self, size: int = -1) -> bytes:
        """What is buffered (one fetch if nothing is), up to ``size`` bytes."""
        while not self._buffer and self._fill():
            pass
        return self._take(len(self._buffer) if size < 0 else size)

    def readline(self, size: int | None = -1) -> bytes:
        """One line including its ``\\n``, or up to ``size`` bytes of it."""
        limit = sys.maxsize if size is None or size < 0 else size
        start = 0
        while True:
            end = self._buffer.find(b"\n", start, limit)
            if end >= 0:
                return self._take(end + 1)
            if len(self._buffer) >= limit:
                return self._take(limit)
            start = len(self._buffer)
            if not self._fill():
                return self._take(limit)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """The remaining lines; stops once ``hint`` bytes were read, if given."""
        lines: list[bytes] = []
        total = 0
        for line in self:
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def readable(self) -> bool:
        return True

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


# ---------------------------------------------------------------------------- response


def _check_status(status: Any) -> int:
    if not isinstance(status, str):
        raise TypeError(f"WSGI status must be a str like '200 OK', got {type(status).__name__}: {status!r}")
    code = status[:3]
    if len(status) < 4 or not code.isdigit() or not code.isascii() or status[3] != " ":
        raise ValueError(f"WSGI status must be 3 digits, a space and a reason phrase, got {status!r}")
    value = int(code)
    if not 200 <= value <= 599:
        raise ValueError(f"WSGI status code must be from 200 to 599, got {status!r}")
    return value


def _check_headers(headers: Any) -> tuple[list[tuple[bytes, bytes]], int | None]:
    """The response headers as ASGI bytes pairs, and the Content-Length if given."""
    if type(headers) is not list:
        raise TypeError(f"WSGI response headers must be a list of (name, value) tuples, got {headers!r}")
    checked: list[tuple[bytes, bytes]] = []
    length: int | None = None
    for item in headers:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise TypeError(f"WSGI response header {item!r} is not a (name, value) tuple")
        name, value = item
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(
                f"WSGI response header {item!r}: name and value must be str, "
                f"got {type(name).__name__} and {type(value).__name__}"
            )
        try:
            raw_name, raw_value = name.encode("latin-1"), value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"WSGI response header {item!r} is not latin-1 encodable") from None
        if not TOKEN.fullmatch(raw_name):
            raise ValueError(f"invalid WSGI response header name {name!r}")
        if BAD_FIELD_VALUE.search(raw_value):
            raise ValueError(f"WSGI response header {name!r} has a value with CR, LF or a control character")
        lower = raw_name.lower()
        if lower.decode() in HOP_BY_HOP:
            logger.debug("dropping hop-by-hop response header %r from the WSGI application", name)
            continue
        if lower == b"content-length":
            stripped = raw_value.strip()
            if not stripped.isdigit() or length is not None:
                raise ValueError(f"invalid WSGI response Content-Length {value!r}")
            length = int(stripped)
            raw_value = stripped
        checked.append((lower, raw_value))
    return checked, length


class _Response:
    """The response side of one WSGI call: ``start_response``, ``write`` and the body iterable."""

    __slots__ = ("_bridge", "_head", "_status", "_headers", "_length", "_sent", "_started", "final")

    def __init__(self, bridge: _Bridge, method: str) -> None:
        self._bridge = bridge
        self._head = method == "HEAD"
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._length: int | None = None
        self._sent = 0
        self._started = False
        #: The last messages (``more_body=False``), left for the event loop to send.
        self.final: list[Message] = []

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> WriteCallable:
        """PEP 3333 ``start_response``."""
        if exc_info is not None:
            try:
                if self._started and exc_info[1] is not None:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self._status:
            raise RuntimeError("start_response() called a second time without exc_info")
        code = _check_status(status)
        self._headers, self._length = _check_headers(headers)
        self._status = code
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333 ``write()``: send ``data`` now (deprecated by the PEP but supported)."""
        if not self._status:
            raise RuntimeError("write() called before start_response()")
        data = _as_bytes(data, "write() argument")
        budget = self._budget()
        if budget is not None and len(data) > budget:
            raise ValueError(
                f"write() past the response's Content-Length of {self._length} bytes "
                f"({self._sent} sent, {len(data)} more given)"
            )
        self._send(data, more=True)

    def _budget(self) -> int | None:
        """Bytes the application's Content-Length still allows, or None if it sets no limit."""
        if self._length is None or self._head or self._status in _NO_BODY_STATUS:
            return None
        return self._length - self._sent

    def _send(self, data: bytes, more: bool) -> None:
        messages: list[Message] = []
        if not self._started:
            if not self._status:
                raise RuntimeError("the WSGI application did not call start_response()")
            self._started = True
            messages.append({"type": "http.response.start", "status": self._status, "headers": self._headers})
        self._sent += len(data)
        messages.append({"type": "http.response.body", "body": data, "more_body": more})
        if more:
            self._bridge.send_all(messages)
        else:  # nothing follows: the loop sends it once the thread is done (saves a round trip)
            self.final = messages

    def run(self, app: WSGIApp, environ: Environ) -> None:
        """Call ``app`` and send everything it produces (worker thread)."""
        result = app(environ, self.start_response)
        try:
            self._stream(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    def _stream(self, result: Iterable[bytes]) -> None:
        if isinstance(result, bytes | bytearray | str):
            raise TypeError(
                f"the WSGI application returned {type(result).__name__}; "
                "it must return an iterable of bytes, such as [body]"
            )
        last = len(result) - 1 if isinstance(result, list | tuple) else -1
        for index, chunk in enumerate(result):
            data = _as_bytes(chunk, "the response iterable")
            final = index == last
            if not data and not final:
                continue
            budget = self._budget()
            if budget is not None and len(data) >= budget:
                if len(data) > budget:
                    logger.warning(
                        "WSGI response is longer than its Content-Length of %d bytes; cut short", self._length
                    )
                self._send(data[:budget], more=False)
                return
            if final:
                self._check_complete(len(data))
                self._send(data, more=False)
                return
            self._send(data, more=True)
        self._check_complete(0)
        self._send(b"", more=False)

    def _check_complete(self, final: int) -> None:
        budget = self._budget()
        if budget is not None and budget > final:
            raise RuntimeError(
                f"WSGI response ended after {self._sent + final} bytes "
                f"of its {self._length}-byte Content-Length"
            )


def _as_bytes(data: Any, what: str) -> bytes:
    if type(data) is bytes:
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"{what} must give bytes, got {type(data).__name__}: {data!r:.60}")


# ---------------------------------------------------------------------------- thread pool


class DaemonThreadPool(concurrent.futures.Executor):
    """A thread pool like ``ThreadPoolExecutor`` whose threads are daemons.

    ``ThreadPoolExecutor`` joins its threads at interpreter exit, so one WSGI call stuck in
    application code would keep the worker process alive after the graceful-shutdown timeout
    (until the supervisor kills it). Here the abandoned call is dropped when the process exits.
    Threads start on demand, up to ``max_workers``, and are reused while idle.
    """

    def __init__(self, max_workers: int | None = None, name: str = "squall-wsgi") -> None:
        self.max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self._name = name
        self._work: queue.SimpleQueue[_WorkItem | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._shutdown = False

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._work.put(_WorkItem(future, lambda: fn(*args, **kwargs)))
            if not self._idle.acquire(blocking=False) and len(self._threads) < self.max_workers:
                thread = threading.Thread(
                    target=self._worker, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
        return future

    def _worker(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            item.run()
            del item
            self._idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while True:
                    try:
                        item = self._work.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        item.future.cancel()
            for _ in self._threads:
                self._work.put(None)
        if wait:
            for thread in self._threads:
                thread.join()


class _WorkItem:
    __slots__ = ("future", "fn")

    def __init__(self, future: concurrent.futures.Future[Any], fn: Callable[[], Any]) -> None:
        self.future = future
        self.fn = fn

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.fn()
        except BaseException as exc:
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)


# ---------------------------------------------------------------------------- adapter


class WSGIAdapter:
    """An ASGI 3 application serving the PEP 3333 application ``app`` from a thread pool.

    ``max_workers`` bounds the threads (concurrent WSGI calls); ``None`` takes
    ``ThreadPoolExecutor``'s default, ``min(32, os.cpu_count() + 4)``. Requests beyond it wait
    in the pool's queue.
    """

    def __init__(self, app: WSGIApp, *, max_workers: int | None = None) -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.app = app
        self.max_workers = max_workers
        self._executor: DaemonThreadPool | None = None

    @property
    def executor(self) -> DaemonThreadPool:
        """The thread pool, created on first use (so after any fork)."""
        if self._executor is None:
            self._executor = DaemonThreadPool(self.max_workers)
        return self._executor

    def shutdown(self) -> None:
        """Release the thread pool without waiting; a later request starts a new one."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000, "reason": ""})
        else:
            raise ValueError(f"WSGIAdapter cannot serve {kind!r} scopes")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        bridge = _Bridge(loop, receive, send)
        errors = ErrorStream()
        environ = build_environ(scope, InputStream(bridge), errors)
        response = _Response(bridge, scope["method"])
        context = contextvars.copy_context()
        future = loop.run_in_executor(self.executor, context.run, self._call, response, environ, errors)
        try:
            final = await future
        except asyncio.CancelledError:
            bridge.abort()
            raise

        for message in final:
            await send(message)

    def _call(self, response: _Response, environ: Environ, errors: ErrorStream) -> list[Message]:
        try:
            response.run(self.app, environ)
        finally:
            errors.flush()
        return response.final
