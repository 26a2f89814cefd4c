"""Error log (stderr) and access log (stdout), both through :mod:`logging`.

Named ``logs`` rather than ``logging`` so that the package never shadows the standard library.

How it works
------------
``configure(runtime)`` runs in every squall process (the main one and each worker):

1. squall's defaults: ``squall.error`` → stderr, ``squall.access`` → stdout (as uvicorn splits
   them), each with its formatter below. uvicorn's logger names are bridged the other way: an app
   logging through ``logging.getLogger("uvicorn.error")`` (or ``"uvicorn"``) reaches squall's error
   log, ``"uvicorn.access"`` its access log.
2. ``--log-config`` (dictConfig JSON/YAML, or fileConfig .ini) is applied on top. A config copied
   from uvicorn names ``uvicorn.error``/``uvicorn.access``: squall then sends its own lines to those
   loggers (and says so once); its ``uvicorn.logging.*Formatter`` classes stand for squall's
   own when uvicorn is not installed.
3. ``--log-level`` sets both squall loggers (info by default, unless a log config is given);
   ``--no-access-log`` silences ``squall.access``.

The access record has uvicorn's shape, so a foreign formatter (uvicorn's ``AccessFormatter``
unpacks exactly five ``args``) works with it: ``msg`` is ``'%s - "%s %s HTTP/%s" %d'`` and
``args`` are ``(client_addr, method, path, http_version, status)``. The values are also
attributes of the record, for any formatter: ``client_addr`` (``host:port``), ``method``,
``path`` (with ``?query``), ``http_version`` (``1.1``, ``2``), ``status`` (int),
``response_bytes`` (body bytes sent), ``duration_ms`` (float) and ``request_line``; squall's own
records also carry ``ended`` (how the request ended, see :mod:`squall.observe.access`) and
``access``, the same facts as a dict with stable keys (what ``--log-format json`` writes).
``--log-format json`` and ``--access-log-format`` replace the default formatters (step 1), so a
``--log-config`` still wins over them.
"""

from __future__ import annotations

import configparser
import copy
import http
import importlib.util
import json
import logging
import logging.config
import os
import sys
from typing import IO, Any

from squall.config import ObserveSettings, RuntimeSettings
from squall.observe.access import GunicornFormatter, JSONFormatter

TRACE = 5
LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE,
}

error_log = logging.getLogger("squall.error")
access_log = logging.getLogger("squall.access")

DEFAULT_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(message)s"
ACCESS_FORMAT = (
    "%(asctime)s [%(process)d] %(levelname)s "
    '%(client_addr)s - "%(request_line)s" %(status)d %(response_bytes)d %(duration_ms).1fms%(outcome)s'
)
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

# uvicorn's logger names: "uvicorn.error" propagates to "uvicorn"
UVICORN_ERROR = ("uvicorn", "uvicorn.error")
UVICORN_ACCESS = "uvicorn.access"


class LogConfigError(Exception):
    """``--log-config`` cannot be used; the text says why in one line."""


# --- formatters ---------------------------------------------------------------------------------

_LEVEL_COLOURS = {TRACE: "34", logging.DEBUG: "36", logging.INFO: "32", logging.WARNING: "33"}
_STATUS_COLOURS = {1: "97", 2: "32", 3: "33", 4: "31", 5: "91"}


def _paint(text: str, code: str) -> str:
    return f"\x1b[{code}m{text}\x1b[0m"


def _is_terminal(stream: IO[str] | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty()) and "NO_COLOR" not in os.environ
    except (AttributeError, ValueError):
        return False


class DefaultFormatter(logging.Formatter):
    """squall's error-log format; usable from a dictConfig (``"()": "squall.logs.DefaultFormatter"``).

    Takes uvicorn's formatter arguments (``fmt``, ``datefmt``, ``style``, ``use_colors``) and
    offers its ``%(levelprefix)s`` (``"INFO:     "``). ``use_colors`` None: colour when the
    stream the format is meant for is a terminal.
    """

    default_format = DEFAULT_FORMAT
    stream: IO[str] | None = sys.stderr

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: Any = "%",
        use_colors: bool | None = None,
    ) -> None:
        if fmt is None:
            fmt, datefmt = self.default_format, datefmt or DATE_FORMAT
        super().__init__(fmt, datefmt, style)
        self.use_colors = _is_terminal(self.stream) if use_colors is None else use_colors

    def formatMessage(self, record: logging.LogRecord) -> str:
        if self.use_colors:
            record = copy.copy(record)
            colour = _LEVEL_COLOURS.get(record.levelno, "31")
            record.levelname = _paint(record.levelname, colour)
        fields = self.fields(record)
        fields["levelprefix"] = record.levelname + ":" + " " * (8 - len(logging.getLevelName(record.levelno)))
        record.__dict__.update(fields)
        return super().formatMessage(record)

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        """Attributes this formatter adds to the record before formatting it."""
        return {}


class AccessFormatter(DefaultFormatter):
    """squall's access-log format; usable from a dictConfig (``"()": "squall.logs.AccessFormatter"``).

    Besides the record's attributes (see the module docstring) it offers uvicorn's
    ``%(client_addr)s``, ``%(request_line)s`` and ``%(status_code)s`` (``"200 OK"``). A record
    that is not squall's access record (an app logging to ``uvicorn.access``) is formatted with
    what it has, never raising.
    """

    default_format = ACCESS_FORMAT
    stream = sys.stdout

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        values = record.__dict__
        if "request_line" not in values:
            values.update(_foreign_access_fields(record))
        status = values["status"]
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        status_code = f"{status} {phrase}".rstrip()
        request_line = values["request_line"]
        if self.use_colors and isinstance(status, int):
            status_code = _paint(status_code, _STATUS_COLOURS.get(status // 100, "0"))
            request_line = _paint(request_line, "1")
        ended = values.get("ended")
        outcome = f" {ended}" if ended and ended != "completed" else ""
        return {"status_code": status_code, "request_line": request_line, "outcome": outcome}


def _foreign_access_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The access attributes of a record squall did not make: from uvicorn-shaped args, else blanks."""
    args = record.args
    if isinstance(args, tuple) and len(args) == 5:
        client, method, path, version, status = args
        try:
            status = int(status)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            status = 0
        line = f"{method} {path} HTTP/{version}"
        return {"client_addr": client, "method": method, "path": path, "http_version": version,
                "status": status, "response_bytes": 0, "duration_ms": 0.0, "request_line": line}  # fmt: skip
    return {"client_addr": "-", "method": "-", "path": "-", "http_version": "-", "status": 0,
            "response_bytes": 0, "duration_ms": 0.0, "request_line": record.getMessage()}  # fmt: skip


class _Forward(logging.Handler):
    """Hand records to another logger's handlers (uvicorn's logger names ↔ squall's)."""

    def __init__(self, target: logging.Logger) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        if record.__dict__.get("squall_forwarded") or not self.target.isEnabledFor(record.levelno):
            return  # a record already forwarded once: a loop between the names stops here
        record.squall_forwarded = True
        self.target.handle(record)


# --- configuration ------------------------------------------------------------------------------


def configure(
    runtime: RuntimeSettings | None = None, *, hints: bool = False, formats: ObserveSettings | None = None
) -> None:
    """Set up squall's loggers in this process (see the module docstring).

    Raises LogConfigError when ``--log-config`` cannot be applied. ``hints``: log the one-line
    notes about a uvicorn logging config (the main process does; workers stay quiet).
    """
    runtime = runtime if runtime is not None else RuntimeSettings()
    logging.addLevelName(TRACE, "TRACE")
    _install_defaults(runtime.use_colors)
    if formats is not None:
        _install_formats(formats)
    notes: list[str] = []
    names: set[str] = set()
    if runtime.log_config:
        notes, names = _apply_log_config(runtime.log_config)
    explicit = LEVELS[runtime.log_level] if runtime.log_level else None
    for logger, bridge in ((error_log, UVICORN_ERROR), (access_log, (UVICORN_ACCESS,))):
        if explicit is not None:  # as uvicorn's --log-level, it sets the uvicorn names too
            for logger_name in (logger.name, *bridge):
                logging.getLogger(logger_name).setLevel(explicit)
        elif logger.name in names or "squall" in names:
            pass  # the log config set it
        elif names & set(bridge):
            logger.setLevel(TRACE)  # forwarded: the uvicorn logger's level decides
        else:
            for logger_name in (logger.name, *bridge[:1]):
                logging.getLogger(logger_name).setLevel(logging.INFO)
    if not runtime.access_log:
        access_log.handlers.clear()
        access_log.propagate = False
        access_log.disabled = True
    if hints:
        for note in notes:
            error_log.warning("%s", note)


def _install_defaults(use_colors: bool | None) -> None:
    for logger, formatter, stream in (
        (error_log, DefaultFormatter(use_colors=use_colors), sys.stderr),
        (access_log, AccessFormatter(use_colors=use_colors), sys.stdout),
    ):
        logger.handlers.clear()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        logger.addHandler(handler)
        logger.propagate = False
        logger.disabled = False
    for name, target in ((UVICORN_ERROR[0], error_log), (UVICORN_ACCESS, access_log)):
        bridge = logging.getLogger(name)
        bridge.handlers = [_Forward(target)]
        bridge.propagate = False
        bridge.disabled = False
    uvicorn_error = logging.getLogger(UVICORN_ERROR[1])
    uvicorn_error.handlers.clear()
    uvicorn_error.propagate = True


def _install_formats(formats: ObserveSettings) -> None:
    """``--log-format json`` / ``--access-log-format``: the default handlers' formatters."""
    if formats.access_log_format is not None:
        access_log.handlers[0].setFormatter(GunicornFormatter(formats.access_log_format))
    if formats.log_format == "json":
        for logger in (error_log, access_log):
            logger.handlers[0].setFormatter(JSONFormatter())


def _apply_log_config(path: str) -> tuple[list[str], set[str]]:
    """Apply ``path``; return the notes to log and the logger names it configures."""
    notes: list[str] = []
    loaded = read_log_config(path, notes)
    try:
        if isinstance(loaded, dict):
            logging.config.dictConfig(loaded)
            names = set(loaded.get("loggers") or {})
        else:
            logging.config.fileConfig(loaded, disable_existing_loggers=False)
            names = {
                loaded.get(f"logger_{key.strip()}", "qualname", fallback="") for key in _ini_keys(loaded)
            }
    except Exception as exc:
        cause = exc.__cause__ or exc.__context__
        detail = f"{exc}: {cause}" if cause is not None and str(cause) not in str(exc) else str(exc)
        raise LogConfigError(f"cannot apply {path}: {detail}") from None
    bridged = _bridge_to_uvicorn(names)
    if bridged:
        notes.append(
            f"--log-config {path} configures {', '.join(sorted(bridged))}: squall's loggers are "
            "squall.error and squall.access, so their lines go there (rename the loggers to squall.* "
            "to silence this note)"
        )
    return notes, names


def read_log_config(path: str, notes: list[str] | None = None) -> dict[str, Any] | configparser.ConfigParser:
    """Read a log config file as uvicorn does: .json and .yaml/.yml are dictConfig, else fileConfig.

    Raises LogConfigError. uvicorn's formatter classes are replaced by squall's when uvicorn is not
    installed (a note saying so is appended to ``notes``).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise LogConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    notes = notes if notes is not None else []
    if path.endswith((".json", ".yaml", ".yml")):
        data = _parse_dict_config(path, text)
        for spec in (data.get("formatters") or {}).values():
            for key in ("()", "class"):
                if isinstance(spec, dict) and isinstance(spec.get(key), str):
                    spec[key] = _own_formatter(spec[key], notes)
        return data
    parser = configparser.ConfigParser()
    try:
        parser.read_string(text, path)
        for key in _ini_keys(parser, "formatters"):
            section = f"formatter_{key.strip()}"
            if parser.has_option(section, "class"):
                parser.set(section, "class", _own_formatter(parser.get(section, "class"), notes))
    except configparser.Error as exc:
        raise LogConfigError(f"cannot read {path}: {' '.join(str(exc).split())}") from None
    return parser


def _parse_dict_config(path: str, text: str) -> dict[str, Any]:
    if path.endswith(".json"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise LogConfigError(f"{path} is not valid JSON: {exc}") from None
    else:
        try:
            import yaml
        except ImportError:
            raise LogConfigError(
                f"{path}: a YAML log config needs PyYAML: pip install 'squall[yaml]'"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise LogConfigError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise LogConfigError(f"{path} must hold a mapping (a logging dictConfig)")
    return data


def _ini_keys(parser: configparser.ConfigParser, kind: str = "loggers") -> list[str]:
    return [key for key in parser.get(kind, "keys", fallback="").split(",") if key.strip()]


def _own_formatter(name: str, notes: list[str]) -> str:
    """``uvicorn.logging.X`` → ``squall.logs.X`` when uvicorn is not installed."""
    module, _, cls = name.rpartition(".")
    if module != "uvicorn.logging" or importlib.util.find_spec("uvicorn") is not None:
        return name
    own = "AccessFormatter" if cls == "AccessFormatter" else "DefaultFormatter"
    notes.append(f"{name} stands for squall.logs.{own} (uvicorn is not installed)")
    return f"squall.logs.{own}"


def _bridge_to_uvicorn(names: set[str]) -> list[str]:
    """Send squall's lines to the uvicorn loggers a log config configured; return those names."""
    bridged: list[str] = []
    if UVICORN_ACCESS in names and not names & {"squall", "squall.access"}:
        bridged.append(UVICORN_ACCESS)
        _forward(access_log, logging.getLogger(UVICORN_ACCESS), (UVICORN_ACCESS,))
    error_names = sorted(names & set(UVICORN_ERROR))
    if error_names and not names & {"squall", "squall.error"}:
        bridged += error_names
        _forward(error_log, logging.getLogger(UVICORN_ERROR[1]), UVICORN_ERROR)
    return bridged


def _forward(source: logging.Logger, target: logging.Logger, reverse: tuple[str, ...]) -> None:
    """``source``'s records go to ``target``; squall's bridges from the ``reverse`` names (the
    other direction) are taken down, which would make a loop."""
    source.handlers = [_Forward(target)]
    source.propagate = False
    source.disabled = False
    for name in reverse:
        logger = logging.getLogger(name)
        logger.handlers = [h for h in logger.handlers if not isinstance(h, _Forward)]
