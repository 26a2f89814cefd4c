"""A Starlette app behind a (pretend) proxy: what it believes about the client, scheme and URLs."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket


def seen(conn: HTTPConnection) -> dict[str, object]:
    client = conn.scope.get("client")
    return {
        "client": list(client) if client else None,
        "scheme": conn.scope["scheme"],
        "host": conn.headers.get("host"),
        "url": str(conn.url),
    }


async def who(request: Request) -> JSONResponse:
    return JSONResponse(seen(request))


async def go(request: Request) -> RedirectResponse:
    """What FastAPI/Starlette apps do after a form post: redirect to a URL they build."""
    return RedirectResponse(request.url_for("target"), status_code=303)


async def target(request: Request) -> PlainTextResponse:
    return PlainTextResponse("here")


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json(seen(websocket))
    await websocket.close()


app = Starlette(
    routes=[
        Route("/who", who),
        Route("/go", go),
        Route("/target", target, name="target"),
        WebSocketRoute("/ws", ws),
    ]
)
