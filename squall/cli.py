"""``squall APP [options]``: the command line, derived from :mod:`squall.config`.

Precedence: built-in defaults < ``--config`` file < ``SQUALL_*`` environment < command line.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from typing import Any, NoReturn

from squall import __version__, build_info, config, stale_compiled_modules
from squall.logs import configure
from squall.process.listeners import BindError, bind_all
from squall.process.supervisor import Supervisor
from squall.server.tls import TLSConfigError, create_context

logger = logging.getLogger("squall.error")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Bad usage: one line naming the flag, exit code 2."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def _converter(option: config.Option) -> Any:
    def convert(text: str) -> Any:
        try:
            return option.parse_value(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = option.name
    return convert


_METAVARS = {
    "seconds": "SECONDS",
    "timeout": "SECONDS",
    "positive_int": "N",
    "limit": "N",
    "port": "PORT",
    "non_negative_int": "N",
    "workers": "N",
    "mebibytes": "MIB",
}


def _metavar(option: config.Option) -> str | None:
    if option.meta["choices"]:
        return "{" + ",".join(option.meta["choices"]) + "}"
    return _METAVARS.get(option.meta["parse"].__name__)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser, one group per settings section."""
    parser = _Parser(
        prog="squall",
        description="Serve an ASGI (or WSGI) application over HTTP/1.1, HTTP/2 and WebSockets.",
        epilog="Every option can also be set as SQUALL_<OPTION> in the environment "
        "(e.g. SQUALL_PORT=9000) or in a TOML file given with --config.",
    )
    parser.add_argument("--version", action="version", version=f"squall {__version__} ({build_info()})")
    parser.add_argument("--config", metavar="FILE", default=None, help="Read options from a TOML file.")
    groups: dict[str, Any] = {}
    for option in config.options():
        group = groups.get(option.group)
        if group is None:
            group = groups[option.group] = parser.add_argument_group(config.GROUP_TITLES[option.group])
        meta = option.meta
        default = option.default()
        shown = f" (default: {default})" if default not in (None, [], "") else ""
        common: dict[str, Any] = {"default": argparse.SUPPRESS, "help": meta["help"] + shown}
        if meta["kind"] == "positional":
            group.add_argument(option.name, nargs="?", metavar="APP", **common)
        elif meta["kind"] == "bool":
            group.add_argument(option.flag, dest=option.name, action=argparse.BooleanOptionalAction, **common)
        else:
            group.add_argument(
                option.flag,
                dest=option.name,
                type=_converter(option),
                action="append" if meta["kind"] == "append" else "store",
                metavar=meta["metavar"] or _metavar(option),
                **common,
            )
    return parser


def load_config(argv: list[str] | None = None) -> tuple[config.Config, argparse.Namespace]:
    """Parse the command line, environment and config file into a Config. Exits 2 on bad input."""
    parser = build_parser()
    namespace = parser.parse_args(argv)
    values: dict[str, Any] = {}
    try:
        if namespace.config:
            values.update(config.from_file(namespace.config))
        values.update(config.from_environ(os.environ))
    except config.OptionError as exc:
        parser.error(str(exc))
    values.update({k: v for k, v in vars(namespace).items() if k != "config"})
    if values.get("uds") and values.get("fd") is not None:
        parser.error("argument --fd: cannot be combined with --uds")
    return config.build(values), namespace


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``squall`` command; returns the exit code.

    The sockets are bound (or taken from systemd) here, before anything else. With one worker
    and no option that needs a supervisor (``ProcessSettings.supervised``) squall then serves in
    this very process, like uvicorn; otherwise it runs the supervisor, which imports no app and
    spawns the workers.
    """
    cfg, _ = load_config(argv)
    configure(cfg.runtime.log_level, cfg.runtime.access_log)
    if os.environ.pop(config.CHECK_ONLY_ENV, None):
        from squall.process.single import check_only  # imports asyncio: see _serve

        return _report(*check_only(cfg))
    for module in stale_compiled_modules():
        logging.getLogger("squall.error").warning(
            "%s is compiled from an older source; rebuild (pip install -e .) to run your edit", module
        )
    try:  # check key, certificate and password here, before any worker starts
        create_context(cfg.tls, cfg.http2.http2)
    except TLSConfigError as exc:
        return _report(1, str(exc))
    try:
        sockets = bind_all(cfg.socket)
    except BindError as exc:
        return _report(1, str(exc))
    try:
        return _report(*_serve(cfg, sockets))
    finally:
        for sock in sockets:
            sock.close()


def _serve(cfg: config.Config, sockets: list[socket.socket]) -> tuple[int, str | None]:
    if not cfg.process.supervised:
        # Imported here on purpose: the one-process server brings asyncio, the app's event loop
        # and uvloop, which a supervisor process must never import (its children are forked).
        from squall.process import single

        return single.run(cfg, sockets)
    supervisor = Supervisor(cfg, sockets)
    code = supervisor.run()
    return code, supervisor.failure


def _report(code: int, failure: str | None) -> int:
    """Print why squall could not serve (one line on stderr) and pass the exit code on."""
    if failure:
        print(f"squall: error: {failure}", file=sys.stderr)
    return code
