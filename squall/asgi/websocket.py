"""One WebSocket session: the ``websocket.*`` ASGI messages (www spec 2.5) — for every HTTP version.

How it works
------------
The connection creates a ``WebSocketSession`` for a valid opening handshake and starts it. The
application's first ``receive()`` returns ``websocket.connect``; it answers with
``websocket.accept`` (the connection writes the 101), ``websocket.close`` (HTTP 403, no
handshake) or a denial response (``websocket.http.response.start``/``body``, the
``websocket.http.response`` extension). After the accept, the connection feeds messages in
(``on_message``) and the close (``on_close``); ``receive()`` hands them out in order, then
``websocket.disconnect``. This module checks every message against the spec and knows no wire
format: the connection (the ``Channel``) frames and writes.

Session state machine (``_state``)::

    CONNECTING --accept--> OPEN --close / peer close / disconnect--> CLOSED
        |--close----------------------------------------------------> CLOSED  (HTTP 403)
        '--http.response.start--> RESPONDING --body(more_body=False)--> CLOSED  (denial response)

When the app returns or raises: still CONNECTING → HTTP 500; OPEN → close frame 1000 if it
returned, 1011 if it raised; RESPONDING → the connection is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Protocol

from squall.asgi.http import checked_status, plain_int, response_body, validate_headers
from squall.asgi.types import ASGIApp, ASGIMessageError, ClientDisconnected, Message, Scope
from squall.events import Headers
from squall.grammar import TOKEN

logger = logging.getLogger("squall.error")

_CONNECTING, _OPEN, _RESPONDING, _CLOSED = range(4)
_CONNECT: dict[str, Any] = {"type": "websocket.connect"}
_RESERVED_HEADERS = frozenset(
    (
        b"connection",
        b"upgrade",
        b"sec-websocket-accept",
        b"sec-websocket-extensions",
        b"content-length",
        b"transfer-encoding",
    )
)


class Channel(Protocol):
    """What a session needs from its connection (HTTP/1.1 today, HTTP/2 extended CONNECT later)."""

    loop: asyncio.AbstractEventLoop
    write_paused: bool

    def accept(self, subprotocol: str | None, headers: Headers) -> None: ...
    def send_message(self, data: str | bytes) -> None: ...
    def close(self, code: int, reason: str) -> None: ...
    def respond(self, status: int, headers: Headers, body: bytes, more: bool) -> None: ...
    def respond_body(self, body: bytes, more: bool) -> None: ...
    async def drain(self) -> None: ...
    def message_consumed(self) -> None: ...
    def abort(self) -> None: ...
    def session_finished(self, session: WebSocketSession) -> None: ...


def check_close_message(message: Message) -> tuple[int, str]:
    """The code and reason of a ``websocket.close`` message. Raises ASGIMessageError."""
    given = message.get("code", 1000)
    reason = message.get("reason")
    if reason is None:
        reason = ""
    code = plain_int(given)  # an IntEnum (websockets' CloseCode) counts as its value
    if code is None:
        raise ASGIMessageError(f"'code' must be an int, got {type(given).__name__}")
    if not (code == 1000 or 1001 <= code <= 1014 or 3000 <= code <= 4999) or code in (1004, 1005, 1006):
        raise ASGIMessageError(f"close code {code} cannot be sent")
    if not isinstance(reason, str):
        raise ASGIMessageError(f"'reason' must be a str, got {type(reason).__name__}")
    if len(reason.encode("utf-8")) > 123:
        raise ASGIMessageError("close 'reason' is longer than 123 bytes in UTF-8")
    return code, reason


class WebSocketSession:
    """One WebSocket session between a connection and the application."""

    __slots__ = (
        "scope",
        "task",
        "queued",
        "_channel",
        "_app",
        "_state",
        "_connect_sent",
        "_messages",
        "_waiter",
        "_closed",
        "_close_code",
        "_close_reason",
        "_subprotocols",
    )

    def __init__(self, channel: Channel, app: ASGIApp, scope: Scope) -> None:
        self.scope = scope
        self.task: asyncio.Task[None] | None = None
        self.queued = 0  # messages received but not yet read by the app
        self._channel = channel
        self._app = app
        self._state = _CONNECTING
        self._connect_sent = False
        self._messages: deque[Message] = deque()
        self._waiter: asyncio.Future[Message] | None = None
        self._closed = False  # the client is gone or the closing handshake happened
        self._close_code = 1006
        self._close_reason = ""
        self._subprotocols: list[str] = scope.get("subprotocols", [])

    # ------------------------------------------------------------ connection side

    def start(self) -> None:
        """Start the application."""
        self.task = self._channel.loop.create_task(self._run())

    def on_message(self, data: str | bytes) -> None:
        """A complete message arrived."""
        message: Message = (
            {"type": "websocket.receive", "text": data}
            if type(data) is str
            else {"type": "websocket.receive", "bytes": data}
        )
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(message)
                return
        self._messages.append(message)
        self.queued += 1

    def on_close(self, code: int, reason: str = "") -> None:
        """The session ended: the peer's (or our failure's) close code, 1006 if the TCP dropped."""
        if self._closed:
            return
        self._closed = True
        self._close_code = code
        self._close_reason = reason
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(self._disconnect_message())

    def _disconnect_message(self) -> Message:
        return {"type": "websocket.disconnect", "code": self._close_code, "reason": self._close_reason}

    # ------------------------------------------------------------ application side

    async def _run(self) -> None:
        try:
            await self._app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            logger.debug("websocket client disconnected")
        except Exception as exc:
            if isinstance(exc, ASGIMessageError):
                logger.error("ASGI application sent an invalid message: %s", exc, exc_info=exc)
            else:
                logger.error("Exception in ASGI application", exc_info=exc)
            self._finish(1011)
        else:
            if self._state == _CONNECTING:
                logger.error("ASGI application returned without accepting or closing the websocket")
            self._finish(1000)
        finally:
            self._channel.session_finished(self)

    def _finish(self, code: int) -> None:
        """The app is done: complete whatever it left unfinished."""
        state = self._state
        self._state = _CLOSED
        channel = self._channel
        if state == _CONNECTING:
            if not self._closed:
                channel.respond(500, [(b"content-type", b"text/plain; charset=utf-8")], b"", False)
        elif state == _OPEN:
            if not self._closed:
                channel.close(code, "")
        elif state == _RESPONDING:
            channel.abort()

    async def receive(self) -> Message:
        """ASGI ``receive``: connect, then the messages, then disconnect."""
        messages = self._messages
        if messages and self._connect_sent:
            self.queued -= 1
            if not self.queued:
                self._channel.message_consumed()
            return messages.popleft()
        if not self._connect_sent:
            self._connect_sent = True
            return _CONNECT
        if self._closed:
            return self._disconnect_message()
        waiter: asyncio.Future[Message] = self._channel.loop.create_future()
        self._waiter = waiter
        try:
            return await waiter
        finally:
            self._waiter = None

    async def send(self, message: Message) -> None:
        """ASGI ``send``: validates the message and hands it to the connection."""
        try:
            mtype = message["type"]
        except (KeyError, TypeError):
            raise ASGIMessageError(f"message must be a dict with a 'type' key: {message!r}") from None
        if self._closed:
            raise ClientDisconnected("websocket client disconnected")
        state = self._state
        if state == _OPEN and mtype == "websocket.send":
            data = _payload(message)
            channel = self._channel
            channel.send_message(data)
            if channel.write_paused:
                await channel.drain()
        elif state == _CONNECTING:
            self._send_connecting(mtype, message)
        elif state == _OPEN:
            if mtype != "websocket.close":
                raise ASGIMessageError(f"expected 'websocket.send' or 'websocket.close', got {mtype!r}")
            code, reason = check_close_message(message)
            self._state = _CLOSED
            self._channel.close(code, reason)
        elif state == _RESPONDING:
            if mtype != "websocket.http.response.body":
                raise ASGIMessageError(f"expected 'websocket.http.response.body', got {mtype!r}")
            body, more = response_body(message)
            if not more:
                self._state = _CLOSED
            self._channel.respond_body(body, more)
            if more and self._channel.write_paused:
                await self._channel.drain()
        else:
            raise ClientDisconnected(f"cannot send {mtype!r}: the websocket is closed")

    def _send_connecting(self, mtype: Any, message: Message) -> None:
        if mtype == "websocket.accept":
            subprotocol, headers = self._check_accept(message)
            self._state = _OPEN
            self._channel.accept(subprotocol, headers)
        elif mtype == "websocket.close":
            check_close_message(message)
            self._state = _CLOSED
            self._channel.respond(403, [(b"content-type", b"text/plain; charset=utf-8")], b"", False)
        elif mtype == "websocket.http.response.start":
            status = checked_status(message.get("status"))
            headers = validate_headers(message.get("headers", ()))
            self._state = _RESPONDING
            self._channel.respond(status, headers, b"", True)
        elif mtype == "websocket.send":
            raise ASGIMessageError("'websocket.send' before 'websocket.accept'")
        else:
            raise ASGIMessageError(
                "expected 'websocket.accept', 'websocket.close' or 'websocket.http.response.start', "
                f"got {mtype!r}"
            )

    def _check_accept(self, message: Message) -> tuple[str | None, Headers]:
        subprotocol = message.get("subprotocol")
        headers = validate_headers(message.get("headers", ()))
        kept: Headers = []
        for name, value in headers:
            if name in _RESERVED_HEADERS:
                raise ASGIMessageError(f"header {name!r} is set by the server in a websocket handshake")
            if name == b"sec-websocket-protocol":
                if subprotocol is not None:
                    raise ASGIMessageError("both 'subprotocol' and a Sec-WebSocket-Protocol header")
                subprotocol = value.decode("latin-1")
                continue
            kept.append((name, value))
        if subprotocol is not None:
            if not isinstance(subprotocol, str) or not TOKEN.fullmatch(subprotocol.encode("latin-1")):
                raise ASGIMessageError(f"'subprotocol' must be a token str, got {subprotocol!r}")
            if subprotocol not in self._subprotocols:
                logger.warning("websocket subprotocol %r was not offered by the client", subprotocol)
        return subprotocol, kept


def _payload(message: Message) -> str | bytes:
    text = message.get("text")
    data = message.get("bytes")
    if text is not None:
        if data is not None:
            raise ASGIMessageError("'websocket.send' with both 'bytes' and 'text'")
        if type(text) is not str:
            raise ASGIMessageError(f"'text' must be a str, got {type(text).__name__}")
        return text
    if data is None:
        raise ASGIMessageError("'websocket.send' needs 'bytes' or 'text'")
    if type(data) is not bytes:
        if not isinstance(data, bytearray | memoryview):
            raise ASGIMessageError(f"'bytes' must be bytes, got {type(data).__name__}")
        data = bytes(data)
    return data
