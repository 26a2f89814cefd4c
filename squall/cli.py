"""``squall APP [options]``: the command line, derived from :mod:`squall.config`.

Precedence: built-in defaults < ``--config`` file < ``SQUALL_*`` environment < command line.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import socket
import sys
from typing import Any, NoReturn

from squall import __version__, build_info, config, stale_compiled_modules
from squall.loader import LoadError, load_env_file
from squall.logs import LogConfigError, configure
from squall.process.listeners import BindError, bind_all, reuse_port_conflict
from squall.process.spawn import STARTUP_FAILURE
from squall.process.supervisor import Supervisor
from squall.server.tls import TLSConfigError, create_context

logger = logging.getLogger("squall.error")


#: Flags of other servers that squall refuses, with what to use instead (one line each). Every
#: uvicorn flag is accepted; tests/test_config.py checks that against ``uvicorn --help``.
REFUSED = {
    "--bind": "gunicorn's and hypercorn's --bind: use --host HOST --port PORT, or --uds PATH",
    "-b": "gunicorn's and hypercorn's -b (bind): use --host HOST --port PORT, or --uds PATH",
    "-w": "gunicorn's and hypercorn's -w: use --workers N",
    "--worker-class": "gunicorn's --worker-class: squall runs its own workers (drop it)",
    "-k": "gunicorn's -k (worker class): squall runs its own workers (drop it)",
    "--threads": "gunicorn's --threads: squall runs WSGI apps in a thread pool of its own",
    "--timeout": "gunicorn's --timeout: use --timeout-worker-healthcheck SECONDS",
    "--graceful-timeout": "gunicorn's --graceful-timeout: use --timeout-graceful-shutdown SECONDS",
    "--keep-alive": "gunicorn's and hypercorn's --keep-alive: use --timeout-keep-alive SECONDS",
    "--max-requests": "gunicorn's and hypercorn's --max-requests: use --limit-max-requests N",
    "--chdir": "gunicorn's --chdir: use --app-dir DIR",
    "--preload": "gunicorn's --preload: squall's supervisor never imports the app; each worker does",
    "--limit-request-fields": "gunicorn's --limit-request-fields: use --limit-request-headers N",
    "--limit-request-field_size": "gunicorn's --limit-request-field_size: use --limit-request-head N",
    "--certfile": "gunicorn's and hypercorn's --certfile: use --ssl-certfile PATH",
    "--keyfile": "gunicorn's and hypercorn's --keyfile: use --ssl-keyfile PATH",
    "--ca-certs": "gunicorn's and hypercorn's --ca-certs: use --ssl-ca-certs PATH",
    "--access-logfile": "squall writes access lines to stdout; use --log-config to send them elsewhere",
    "--error-logfile": "squall writes its error log to stderr; use --log-config to send it elsewhere",
    "--pid": "gunicorn's and hypercorn's --pid: use --pid-file PATH",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Bad usage: one line naming the flag, exit code 2."""
        self.exit(2, f"{self.prog}: error: {message}\n")

    def unknown(self, extras: list[str]) -> NoReturn:
        """One line per argument not understood, each naming it (and a close flag when there is
        one, or what to use instead of another server's flag); exit code 2."""
        flags = sorted({s for action in self._actions for s in action.option_strings})
        lines = []
        for extra in extras:
            name = extra.split("=", 1)[0]
            if not name.startswith("-"):
                continue  # a value of an unknown flag (argparse cannot tell): the flag says it
            elif name in REFUSED:
                lines.append(f"argument {name}: {REFUSED[name]}")
            else:
                close = config.close_matches(name, flags, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                lines.append(f"unrecognized argument {name}{hint}")
        if not lines:
            lines = [f"unrecognized arguments: {' '.join(extras)}"]
        self.exit(2, "".join(f"{self.prog}: error: {line}\n" for line in lines))


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


def build_parser() -> _Parser:
    """The argparse parser, one group per settings section."""
    parser = _Parser(
        prog="squall",
        allow_abbrev=False,  # `--http h11` must never be read as --http2
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
                *option.flags,
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
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        args = bool_values(args)
    except config.OptionError as exc:
        parser.error(str(exc))
    namespace, extras = parser.parse_known_args(args)
    if extras:
        parser.unknown(extras)
    values: dict[str, Any] = {}
    cli_values = {k: v for k, v in vars(namespace).items() if k != "config"}
    try:
        if namespace.config:
            values.update(config.from_file(namespace.config))
        env_file = cli_values.get("env_file") or os.environ.get("SQUALL_ENV_FILE") or values.get("env_file")
        if env_file:  # before the environment is read: the file may set WEB_CONCURRENCY (as uvicorn)
            load_env_file(env_file)
        values.update(config.from_environ(os.environ))
    except config.OptionError as exc:
        parser.error(str(exc))
    except LoadError as exc:
        parser.error(f"argument {exc}")
    values.update(cli_values)
    if values.get("uds") and values.get("fd") is not None:
        parser.error("argument --fd: cannot be combined with --uds")
    conflict = reuse_port_conflict(values)
    if conflict:
        parser.error(f"argument --reuse-port: {conflict}")
    cfg = config.build(values)
    if cfg.http3.http3:
        _check_http3(parser, cfg)
    return cfg, namespace


def _check_http3(parser: argparse.ArgumentParser, cfg: config.Config) -> None:
    """--http3 needs a certificate (QUIC is always encrypted) and aioquic; else one line naming them."""
    if not cfg.tls.ssl_certfile:
        parser.error("argument --http3: needs --ssl-certfile and --ssl-keyfile (QUIC always uses TLS)")
    if cfg.socket.uds and cfg.http3.http3_port is None:
        parser.error("argument --http3: with --uds, give the UDP port with --http3-port")
    if importlib.util.find_spec("aioquic") is None:
        parser.error("argument --http3: aioquic is not installed: pip install 'squall[http3]'")


def bool_values(args: list[str]) -> list[str]:
    """Boolean flags with a value, as uvicorn's take one (``--ws-per-message-deflate false``,
    ``--access-log=no``): rewritten to ``--flag`` / ``--no-flag``. Raises OptionError."""
    flags = {o.flag: o for o in config.options() if o.meta["kind"] == "bool"}
    out: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            out += args[index - 1 :]
            break
        name, eq, text = arg.partition("=")
        option = flags.get(name)
        if option is None:
            out.append(arg)
            continue
        if not eq and index < len(args) and args[index].lower() in config.TRUE_WORDS | config.FALSE_WORDS:
            text, eq = args[index], "="
            index += 1
        if eq:
            value = option.parse(text, f"argument {name}")
            name = name if value else "--no-" + name[2:]
        out.append(name)
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``squall`` command; returns the exit code.

    The sockets are bound (or taken from systemd) here, before anything else. With one worker
    and no option that needs a supervisor (``ProcessSettings.supervised``) squall then serves in
    this very process, like uvicorn; otherwise it runs the supervisor, which imports no app and
    spawns the workers.
    """
    cfg, _ = load_config(argv)
    try:
        configure(cfg.runtime, hints=not os.environ.get(config.CHECK_ONLY_ENV), formats=cfg.observe)
    except LogConfigError as exc:
        return _report(2, f"argument --log-config: {exc}")
    if os.environ.pop(config.CHECK_ONLY_ENV, None):
        from squall.process.single import check_only  # imports asyncio: see _serve

        return _report(*check_only(cfg))
    _startup_notes(cfg)
    try:  # check key, certificate and password here, before any worker starts
        create_context(cfg.tls, cfg.http2.http2)
    except TLSConfigError as exc:
        return _report(STARTUP_FAILURE, str(exc))
    try:
        sockets = bind_all(cfg.socket, hold=cfg.process.supervised)
    except BindError as exc:
        return _report(STARTUP_FAILURE, str(exc))
    try:
        return _report(*_serve(cfg, sockets))
    finally:
        for sock in sockets:
            sock.close()


def _startup_notes(cfg: config.Config) -> None:
    """One warning line per thing a switching user should know; debug notes for values naming
    an implementation squall has one of."""
    for module in stale_compiled_modules():
        logger.warning(
            "%s is compiled from an older source; rebuild (pip install -e .) to run your edit", module
        )
    for option in config.options():
        value = getattr(getattr(cfg, option.group), option.name)
        note, ignored = option.note(value), option.ignored(value)
        if note:
            logger.debug("%s", note)
        if ignored:
            logger.warning("%s", ignored)
    foreign = sorted(name for name in os.environ if name.startswith("UVICORN_"))
    if foreign:
        ours = ", ".join("SQUALL_" + name.removeprefix("UVICORN_") for name in foreign)
        logger.warning(
            "%s set: squall ignores UVICORN_* variables and reads SQUALL_* ones (%s)",
            ", ".join(foreign),
            ours,
        )


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
