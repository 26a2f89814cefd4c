"""Turn ``module:attribute`` into an ASGI 3 callable (``--factory``, ASGI 2 and WSGI detection)."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Any

from squall.asgi.types import ASGIApp, Receive, Scope, Send
from squall.config import AppSettings


class LoadError(Exception):
    """The app could not be loaded; the text says why in one line."""


def load_env_file(path: str) -> dict[str, str]:
    """``--env-file``: set the variables of a dotenv file that the environment does not already
    have, with python-dotenv (what uvicorn uses, so a file means the same: quotes, ``export``,
    ``${VAR}`` expansion). Returns the variables set. Raises LoadError."""
    try:
        from dotenv import load_dotenv
    except ImportError:
        raise LoadError("--env-file needs python-dotenv: pip install 'squall[dotenv]'") from None
    before = dict(os.environ)
    try:
        with open(path, encoding="utf-8") as handle:
            load_dotenv(stream=handle, override=False)
    except OSError as exc:
        raise LoadError(f"--env-file: cannot read {path}: {exc.strerror or exc}") from None
    return {k: v for k, v in os.environ.items() if k not in before}


def import_from_string(spec: str) -> Any:
    """Import ``module:attr.attr``. Raises LoadError naming the part that failed."""
    module_name, sep, attrs = spec.partition(":")
    if not sep or not module_name or not attrs:
        raise LoadError(f"app must be given as 'module:attribute', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise LoadError(f"cannot import module {module_name!r} (from {spec!r}): {exc}") from exc
        raise LoadError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise LoadError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for attr in attrs.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise LoadError(f"module {module_name!r} has no attribute {attrs!r} (from {spec!r})") from None
    return obj


def detect_interface(app: Any) -> str:
    """``asgi3``, ``asgi2`` or ``wsgi``, by the shape of the callable."""
    if inspect.isclass(app):
        return "asgi3" if hasattr(app, "__await__") else "asgi2"
    call = app if inspect.isroutine(app) else getattr(app, "__call__", None)  # noqa: B004
    if inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(app):
        return "asgi3"
    try:
        params = [
            p
            for p in inspect.signature(app).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
    except (TypeError, ValueError):
        return "asgi3"
    return "wsgi" if len(params) == 2 else "asgi2" if len(params) == 1 else "asgi3"


def asgi2_to_asgi3(app: Any) -> ASGIApp:
    """Wrap an ASGI 2 double callable as ASGI 3."""

    async def asgi3(scope: Scope, receive: Receive, send: Send) -> None:
        instance = app(scope)
        await instance(receive, send)

    return asgi3


def load_app(settings: AppSettings) -> ASGIApp:
    """Import, build (``--factory``) and adapt the configured application."""
    if settings.env_file:
        load_env_file(settings.env_file)
    if settings.app_dir and settings.app_dir not in sys.path:
        sys.path.insert(0, settings.app_dir)
    return prepare_app(import_from_string(settings.app), settings, repr(settings.app))


def prepare_app(obj: Any, settings: AppSettings, name: str) -> ASGIApp:
    """Build (``--factory``) and adapt an app object (``name`` says which in errors)."""
    if settings.factory:
        if not callable(obj):
            raise LoadError(f"--factory: {name} is not callable")
        try:
            obj = obj()
        except Exception as exc:
            raise LoadError(f"--factory: calling {name} failed: {type(exc).__name__}: {exc}") from exc
    if not callable(obj):
        raise LoadError(f"{name} is not callable (got {type(obj).__name__})")
    interface = settings.interface if settings.interface != "auto" else detect_interface(obj)
    if interface == "asgi2":
        return asgi2_to_asgi3(obj)
    if interface == "wsgi":
        from squall.asgi.wsgi import WSGIAdapter

        return WSGIAdapter(obj)
    return obj  # type: ignore[no-any-return]
