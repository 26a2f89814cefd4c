"""ASGI apps that the end-to-end tests run under a real squall process.

``app`` is a small router (one handler per path). Apps report events to the test in two ways:
``note()`` prints an ``APP ...`` line on stderr (the harness captures it), and ``report()``
records a result that a later request to ``/report?id=...`` waits for (an asyncio.Event
handshake, so the test never has to sleep).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Params = dict[str, str]
Handler = Callable[[Scope, Receive, Send, Params], Awaitable[None]]

CHUNK = 64 * 1024


def note(text: str) -> None:
    """Tell the test something through the server's stderr."""
    print(f"APP {text}", file=sys.stderr, flush=True)


_REPORTS: dict[str, Any] = {}
_EVENTS: dict[str, asyncio.Event] = {}


def _event(key: str) -> asyncio.Event:
    return _EVENTS.setdefault(key, asyncio.Event())


def report(key: str, value: Any) -> None:
    """Record a result for ``/report?id=key``."""
    _REPORTS[key] = value
    _event(key).set()


# --- helpers ---------------------------------------------------------------------------------


async def start(send: Send, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})


async def respond(
    send: Send, body: bytes, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await start(send, status, [(b"content-type", b"text/plain"), *(headers or [])])
    await send({"type": "http.response.body", "body": body})


async def respond_json(send: Send, data: Any, status: int = 200) -> None:
    body = json.dumps(data).encode()
    await start(send, status, [(b"content-type", b"application/json")])
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive) -> tuple[bytes, list[bool]]:
    """The whole request body and the ``more_body`` flag of every message."""
    parts: list[bytes] = []
    flags: list[bool] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client went away while sending its body")
        parts.append(message.get("body", b""))
        flags.append(message.get("more_body", False))
        if not flags[-1]:
            return b"".join(parts), flags


def _text(value: Any) -> Any:
    """JSON-friendly view of scope values: bytes become latin-1 strings (lossless)."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, list | tuple):
        return [_text(item) for item in value]
    if isinstance(value, dict):
        return {key: _text(item) for key, item in value.items()}
    return value


def describe_scope(scope: Scope) -> dict[str, Any]:
    shown = {key: _text(value) for key, value in scope.items()}
    shown["types"] = {key: type(value).__name__ for key, value in scope.items()}
    shown["header_types"] = sorted({f"{type(n).__name__},{type(v).__name__}" for n, v in scope["headers"]})
    shown["client_port_type"] = type((scope.get("client") or [None, None])[1]).__name__
    shown["server_port_type"] = type((scope.get("server") or [None, None])[1]).__name__
    return shown


# --- handlers --------------------------------------------------------------------------------


async def hello(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    await respond(send, b"hello")


async def show_scope(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    await respond_json(send, describe_scope(scope))


async def mutate_state(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    scope["state"]["mutated_by_request"] = True
    scope["state"].pop("greeting", None)
    await respond_json(send, sorted(scope["state"]))


async def echo(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    body, _ = await read_body(receive)
    await respond(send, body)


async def body_info(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    body, flags = await read_body(receive)
    info = {"length": len(body), "sha256": hashlib.sha256(body).hexdigest(), "more_body": flags}
    await respond_json(send, info)


async def stream(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    await start(send, 200, [(b"content-type", b"text/plain")])
    for n in range(int(params.get("n", "3"))):
        await send({"type": "http.response.body", "body": b"chunk-%d\n" % n, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def fixed(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    await respond(send, b"hello world", headers=[(b"content-length", b"11")])


async def status(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    await start(send, int(params["code"]), [(b"x-status-app", b"1")])
    await send({"type": "http.response.body", "body": b"must-not-be-sent"})


async def raise_before(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    raise RuntimeError("kaboom-before-start")


async def raise_after(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    await start(send)
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise RuntimeError("kaboom-after-start")


async def no_response(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    return None


_INVALID: dict[str, list[Message]] = {
    "status-str": [{"type": "http.response.start", "status": "200", "headers": []}],
    "header-crlf": [
        {"type": "http.response.start", "status": 200, "headers": [(b"x-evil", b"a\r\nx-injected: 1")]}
    ],
    "body-str": [
        {"type": "http.response.start", "status": 200, "headers": []},
        {"type": "http.response.body", "body": "text, not bytes"},
    ],
    "body-first": [{"type": "http.response.body", "body": b"too early"}],
}


async def invalid(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    for message in _INVALID[params["kind"]]:
        await send(message)


async def too_long(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    """Declare Content-Length 5 and send 10 bytes (in one message, or in two)."""
    await start(send, 200, [(b"content-length", b"5")])
    if params.get("split") == "1":
        await send({"type": "http.response.body", "body": b"01234", "more_body": True})
        await send({"type": "http.response.body", "body": b"56789"})
    else:
        await send({"type": "http.response.body", "body": b"0123456789"})


async def sleep(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    if "id" in params:
        note(f"sleep started {params['id']}")
    await asyncio.sleep(float(params.get("s", "0.5")))
    await respond(send, b"slept")


async def hold(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    """Announce itself, then answer once the (stalled) request body has fully arrived."""
    note(f"hold started {params.get('id', '')}")
    body, _ = await read_body(receive)
    await respond(send, b"held:" + body)


async def forever(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    note("forever started")
    await asyncio.get_running_loop().create_future()


async def long_poll(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    """Never respond; report when ``http.disconnect`` arrives."""
    key = params["id"]
    note(f"long-poll waiting {key}")
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            report(key, {"disconnected": True})
            return


async def stream_until_error(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    """Stream until ``send()`` fails; report the exception, then re-raise or swallow it."""
    key = params["id"]
    await start(send, 200, [(b"content-type", b"application/octet-stream")])
    try:
        for _ in range(20_000):
            await send({"type": "http.response.body", "body": b"x" * 16384, "more_body": True})
            await asyncio.sleep(0.001)
    except Exception as exc:
        report(key, {"type": type(exc).__name__, "is_oserror": isinstance(exc, OSError)})
        if params.get("swallow") != "1":
            raise
        return
    report(key, {"type": None, "is_oserror": False})
    await send({"type": "http.response.body", "body": b""})


async def until_file(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    """``chunk-N\\n`` padded with dots to ``size`` bytes every ``delay`` s until the file ``path``
    exists, then ``end N\\n`` (N: how many chunks were sent)."""
    path, size, delay = params["path"], int(params.get("size", "16384")), float(params.get("delay", "0.05"))
    await start(send, 200, [(b"content-type", b"text/plain")])
    sent = 0
    while not os.path.exists(path):
        chunk = (b"chunk-%d\n" % sent).ljust(size, b".")
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        sent += 1
        await asyncio.sleep(delay)
    await send({"type": "http.response.body", "body": b"end %d\n" % sent})


async def get_report(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    key = params["id"]
    try:
        await asyncio.wait_for(_event(key).wait(), float(params.get("wait", "5")))
    except TimeoutError:
        await respond_json(send, {"timeout": True}, status=504)
        return
    await respond_json(send, _REPORTS[key])


async def big(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    """Stream ``mib`` MiB without Content-Length; every chunk is a fresh object."""
    await start(send, 200, [(b"content-type", b"application/octet-stream")])
    for n in range(int(params.get("mib", "20")) * 1024 * 1024 // CHUNK):
        await send({"type": "http.response.body", "body": bytes([n % 256]) * CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def slow_read(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    """Read the body slowly, keeping only its length."""
    total = messages = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        total += len(message.get("body", b""))
        messages += 1
        if not message.get("more_body", False):
            break
        await asyncio.sleep(0.002)
    await respond_json(send, {"length": total, "messages": messages})


async def upload(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    """Read the body; report how much came and whether ``http.disconnect`` ended it."""
    key = params["id"]
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            report(key, {"disconnected": True, "received": total})
            return
        total += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    report(key, {"disconnected": False, "received": total})
    await respond_json(send, {"received": total})


async def no_read(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    await respond(send, b"answered without reading")


_SENT: dict[str, int] = {}


async def flood(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    """Stream 64 KiB chunks until ``send()`` fails, counting what it accepted (``/sent``)."""
    key = params["id"]
    _SENT[key] = 0
    await start(send, 200, [(b"content-type", b"application/octet-stream")])
    try:
        while True:
            await send({"type": "http.response.body", "body": b"f" * CHUNK, "more_body": True})
            _SENT[key] += CHUNK
    except Exception as exc:
        report(key, {"sent": _SENT[key], "error": type(exc).__name__})


async def sent(scope: Scope, receive: Receive, send: Send, params: Params) -> None:
    await respond_json(send, {"sent": _SENT.get(params["id"])})


ROUTES: dict[str, Handler] = {
    "/flood": flood,
    "/sent": sent,
    "/": hello,
    "/scope": show_scope,
    "/state-mutate": mutate_state,
    "/echo": echo,
    "/body-info": body_info,
    "/stream": stream,
    "/fixed": fixed,
    "/status": status,
    "/raise-before": raise_before,
    "/raise-after": raise_after,
    "/no-response": no_response,
    "/invalid": invalid,
    "/too-long": too_long,
    "/sleep": sleep,
    "/hold": hold,
    "/forever": forever,
    "/long-poll": long_poll,
    "/stream-until-error": stream_until_error,
    "/report": get_report,
    "/until-file": until_file,
    "/big": big,
    "/slow-read": slow_read,
    "/no-read": no_read,
    "/upload": upload,
}


async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["greeting"] = "hello from lifespan"
            await send({"type": "lifespan.startup.complete"})
            note("lifespan startup complete")
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            note("lifespan shutdown complete")
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The router app most tests use."""
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    params = dict(parse_qsl(scope["query_string"].decode("latin-1")))
    path = scope["path"].removeprefix(scope.get("root_path", "")) or "/"
    handler = ROUTES.get(path, show_scope)  # unknown paths show the scope
    await handler(scope, receive, send, params)


# --- apps for lifespan, factory and interface tests -----------------------------------------


async def failing_startup_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable (e2e)"})
        return
    await respond(send, b"should never serve")


async def raising_startup_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await receive()
        raise RuntimeError("startup exploded (e2e)")
    await respond(send, b"served")


async def no_lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        raise ValueError(f"unsupported scope type {scope['type']!r}")
    await respond(send, b"no lifespan here")


def make_app() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """A factory (``--factory``): returns a fresh app."""

    async def made(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await respond(send, b"made by factory")

    return made


class Asgi2App:
    """An ASGI 2 ("double callable") application."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, receive: Receive, send: Send) -> None:
        if self.scope["type"] == "http":
            await respond(send, b"asgi2 " + self.scope["path"].encode())
