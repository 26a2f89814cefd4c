"""Start an application coroutine as a task.

Measured, not assumed: Python 3.12's ``eager_start=True`` (run the app synchronously up to its
first suspension) was *slower* here with uvloop — hello world 19.9k req/s eager against 29.2k with
an ordinary task on 3.12.1 (``bench/run.sh``, one worker, wrk -c64) — so every request gets an
ordinary task. Stepping the coroutine by hand without a task is not an option: anyio cancel
scopes, ``asyncio.timeout`` and ``asyncio.current_task()`` need the app to run inside its task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


def start_task(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """Run ``coro`` as a task on ``loop``."""
    return loop.create_task(coro)
