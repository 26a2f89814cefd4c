"""``--pid-file``: the main process's PID, written while it runs."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def pid_file(path: str | None) -> Iterator[None]:
    """Write this process's PID to ``path`` (when given) and remove the file on the way out.

    The file is left alone when it names another process by then. An ``exec`` inside the block
    leaves it in place: the new image keeps the PID and writes the file again.
    """
    if not path:
        yield
        return
    with open(path, "w") as handle:
        handle.write(f"{os.getpid()}\n")
    try:
        yield
    finally:
        _remove(path)


def _remove(path: str) -> None:
    with contextlib.suppress(OSError), open(path) as handle:
        if handle.read().strip() != str(os.getpid()):
            return
    with contextlib.suppress(OSError):
        os.unlink(path)
