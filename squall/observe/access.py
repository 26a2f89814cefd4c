"""The access log line and the JSON log formatter.

How it works
------------
``AccessLog.write`` is called once per request, when its outcome is known: the response is
complete, or the request was abandoned (``ended``: the client left, the deadline passed, the app
failed). It hands the ``squall.access`` logger one record whose message is the text line
(squall's own, or ``--access-log-format`` in gunicorn's atoms) and whose ``access`` attribute holds
the same facts as a dict with stable keys, which ``JSONFormatter`` writes as one JSON object.
Every client-controlled value in a text line is escaped (control characters as ``\\xNN``, ``"``
and ``\\`` backslashed), so a request cannot forge a log line; JSON escapes by itself.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import traceback
from base64 import b64decode
from collections.abc import Callable, MutableMapping
from typing import Any, Final

from squall.config import ACCESS_ATOM
from squall.grammar import TOKEN

access_logger = logging.getLogger("squall.access")

#: How a request ended (the ``ended`` key).
COMPLETED: Final = "completed"
CLIENT_LEFT: Final = "client_left"
TIMED_OUT: Final = "timeout"
APP_ERROR: Final = "app_error"
REJECTED: Final = "rejected"

_ESCAPES = {i: f"\\x{i:02x}" for i in [*range(32), 127]}
_ESCAPES[ord('"')] = '\\"'
_ESCAPES[ord("\\")] = "\\\\"
_SAFE = re.compile(r'[^\x00-\x1f\x7f"\\]*\Z')
_REQUEST_ID_MAX = 128


def escape(text: str) -> str:
    """``text`` safe inside a quoted log field: control characters, quotes and backslashes escaped."""
    if _SAFE.match(text):
        return text
    return text.translate(_ESCAPES)


def request_id(headers: list[tuple[bytes, bytes]], name: bytes) -> str:
    """The request's ``name`` header if it is a token of at most 128 bytes, else a fresh random id."""
    for key, value in headers:
        if key == name:
            if len(value) <= _REQUEST_ID_MAX and TOKEN.fullmatch(value):
                return value.decode("ascii")
            break
    return os.urandom(16).hex()


class AccessRecord:
    """The facts of one finished request, as the atoms and the JSON keys read them."""

    __slots__ = (
        "scope",
        "status",
        "sent",
        "received",
        "seconds",
        "ended",
        "response_headers",
        "request_id",
        "stream_id",
    )

    def __init__(  # noqa: PLR0917 - built positionally once per request
        self,
        scope: MutableMapping[str, Any],
        status: int,
        sent: int,
        received: int,
        seconds: float,
        ended: str,
        response_headers: list[tuple[bytes, bytes]],
        request_id: str | None,
        stream_id: int,
    ) -> None:
        self.scope = scope
        self.status = status
        self.sent = sent
        self.received = received
        self.seconds = seconds
        self.ended = ended
        self.response_headers = response_headers
        self.request_id = request_id
        self.stream_id = stream_id

    def header(self, name: bytes) -> str | None:
        for key, value in self.scope.get("headers", ()):
            if key == name:
                return str(value.decode("latin-1"))
        return None

    def response_header(self, name: bytes) -> str | None:
        for key, value in self.response_headers:
            if key == name:
                return value.decode("latin-1")
        return None

    def client(self) -> str:
        client = self.scope.get("client")
        if client and client[1] is not None:
            return f"{client[0]}:{client[1]}"
        return "-"

    def protocol(self) -> str:
        return "HTTP/" + str(self.scope.get("http_version", "1.1"))

    def path(self) -> str:
        return str(self.scope.get("path", ""))

    def query(self) -> str:
        query = self.scope.get("query_string", b"")
        return query.decode("ascii", "backslashreplace") if isinstance(query, bytes) else str(query)

    def target(self) -> str:
        query = self.query()
        return self.path() + ("?" + query if query else "")

    def fields(self) -> dict[str, Any]:
        """The JSON keys (stable; ``status`` is null when no response head was sent)."""
        client = self.scope.get("client")
        return {
            "client": f"{client[0]}:{client[1]}" if client and client[1] is not None else None,
            "method": self.scope.get("method"),
            "path": self.path(),
            "query": self.query(),
            "status": self.status or None,
            "bytes_sent": self.sent,
            "bytes_received": self.received,
            "duration_ms": round(self.seconds * 1000, 3),
            "protocol": self.protocol(),
            "scheme": self.scope.get("scheme"),
            "stream_id": self.stream_id,
            "user_agent": self.header(b"user-agent"),
            "referer": self.header(b"referer"),
            "request_id": self.request_id,
            "ended": self.ended,
            "pid": os.getpid(),
        }


def _user(record: AccessRecord) -> str:
    auth = record.header(b"authorization")
    if auth and auth[:6].lower() == "basic ":
        try:
            return b64decode(auth[6:], validate=True).decode("utf-8").partition(":")[0] or "-"
        except ValueError:
            return "-"
    return "-"


def _clock(record: AccessRecord) -> str:
    return time.strftime("[%d/%b/%Y:%H:%M:%S %z]")


def _or_dash(value: str | None) -> str:
    return "-" if value is None or value == "" else value


#: gunicorn's atoms, plus scheme, protocol, stream (id), ended, request_id, pid.
ATOMS: dict[str, Callable[[AccessRecord], str]] = {
    "h": lambda r: _or_dash(str(r.scope["client"][0]) if r.scope.get("client") else None),
    "l": lambda r: "-",
    "u": _user,
    "t": _clock,
    "r": lambda r: f"{r.scope.get('method')} {r.target()} {r.protocol()}",
    "s": lambda r: str(r.status) if r.status else "-",
    "m": lambda r: str(r.scope.get("method")),
    "U": AccessRecord.path,
    "q": AccessRecord.query,
    "H": AccessRecord.protocol,
    "T": lambda r: str(int(r.seconds)),
    "D": lambda r: str(int(r.seconds * 1_000_000)),
    "M": lambda r: str(int(r.seconds * 1000)),
    "L": lambda r: f"{r.seconds:.6f}",
    "p": lambda r: f"<{os.getpid()}>",
    "b": lambda r: str(r.sent) if r.sent else "-",
    "B": lambda r: str(r.sent),
    "f": lambda r: _or_dash(r.header(b"referer")),
    "a": lambda r: _or_dash(r.header(b"user-agent")),
    "scheme": lambda r: str(r.scope.get("scheme")),
    "protocol": AccessRecord.protocol,
    "stream": lambda r: str(r.stream_id),
    "ended": lambda r: r.ended,
    "request_id": lambda r: _or_dash(r.request_id),
    "pid": lambda r: str(os.getpid()),
}


def _variable(name: str) -> Callable[[AccessRecord], str]:
    key, kind = name[1:-2], name[-1]
    if kind == "i":
        header = key.lower().encode("latin-1")
        return lambda r: _or_dash(r.header(header))
    if kind == "o":
        header = key.lower().encode("latin-1")
        return lambda r: _or_dash(r.response_header(header))
    return lambda r: _or_dash(os.environ.get(key))


#: The access record's message (uvicorn's shape: a foreign uvicorn ``AccessFormatter`` unpacks
#: exactly these five ``args``: client, method, path with query, http_version, status).
ACCESS_MESSAGE = '%s - "%s %s HTTP/%s" %d'


class AccessLog:
    """Writes the access record of each request (see the module docstring)."""

    def __init__(self, logger: logging.Logger = access_logger) -> None:
        self.logger = logger

    def write(self, record: AccessRecord) -> None:
        """Log ``record`` (one record, at INFO) with its facts as attributes."""
        try:
            scope = record.scope
            client, method = record.client(), escape(str(scope.get("method")))
            target, version = escape(record.target()), str(scope.get("http_version"))
            fields = record.fields()
        except Exception:  # the app changed scope keys (it may): log what they hold now, as repr
            client, method, target, version, fields = _repr_facts(record)
        emit(
            client, method, target, version, record.status, record.sent, record.seconds * 1000, fields, record
        )


def emit(  # noqa: PLR0917 - the record's facts, in uvicorn's order
    client: str,
    method: str,
    path: str,
    version: str,
    status: int,
    sent: int,
    duration_ms: float,
    fields: dict[str, Any],
    record: AccessRecord | None = None,
) -> None:
    """Hand ``squall.access`` one record in uvicorn's shape, carrying ``fields`` as ``access``,
    ``fields["ended"]`` as ``ended`` and the ``AccessRecord`` (for ``GunicornFormatter``)."""
    log = access_logger.makeRecord(
        "squall.access",
        logging.INFO,
        __file__,
        0,
        ACCESS_MESSAGE,
        (client, method, path, version, status),
        None,
    )
    log.__dict__.update(
        client_addr=client,
        method=method,
        path=path,
        http_version=version,
        status=status,
        response_bytes=sent,
        duration_ms=duration_ms,
        request_line=f"{method} {path} HTTP/{version}",
        ended=fields.get("ended"),
        access=fields,
        access_record=record,
    )
    access_logger.handle(log)


def _repr_facts(record: AccessRecord) -> tuple[str, str, str, str, dict[str, Any]]:
    scope = record.scope
    who, method = escape(repr(scope.get("client"))), escape(repr(scope.get("method")))
    target = escape(f"{scope.get('path')!r}?{scope.get('query_string')!r}")
    version = escape(repr(scope.get("http_version")))
    fields = {"client": who, "method": method, "path": target, "status": record.status or None}
    fields.update({"bytes_sent": record.sent, "ended": record.ended, "pid": os.getpid()})
    return who, method, target, version, fields


class GunicornFormatter(logging.Formatter):
    """``--access-log-format``: the access line in gunicorn's atoms (see ``ATOMS``), every value
    escaped. Usable from a dictConfig: ``{"()": "squall.observe.access.GunicornFormatter",
    "line_format": "..."}``. A record that is not squall's access record keeps its message."""

    def __init__(self, line_format: str) -> None:
        super().__init__()
        self.line_format = line_format
        self._atoms: list[tuple[str, Callable[[AccessRecord], str]]] = []
        for name in dict.fromkeys(ACCESS_ATOM.findall(line_format)):
            self._atoms.append((name, ATOMS[name] if name in ATOMS else _variable(name)))

    def format(self, record: logging.LogRecord) -> str:
        access = record.__dict__.get("access_record")
        if not isinstance(access, AccessRecord):
            return record.getMessage()
        try:
            return self.line_format % {name: escape(get(access)) for name, get in self._atoms}
        except Exception:  # the app changed scope keys: the message, whose values are escaped
            return record.getMessage()


class JSONFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (RFC 3339, ms, UTC), ``level``, ``logger``, ``message``,
    ``pid``, the access keys on access records, ``exception`` as a structured field.

    Usable from a ``logging.config.dictConfig`` (``"()": "squall.observe.access.JSONFormatter"``).
    """

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": rfc3339(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        access = record.__dict__.get("access")
        if isinstance(access, dict):
            out.update(access)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            out["exception"] = {
                "type": type(exc).__qualname__,
                "message": str(exc),
                "traceback": traceback.format_exception(exc),
            }
        return json.dumps(out, default=str)


def rfc3339(created: float) -> str:
    """``created`` as RFC 3339 UTC with milliseconds: ``2025-01-31T12:00:00.123Z``."""
    seconds = int(created)
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((created - seconds) * 1000):03d}Z"
    )


def log_websocket(client: str, path: str, status: int, version: str) -> None:
    """The access record of a websocket handshake (method ``WebSocket``): 101 (or 200 on HTTP/2)
    when accepted, else the denial's status."""
    ended = COMPLETED if status in (101, 200) else REJECTED
    fields = {"client": client, "method": "GET", "path": path, "status": status, "protocol": "websocket"}
    fields.update({"http_version": version, "ended": ended, "pid": os.getpid()})
    emit(client, "WebSocket", escape(path), version, status, 0, 0.0, fields)
