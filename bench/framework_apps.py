"""The framework apps of ``bench/suite.py``: a Starlette JSON route, a FastAPI route with a
pydantic body, and Starlette's ``FileResponse`` (pathsend where the server offers it)."""

from __future__ import annotations

import os

from fastapi import FastAPI
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

FILE_DIR = os.environ.get("BENCH_FILE_DIR", "/tmp/squall-bench-files")


async def _json(request: Request) -> JSONResponse:
    return JSONResponse({"message": "Hello, world!", "items": [1, 2, 3], "ok": True})


async def _file(request: Request) -> FileResponse:
    return FileResponse(os.path.join(FILE_DIR, request.path_params["name"]))


starlette_app = Starlette(routes=[Route("/json", _json), Route("/files/{name}", _file)])


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []
    quantity: int = 1


fastapi_app = FastAPI()


@fastapi_app.post("/items")
async def create_item(item: Item) -> dict[str, object]:
    return {"name": item.name, "total": item.price * item.quantity, "tags": item.tags}
