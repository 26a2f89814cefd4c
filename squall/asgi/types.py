"""The ASGI contract, typed once (asgiref's asgi 3.0, www 2.5 and lifespan 2.0 specs)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: ``scope["asgi"]`` of the http and websocket scopes: both follow the www spec, 2.5.
ASGI_VERSION = {"version": "3.0", "spec_version": "2.5"}
#: ``scope["asgi"]`` of the lifespan scope, which follows its own spec, 2.0.
LIFESPAN_ASGI_VERSION = {"version": "3.0", "spec_version": "2.0"}


class ClientDisconnected(OSError):
    """``send()`` was called after the client went away (www spec 2.4: an OSError subclass)."""


class ASGIMessageError(RuntimeError):
    """The application sent a message that breaks the ASGI spec; the text names the problem."""
