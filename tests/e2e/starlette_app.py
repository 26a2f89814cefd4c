"""A small Starlette application served by squall in the framework test."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route


async def homepage(request: Request) -> PlainTextResponse:
    return PlainTextResponse("starlette says hi")


async def user(request: Request) -> JSONResponse:
    return JSONResponse({"user": request.path_params["name"], "q": request.query_params.get("q")})


async def upload(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"length": len(body), "head": body[:16].decode("latin-1")}, status_code=201)


async def numbers(request: Request) -> StreamingResponse:
    async def generate() -> AsyncIterator[bytes]:
        for n in range(5):
            yield f"{n}\n".encode()

    return StreamingResponse(generate(), media_type="text/plain")


async def state(request: Request) -> JSONResponse:
    return JSONResponse({"started": request.state.started})


async def lifespan(app: Starlette) -> AsyncIterator[dict[str, bool]]:
    yield {"started": True}


app = Starlette(
    routes=[
        Route("/", homepage),
        Route("/users/{name}", user),
        Route("/upload", upload, methods=["POST"]),
        Route("/numbers", numbers),
        Route("/state", state),
    ],
    lifespan=lifespan,  # type: ignore[arg-type]
)
