"""Start an application coroutine as a task, eagerly where the runtime allows it.

On Python 3.12+ the task is created with ``eager_start=True``: the app runs synchronously up to
its first real suspension, inside its own task (so ``asyncio.current_task()``, anyio cancel
scopes and ``asyncio.timeout`` behave), and a request that never suspends never touches the
event loop's ready queue. On 3.11 it is an ordinary task.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any

EAGER = sys.version_info >= (3, 12)


def start_task(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """Run ``coro`` as a task on ``loop``, starting it eagerly when supported."""
    if EAGER:
        return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]
    return loop.create_task(coro)
