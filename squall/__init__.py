"""Squall: a fast, safe ASGI server (HTTP/1.1, HTTP/2, WebSockets) with its own process manager."""

import os
import platform
import sys
from importlib.util import find_spec, module_from_spec, spec_from_file_location
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: The modules setup.py compiles with mypyc when it can (the HTTP/1.1 and HTTP/2 hot paths).
COMPILED_MODULES = (
    "squall.events",
    "squall.protocol.http1",
    "squall.asgi.http",
    "squall.server.state",
    "squall.server.http1",
    "squall.server.streams",
    "squall.server.http2",
    "squall.protocol.http2",
    "squall.protocol.hpackblocks",
    "squall.observe.metrics",
    "squall.observe.hooks",
)


def _load_checkout_library() -> None:
    """An editable install (``pip install -e .``) builds mypyc's shared library, ``squall__mypyc``,
    beside the package in the checkout, where only a process started in the checkout finds it
    (the editable finder maps the package, not that top-level module): every compiled module
    then failed to import elsewhere. Load it from the checkout, under its own name only."""
    if "squall__mypyc" in sys.modules or find_spec("squall__mypyc") is not None:
        return
    checkout = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    try:
        names = os.listdir(checkout)
    except OSError:
        return
    for name in names:
        if name.startswith("squall__mypyc.") and name.endswith((".so", ".pyd")):
            spec = spec_from_file_location("squall__mypyc", os.path.join(checkout, name))
            if spec is None or spec.loader is None:
                return
            module = module_from_spec(spec)
            sys.modules["squall__mypyc"] = module
            spec.loader.exec_module(module)
            return


_load_checkout_library()


def _origin(module: str) -> str:
    """Where ``module`` would be loaded from, without importing it."""
    spec = find_spec(module)
    return (spec.origin if spec else None) or ""


def build_info() -> str:
    """``"compiled"`` or ``"pure Python"`` and the interpreter, for ``--version``."""
    kind = "pure Python" if _origin("squall.protocol.http1").endswith(".py") else "compiled"
    return f"{kind}, {platform.python_implementation()} {platform.python_version()}"


def stale_compiled_modules() -> list[str]:
    """Compiled modules older than their source (an edited checkout not rebuilt): they would
    shadow the edit, so the CLI warns about them."""
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.exists(os.path.join(checkout, "setup.py")):
        return []  # an installed wheel: its files' times say when pip unpacked them, nothing more
    stale = []
    library = _origin("squall__mypyc")  # mypyc puts the code of the whole group here
    built = os.path.getmtime(library) if library else 0.0
    for name in COMPILED_MODULES:
        path = _origin(name)
        directory, filename = os.path.split(path)
        source = os.path.join(directory, filename.split(".", 1)[0] + ".py")
        if path == source or not os.path.exists(source):
            continue
        if os.path.getmtime(source) > max(built, os.path.getmtime(path)):
            stale.append(name)
    return stale


#: The Python API, imported on first use (``squall.process.embed``): ``import squall`` and the
#: supervisor, which must never import asyncio, stay light.
_API = ("run", "Config", "Server", "StartupFailed")

if TYPE_CHECKING:
    from squall.process.embed import Config as Config
    from squall.process.embed import Server as Server
    from squall.process.embed import StartupFailed as StartupFailed
    from squall.process.embed import run as run


def __getattr__(name: str) -> Any:
    """``squall.run``, ``squall.Config``, ``squall.Server`` (see ``squall.process.embed``)."""
    if name in _API:
        from squall.process import embed

        return getattr(embed, name)
    raise AttributeError(f"module 'squall' has no attribute {name!r}")
