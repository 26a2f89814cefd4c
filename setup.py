"""Build squall; compile the HTTP/1.1 and HTTP/2 hot paths with mypyc when it can.

The modules in ``COMPILED`` are plain, type-checked Python. mypyc turns them into C extensions
(about half the instructions per request); without mypyc or a C compiler, or with
``SQUALL_NO_COMPILE=1``, the same modules install as pure Python and behave the same.
``squall --version`` tells which one is running.
"""

from __future__ import annotations

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED = [
    "squall/events.py",
    "squall/protocol/http1.py",
    "squall/asgi/http.py",
    "squall/server/state.py",
    "squall/server/http1.py",
    "squall/server/streams.py",
    "squall/server/http2.py",
    "squall/protocol/http2.py",
    "squall/protocol/hpackblocks.py",
    "squall/observe/metrics.py",
    "squall/observe/hooks.py",
]


class OptionalBuildExt(build_ext):
    """Build the extensions, or warn and install pure Python if the compiler fails."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, missing headers, ...
            _warn(f"building the C extensions failed ({exc}); installing pure Python")
            self.extensions = []
            return
        if self.inplace:  # a rebuild whose C did not change (a docstring edit) leaves old file
            for ext in self.extensions:  # times, and squall would call the modules stale
                path = self.get_ext_fullpath(ext.name)
                if os.path.exists(path):
                    os.utime(path)


def _warn(text: str) -> None:
    print(f"squall setup: {text}", file=sys.stderr)


def extensions() -> list:  # type: ignore[type-arg]
    if os.environ.get("SQUALL_NO_COMPILE"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _warn("mypyc is not available; installing pure Python")
        return []
    try:
        return mypycify(COMPILED, opt_level="3", group_name="squall")
    except (Exception, SystemExit) as exc:  # mypyc exits on a type error
        _warn(f"mypyc could not compile the hot path ({exc!r}); installing pure Python")
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
