"""Reports the garbage collector's settings as the app sees them while serving. With
SET_THRESHOLD in the environment it sets its own threshold at import, as a tuned app would."""

from __future__ import annotations

import gc
import json
import os
from typing import Any

if os.environ.get("SET_THRESHOLD"):
    gc.set_threshold(int(os.environ["SET_THRESHOLD"]), 10, 10)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = json.dumps({"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count(), "pid": os.getpid()})
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body.encode()})
