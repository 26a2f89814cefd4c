"""glibc malloc thresholds for serving processes.

glibc returns a freed large block to the kernel (munmap, or trimming the heap top) and the next
request pays for fresh zero-filled pages again: with 1 MiB bodies that was most of a request's
cost. Serving processes use fixed thresholds instead, so body-sized buffers are reused; the memory
kept is bounded by the trim threshold. A value the user set in the environment wins.
"""

from __future__ import annotations

import os

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(4 << 20), "MALLOC_TRIM_THRESHOLD_": str(16 << 20)}
_MALLOPT = {"MALLOC_MMAP_THRESHOLD_": -3, "MALLOC_TRIM_THRESHOLD_": -1}  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD


def tune_children() -> None:
    """Set the thresholds for the processes spawned from now on (glibc reads them at startup)."""
    for name, value in MALLOC_ENV.items():
        os.environ.setdefault(name, value)


def tune_self() -> None:
    """Set the thresholds in this running process (mallopt); a no-op without glibc."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    for name, value in MALLOC_ENV.items():
        if name not in os.environ:
            mallopt(_MALLOPT[name], int(value))
