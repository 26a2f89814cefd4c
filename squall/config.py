"""Squall's settings: one frozen dataclass tree, its option list written once.

Each settings field carries its own CLI metadata (``opt(...)``); the command line, the
``SQUALL_*`` environment variables and the ``--config`` TOML file are all derived from these
fields, so an option is declared in exactly one place.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from squall.grammar import TOKEN

# Set in the environment of the interpreter that checks the app before a single-process SIGHUP
# reload: the command line is the server's own, but it only imports the app (see squall.process.single).
CHECK_ONLY_ENV = "SQUALL_CHECK_ONLY"


#: The words a boolean option takes as a value (click's, which uvicorn's flags take).
TRUE_WORDS = frozenset({"1", "true", "t", "yes", "y", "on"})
FALSE_WORDS = frozenset({"0", "false", "f", "no", "n", "off"})
#: uvicorn's (and Heroku's) worker count variable; SQUALL_WORKERS and --workers win over it.
WEB_CONCURRENCY = "WEB_CONCURRENCY"


class OptionError(ValueError):
    """A bad option value; the text names the option."""


# --- value parsers: each raises ValueError with a short reason -----------------------------------


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be from 0 to 65535")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def seconds(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise ValueError("must be a number of seconds, 0 or more")
    return value


def _off_or(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_or_off(text: str) -> Any:
        if text.strip().lower() in ("off", "none"):
            return None
        return parse(text)

    parse_or_off.__name__ = parse.__name__
    return parse_or_off


def bytes_per_second(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a number of bytes per second above 0")
    return value


limit = _off_or(positive_int)
limit.__name__ = "limit"
timeout = _off_or(seconds)
timeout.__name__ = "timeout"
rate = _off_or(bytes_per_second)
rate.__name__ = "rate"


def path(text: str) -> str:
    if not text.startswith("/") or any(c in text for c in "?# ") or not text.isascii():
        raise ValueError("must be an ASCII path starting with / (no query)")
    return text


def header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise ValueError("must be NAME:VALUE")
    return name.strip(), value.strip()


def opt(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    parse: Callable[[str], Any] = str,
    choices: tuple[str, ...] | None = None,
    metavar: str | None = None,
    kind: str = "value",
    aliases: tuple[str, ...] = (),
    note: tuple[tuple[str, ...], str] | None = None,
    ignored: str | None = None,
) -> Any:
    """A settings field with its CLI metadata. ``kind``: value, bool, append or positional.

    ``aliases``: other flag names (another server's spelling). ``note``: logged once at debug when
    the value is not the default (a value naming an implementation squall has only one of).
    ``ignored``: the option has no meaning in squall; one warning line at startup when set.
    """
    meta = {
        "help": help,
        "flag": flag,
        "parse": parse,
        "choices": choices,
        "metavar": metavar,
        "kind": kind,
        "aliases": aliases,
        "note": note,
        "ignored": ignored,
    }
    if isinstance(default, list | tuple | dict):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


# --- the settings tree ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AppSettings:
    """Which application to serve and how to load it."""

    app: str = opt("squall.demo:app", "The ASGI app as module:attribute.", kind="positional")
    app_dir: str = opt(".", "Directory added to sys.path before importing the app.", metavar="DIR")
    factory: bool = opt(
        False, "Treat APP as a factory: call it with no arguments to get the app.", kind="bool"
    )
    interface: str = opt(
        "auto",
        "Application interface; auto detects ASGI 3, ASGI 2 and WSGI.",
        choices=("auto", "asgi3", "asgi2", "wsgi"),
    )
    lifespan: str = opt(
        "auto", "Lifespan protocol: auto tolerates apps without it.", choices=("auto", "on", "off")
    )
    root_path: str = opt(
        "", "ASGI root_path for apps mounted below a path prefix (behind a proxy).", metavar="PATH"
    )
    env_file: str | None = opt(
        None,
        "Load environment variables from this dotenv file before the app is imported, in every "
        "worker (needs python-dotenv; variables already set win).",
        metavar="PATH",
    )
    reset_contextvars: bool = opt(
        False,
        "Run the app in a fresh contextvars.Context: requests do not see context variables set "
        "while the app was imported (lifespan's never reach them).",
        kind="bool",
    )


@dataclass(frozen=True)
class SocketSettings:
    """Where to listen."""

    host: str = opt("127.0.0.1", "Interface to bind.", metavar="HOST")
    port: int = opt(8000, "Port to bind (0 picks a free one).", parse=port)
    uds: str | None = opt(None, "Bind to this Unix domain socket instead of host/port.", metavar="PATH")
    fd: int | None = opt(
        None, "Serve on this already-bound listening socket file descriptor.", parse=non_negative_int
    )
    backlog: int = opt(2048, "Maximum number of pending connections.", parse=positive_int)
    reuse_port: bool = opt(
        False,
        "Each worker listens on its own SO_REUSEPORT socket and the kernel spreads connections "
        "over them (TCP --host/--port only; see the README for the reload caveat).",
        kind="bool",
    )


@dataclass(frozen=True)
class HTTPSettings:
    """HTTP behaviour and the limits that keep hostile clients in check."""

    timeout_keep_alive: float | None = opt(
        5.0, "Close idle keep-alive connections after this many seconds.", parse=timeout
    )
    timeout_request_header: float | None = opt(
        10.0, "Deadline in seconds for a request's head to arrive once it has begun.", parse=timeout
    )
    timeout_request_body: float | None = opt(
        30.0,
        "Close the connection (HTTP/2: reset the stream; HTTP/3: 408 or reset) when the request body "
        "stalls this many seconds.",
        parse=timeout,
    )
    timeout_request: float | None = opt(
        None,
        "Whole-request deadline from the head's first byte: 504, or the response cut ('off': none).",
        parse=timeout,
    )
    min_request_body_rate: float | None = opt(
        240.0,
        "Least request body bytes/s, averaged while the app waits for body, after --min-rate-grace "
        "(408, or close / HTTP/2, HTTP/3 reset; 'off' disables).",
        parse=rate,
        metavar="BYTES_PER_S",
    )
    min_response_rate: float | None = opt(
        240.0,
        "Least response bytes/s the client takes, averaged while output waits on it, after "
        "--min-rate-grace (close / HTTP/2, HTTP/3 reset; 'off' disables).",
        parse=rate,
        metavar="BYTES_PER_S",
    )
    min_rate_grace: float = opt(
        5.0, "Seconds before the minimum data rates apply to a request or response.", parse=seconds
    )
    limit_request_line: int | None = opt(8190, "Longest request target in bytes (414 beyond).", parse=limit)
    limit_request_head: int | None = opt(
        65536, "Largest request line + headers in bytes (431 beyond).", parse=limit
    )
    limit_request_headers: int | None = opt(100, "Most header fields in a request (431 beyond).", parse=limit)
    limit_request_body: int | None = opt(
        30_000_000,
        "Largest request body in bytes (413 beyond; on HTTP/2 a body growing past it resets the stream).",
        parse=limit,
    )
    limit_concurrency: int | None = opt(
        4096, "Most concurrent connections and requests before answering 503.", parse=limit
    )
    sendfile: str = opt(
        "auto",
        "Send zerocopysend/pathsend files with sendfile(2) on plain HTTP/1.1: auto does, but reads "
        "files over 2 MiB for clients on this host (a local proxy takes reads faster).",
        choices=("auto", "on", "off"),
    )
    server_header: bool = opt(True, "Send a 'server: squall' header.", kind="bool")
    date_header: bool = opt(True, "Send a 'date' header.", kind="bool")
    header: list[tuple[str, str]] = opt(
        [], "Add a default response header (repeatable).", parse=header, metavar="NAME:VALUE", kind="append"
    )
    http: str = opt(
        "auto",
        "HTTP implementation (uvicorn's flag): every value serves HTTP/1.1 with httptools and "
        "HTTP/2 with squall's own frame layer.",
        choices=("auto", "h11", "httptools", "zttp"),
        note=(("h11", "httptools", "zttp"), "squall serves HTTP/1.1 with httptools and HTTP/2 itself"),
    )
    h11_max_incomplete_event_size: int | None = opt(
        None,
        "Accepted for uvicorn compatibility and ignored: squall does not use h11 "
        "(--limit-request-head bounds a request head).",
        parse=positive_int,
        ignored="squall does not use h11; --limit-request-head bounds a request head",
    )


def loop(text: str) -> str:
    """``--loop``: a known kind, or ``module:attr`` naming a callable that returns a new loop."""
    if text in ("auto", "asyncio", "uvloop", "zuvloop", "none"):
        return text
    module, sep, attr = text.partition(":")
    if not sep or not module or not attr:
        raise ValueError("choose auto, asyncio, uvloop, zuvloop, none or MODULE:ATTR")
    return text


def trusted_proxies(text: str) -> str:
    """``--forwarded-allow-ips``: comma-separated IPs, CIDR networks, ``*`` and ``unix:``; normalised."""
    entries = [entry.strip() for entry in text.split(",") if entry.strip()]
    for entry in entries:
        if entry != "*" and entry.lower() != "unix:":
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is no IP address, CIDR network, '*' or 'unix:'") from None
    return ",".join(entries)


@dataclass(frozen=True)
class ProxySettings:
    """Proxy headers: believe X-Forwarded-* and Forwarded from trusted proxies only (uvicorn's flags)."""

    proxy_headers: bool = opt(
        True,
        "Take the client address, scheme (and with --forwarded-host the host) from X-Forwarded-For/"
        "-Proto/-Host or Forwarded, from trusted proxies only.",
        kind="bool",
    )
    forwarded_allow_ips: str = opt(
        "127.0.0.1,::1",
        "Trusted proxies: comma-separated IPs, CIDR networks, '*' (any) or 'unix:' (Unix socket "
        "peers); the default is $FORWARDED_ALLOW_IPS when set.",
        parse=trusted_proxies,
        metavar="IPS",
    )
    forwarded_host: bool = opt(
        False,
        "Also take the Host the app sees from X-Forwarded-Host / Forwarded host= (trusted proxies only).",
        kind="bool",
    )


def workers(text: str) -> int:
    if text.strip().lower() == "auto":
        return os.cpu_count() or 1
    return positive_int(text)


def mebibytes(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1 MiB")
    return value


@dataclass(frozen=True)
class WebSocketSettings:
    """WebSocket support (RFC 6455, permessage-deflate RFC 7692)."""

    ws: str = opt(
        "auto",
        "WebSocket support; none serves upgrade requests as plain HTTP. uvicorn's implementation "
        "names are accepted: squall always uses the websockets package's protocol.",
        choices=("auto", "none", "websockets", "websockets-sansio", "wsproto"),
        note=(
            ("websockets", "websockets-sansio", "wsproto"),
            "squall serves WebSockets with the websockets package's sans-I/O protocol",
        ),
    )
    ws_max_size: int = opt(
        16 * 1024 * 1024, "Largest incoming message in bytes, after decompression.", parse=positive_int
    )
    ws_max_queue: int = opt(32, "Incoming messages buffered before reading pauses.", parse=positive_int)
    ws_ping_interval: float | None = opt(
        20.0, "Seconds between server pings ('off' disables).", parse=timeout
    )
    ws_ping_timeout: float | None = opt(
        20.0, "Close when a ping is not answered within this many seconds.", parse=timeout
    )
    ws_per_message_deflate: bool = opt(True, "Negotiate permessage-deflate compression.", kind="bool")


def cert_reqs(text: str) -> int:
    """``--ssl-cert-reqs``: 0/none, 1/optional, 2/required (uvicorn takes the numbers)."""
    names = {"none": 0, "optional": 1, "required": 2}
    value = names.get(text.strip().lower())
    if value is None:
        value = int(text)
        if value not in (0, 1, 2):
            raise ValueError("must be 0 (none), 1 (optional) or 2 (required)")
    return value


_SSL_VERSIONS = {17: "TLS 1.2 and 1.3", 2: "TLS 1.2 and 1.3", 5: "TLS 1.2 only"}


def ssl_version(text: str) -> int:
    """``--ssl-version``: the ssl module's PROTOCOL_* number, as uvicorn takes it."""
    value = int(text)
    if value in _SSL_VERSIONS:
        return value
    if value in (3, 4):
        raise ValueError("TLS 1.0 and 1.1 are insecure and refused: use 17 (TLS 1.2 and 1.3)")
    raise ValueError("use 17 (TLS 1.2 and 1.3, the default) or 5 (TLS 1.2 only)")


@dataclass(frozen=True)
class TLSSettings:
    """TLS (uvicorn's flag names). Serving TLS needs at least --ssl-certfile."""

    ssl_keyfile: str | None = opt(None, "TLS private key file (PEM).", metavar="PATH")
    ssl_certfile: str | None = opt(None, "TLS certificate (chain) file (PEM); turns TLS on.", metavar="PATH")
    ssl_keyfile_password: str | None = opt(
        None, "Password of an encrypted --ssl-keyfile.", metavar="PASSWORD"
    )
    ssl_ca_certs: str | None = opt(
        None, "CA certificates (PEM) to verify client certificates.", metavar="PATH"
    )
    ssl_cert_reqs: int = opt(
        0, "Client certificates: 0 none, 1 optional, 2 required (mTLS).", parse=cert_reqs, metavar="{0,1,2}"
    )
    ssl_ciphers: str | None = opt(
        None, "OpenSSL cipher list for TLS 1.2 (default: OpenSSL's secure set).", metavar="CIPHERS"
    )
    ssl_version: int = opt(
        17,
        "TLS versions as the ssl module numbers them (uvicorn's flag): 17 (or 2) TLS 1.2 and 1.3, "
        "5 TLS 1.2 only; TLS 1.0 and 1.1 are refused.",
        parse=ssl_version,
        metavar="N",
    )


@dataclass(frozen=True)
class HTTP2Settings:
    """HTTP/2: ALPN h2 over TLS, cleartext prior knowledge, Upgrade: h2c; and its defences."""

    http2: bool = opt(True, "Serve HTTP/2 (ALPN h2 over TLS, cleartext prior knowledge).", kind="bool")
    h2c_upgrade: bool = opt(
        False,
        "Switch cleartext requests with Upgrade: h2c to HTTP/2 (deprecated; a smuggling vector).",
        kind="bool",
    )
    h2_max_concurrent_streams: int = opt(
        100, "Most concurrent streams (running requests) per HTTP/2 connection.", parse=positive_int
    )
    h2_max_header_list_size: int = opt(
        65536, "Largest decoded request header list in bytes (HPACK bomb limit).", parse=positive_int
    )
    h2_initial_window_size: int = opt(
        262144, "Per-stream receive window in bytes: request body buffered per stream.", parse=positive_int
    )
    h2_max_reset_rate: int = opt(
        100, "Stream resets per second (burst twice that) before GOAWAY (rapid reset).", parse=positive_int
    )
    h2_max_control_rate: int = opt(
        100, "PING/SETTINGS/empty frames per second (burst twice that) before GOAWAY.", parse=positive_int
    )
    h2_max_requests: int | None = opt(
        None, "Streams served per HTTP/2 connection before a graceful GOAWAY.", parse=limit
    )
    h2_timeout_stalled: float | None = opt(
        30.0, "Reset a stream whose response waits this many seconds on a zero window.", parse=timeout
    )


@dataclass(frozen=True)
class HTTP3Settings:
    """HTTP/3 over QUIC (UDP, TLS 1.3 with the --ssl-* certificate), and its defences."""

    http3: bool = opt(
        False, "Serve HTTP/3 over QUIC on UDP (needs --ssl-certfile and squall[http3]).", kind="bool"
    )
    http3_port: int | None = opt(None, "UDP port for HTTP/3 (default: the TCP port's number).", parse=port)
    http3_alt_svc: str = opt(
        "auto",
        'Alt-Svc sent on HTTP/1.1 and HTTP/2 responses: auto (h3=":PORT"; ma=86400), off, or a value.',
        metavar="VALUE",
    )
    h3_max_concurrent_streams: int = opt(
        100, "Most concurrent request streams per HTTP/3 connection (QUIC MAX_STREAMS).", parse=positive_int
    )
    h3_max_header_list_size: int = opt(
        65536, "Largest request header section in bytes (QPACK bomb limit).", parse=positive_int
    )
    h3_stream_window: int = opt(
        262144,
        "Per-stream receive window in bytes, and unacknowledged response bytes before send() waits.",
        parse=positive_int,
    )
    h3_idle_timeout: float = opt(
        30.0, "Close a QUIC connection idle this many seconds (open requests are kept alive).", parse=seconds
    )
    h3_max_reset_rate: int = opt(
        100, "Stream resets per second (burst twice that) before closing the connection.", parse=positive_int
    )

    def alt_svc(self, port: int) -> str | None:
        """The Alt-Svc value that advertises HTTP/3 on UDP ``port`` (None: HTTP/3 off, or not advertised)."""
        value = self.http3_alt_svc
        if not self.http3 or value.strip().lower() in ("off", "none", ""):
            return None
        return f'h3=":{port}"; ma=86400' if value == "auto" else value


@dataclass(frozen=True)
class ProcessSettings:
    """The process manager: workers, recycling, reload, systemd."""

    workers: int = opt(1, "Number of worker processes ('auto' = CPU count).", parse=workers)
    timeout_worker_healthcheck: float = opt(
        10.0, "Replace a worker that does not answer a health check in this many seconds.", parse=seconds
    )
    timeout_worker_startup: float | None = opt(
        60.0,
        "Kill a worker that has not imported the app and finished lifespan startup in this many seconds.",
        parse=timeout,
    )
    limit_max_requests: int | None = opt(None, "Recycle a worker after this many requests.", parse=limit)
    limit_max_requests_jitter: int = opt(
        0,
        "Add up to this many requests of random jitter to --limit-max-requests "
        "(gunicorn's name --max-requests-jitter works too).",
        parse=non_negative_int,
        aliases=("--max-requests-jitter",),
    )
    limit_max_memory: int | None = opt(
        None, "Recycle a worker whose RSS exceeds this many MiB.", parse=_off_or(mebibytes)
    )
    reload: bool = opt(False, "Restart the worker when files change (development).", kind="bool")
    reload_dir: list[str] = opt(
        [], "Directory to watch for --reload (repeatable; default: --app-dir).", metavar="DIR", kind="append"
    )
    reload_include: list[str] = opt(
        [], "Glob of files that trigger a reload (repeatable; default: *.py).", metavar="GLOB", kind="append"
    )
    reload_exclude: list[str] = opt(
        [], "Glob of files never triggering a reload (repeatable).", metavar="GLOB", kind="append"
    )
    reload_delay: float = opt(
        0.25, "Seconds without a further file change before --reload restarts the workers.", parse=seconds
    )
    supervisor: bool = opt(
        False,
        "Keep a supervisor even for one worker (health checks, crash restarts, SIGHUP without a pause).",
        kind="bool",
    )
    pid_file: str | None = opt(None, "Write the main squall process's PID to this file.", metavar="PATH")
    timeout_notify: float | None = opt(
        None,
        "Accepted for uvicorn compatibility and ignored: workers answer the supervisor's health "
        "check instead (--timeout-worker-healthcheck).",
        parse=timeout,
        ignored="squall's workers answer the supervisor's health check (--timeout-worker-healthcheck)",
    )

    @property
    def supervised(self) -> bool:
        """Whether a supervisor process is needed; otherwise squall serves in the process it started in.

        Only the supervisor runs several workers, watches files (--reload), recycles a worker
        (--limit-max-requests, --limit-max-memory), health-checks and restarts workers, or scales
        with SIGTTIN/SIGTTOU. Everything else (binding, lifespan, graceful shutdown, SIGHUP
        reload, sd_notify, --pid-file, startup exit codes) works in one process too.
        """
        return (
            self.supervisor
            or self.workers > 1
            or self.reload
            or self.limit_max_requests is not None
            or self.limit_max_memory is not None
        )


@dataclass(frozen=True)
class RuntimeSettings:
    """Event loop, shutdown and logging."""

    loop: str = opt(
        "auto",
        "Event loop: auto uses uvloop when installed; none is asyncio's default (as asyncio); "
        "MODULE:ATTR names a callable returning a new event loop.",
        parse=loop,
        metavar="{auto,asyncio,uvloop,zuvloop,none,MODULE:ATTR}",
        note=(("none",), "--loop none runs asyncio's default event loop, as --loop asyncio"),
    )
    timeout_graceful_shutdown: float | None = opt(
        30.0, "Seconds in-flight requests get to finish on shutdown ('off' waits forever).", parse=timeout
    )
    drain_delay: float = opt(
        0.0,
        "Seconds between SIGTERM and the drain: squall still serves, --health-path answers 503.",
        parse=seconds,
    )
    health_path: str | None = opt(
        None,
        "Path squall answers itself, before the app: 200 while serving, 503 once stopping.",
        parse=path,
        metavar="PATH",
    )
    log_level: str | None = opt(
        None,
        "Level of squall.error and squall.access (default: info, or what --log-config sets).",
        choices=("critical", "error", "warning", "info", "debug", "trace"),
    )
    access_log: bool = opt(True, "Log one line per request (on stdout).", kind="bool")
    log_config: str | None = opt(
        None,
        "Logging configuration: a dictConfig in .json or .yaml/.yml (needs PyYAML), else a fileConfig "
        ".ini file; it replaces squall's default handlers.",
        metavar="PATH",
    )
    use_colors: bool | None = opt(
        None, "Colour level names and access status codes (default: when writing to a terminal).", kind="bool"
    )


def access_format(text: str) -> str:
    """``--access-log-format``: gunicorn's atoms, checked now so a typo is a startup error."""
    for name in ACCESS_ATOM.findall(text):
        if not (name[:1] == "{" and name[-2:-1] == "}" and name[-1:] in "ioe") and name not in ACCESS_ATOMS:
            raise ValueError(f"unknown atom %({name})s")
    try:
        text % _AnyAtom()
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"not a %-format of %(atom)s fields ({exc})") from None
    return text


class _AnyAtom(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "-"


#: ``%(name)s`` in an access log format (``name`` may be ``{header}i``, ``{header}o``, ``{var}e``).
ACCESS_ATOM = re.compile(r"%\(([^)]*)\)")
#: The atoms ``--access-log-format`` knows (see squall.observe.access for what each one says).
ACCESS_ATOMS = frozenset(
    [*"hlutrsmUqHTDMLpbBfa", "scheme", "protocol", "stream", "ended", "request_id", "pid"]
)


def token(text: str) -> str:
    """A header name (RFC 9110 token)."""
    if not TOKEN.fullmatch(text.encode("latin-1", "replace")):
        raise ValueError("must be a header name")
    return text.lower()


@dataclass(frozen=True)
class ObserveSettings:
    """Access log formats, JSON logs, the request id and Prometheus metrics."""

    log_format: str = opt(
        "text",
        "Log line format for the error and access logs: text, or one JSON object a line.",
        choices=("text", "json"),
    )
    access_log_format: str | None = opt(
        None,
        "Access line in gunicorn's atoms: h r s b a T M..., {header}i, {header}o (default: squall's line).",
        parse=access_format,
        metavar="FORMAT",
    )
    request_id_header: str | None = opt(
        None,
        "Request id header (e.g. x-request-id): kept from the request when well-formed, else generated; "
        "echoed on the response, logged, in scope['state']['request_id'].",
        parse=token,
        metavar="NAME",
    )
    metrics: bool = opt(False, "Serve Prometheus metrics on their own listener.", kind="bool")
    metrics_host: str = opt("127.0.0.1", "Interface of the metrics listener.", metavar="HOST")
    metrics_port: int = opt(9090, "Port of the metrics listener (0 picks a free one).", parse=port)


@dataclass(frozen=True)
class Config:
    """Everything a squall process needs to know, grouped by concern."""

    app: AppSettings = field(default_factory=AppSettings)
    socket: SocketSettings = field(default_factory=SocketSettings)
    http: HTTPSettings = field(default_factory=HTTPSettings)
    proxy: ProxySettings = field(default_factory=ProxySettings)
    websocket: WebSocketSettings = field(default_factory=WebSocketSettings)
    tls: TLSSettings = field(default_factory=TLSSettings)
    http2: HTTP2Settings = field(default_factory=HTTP2Settings)
    http3: HTTP3Settings = field(default_factory=HTTP3Settings)
    process: ProcessSettings = field(default_factory=ProcessSettings)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    observe: ObserveSettings = field(default_factory=ObserveSettings)


GROUP_TITLES = {
    "app": "Application",
    "socket": "Socket binding",
    "http": "HTTP and limits",
    "proxy": "Proxy headers",
    "websocket": "WebSockets",
    "tls": "TLS",
    "http2": "HTTP/2",
    "http3": "HTTP/3",
    "process": "Process manager",
    "runtime": "Runtime and logging",
    "observe": "Observability",
}


@dataclass(frozen=True)
class Option:
    """One option as the CLI/env/config-file layers see it."""

    group: str
    name: str
    field: dataclasses.Field[Any]

    @property
    def meta(self) -> Any:
        return self.field.metadata

    @property
    def flag(self) -> str:
        return self.meta["flag"] or "--" + self.name.replace("_", "-")

    @property
    def flags(self) -> tuple[str, ...]:
        """The flag and its aliases."""
        return (self.flag, *self.meta["aliases"])

    @property
    def env(self) -> str:
        return "SQUALL_" + self.name.upper()

    @property
    def envs(self) -> tuple[str, ...]:
        """``SQUALL_*`` names: the option's own, then its aliases'."""
        aliases = ("SQUALL_" + alias[2:].replace("-", "_").upper() for alias in self.meta["aliases"])
        return (self.env, *aliases)

    def note(self, value: Any) -> str | None:
        """The debug note for ``value`` (a value naming an implementation squall has one of)."""
        noted = self.meta["note"]
        if noted is not None and value in noted[0]:
            return f"{self.flag} {value}: {noted[1]}"
        return None

    def ignored(self, value: Any) -> str | None:
        """The startup warning for an option without meaning in squall, when it is set."""
        reason = self.meta["ignored"]
        if reason is not None and value != self.default():
            return f"{self.flag} is accepted for compatibility and has no effect: {reason}"
        return None

    def default(self) -> Any:
        if self.field.default is not dataclasses.MISSING:
            return self.field.default
        factory: Callable[[], Any] = self.field.default_factory  # type: ignore[assignment]
        return factory()

    def parse_value(self, text: str) -> Any:
        """Parse one textual value; raises ValueError with a short reason."""
        meta = self.meta
        if meta["kind"] == "bool":
            lowered = text.strip().lower()
            if lowered in TRUE_WORDS:
                return True
            if lowered in FALSE_WORDS:
                return False
            raise ValueError(f"expected true or false, got {text!r}")
        if meta["choices"] and text not in meta["choices"]:
            raise ValueError(f"invalid choice {text!r} (choose from {', '.join(meta['choices'])})")
        try:
            return meta["parse"](text)
        except ValueError as exc:
            reason = str(exc)
            if "invalid literal" in reason or "could not convert" in reason:
                reason = "not a number"
            raise ValueError(f"invalid value {text!r}: {reason}") from None

    def parse(self, text: str, source: str) -> Any:
        """Parse one textual value; raises OptionError naming ``source``."""
        try:
            return self.parse_value(text)
        except ValueError as exc:
            raise OptionError(f"{source}: {exc}") from None


def _sections() -> Iterator[tuple[str, type[Any]]]:
    defaults = Config()
    for group_field in dataclasses.fields(Config):
        yield group_field.name, type(getattr(defaults, group_field.name))


def options() -> Iterator[Option]:
    """Every option, in declaration order."""
    for group, settings_cls in _sections():
        for f in dataclasses.fields(settings_cls):
            yield Option(group, f.name, f)


def build(values: dict[str, Any]) -> Config:
    """A Config from option-name → parsed-value pairs (missing names keep their defaults)."""
    groups: dict[str, dict[str, Any]] = {}
    for option in options():
        if option.name in values:
            groups.setdefault(option.group, {})[option.name] = values[option.name]
    kwargs = {group: cls(**groups.get(group, {})) for group, cls in _sections()}
    return Config(**kwargs)


#: Environment variables read under uvicorn's names, as uvicorn reads them; the ``SQUALL_*``
#: variable of the same option wins over them.
UVICORN_ENV = {"FORWARDED_ALLOW_IPS": "forwarded_allow_ips"}


def from_uvicorn_environ(environ: os._Environ[str] | dict[str, str]) -> dict[str, Any]:
    """Option values set through the variables of ``UVICORN_ENV``."""
    by_name = {option.name: option for option in options()}
    values: dict[str, Any] = {}
    for variable, name in UVICORN_ENV.items():
        text = environ.get(variable)
        if text is not None:
            values[name] = by_name[name].parse(text, variable)
    return values


def from_environ(environ: os._Environ[str] | dict[str, str]) -> dict[str, Any]:
    """Option values set through ``SQUALL_*`` environment variables (and ``UVICORN_ENV``)."""
    values: dict[str, Any] = from_uvicorn_environ(environ)
    for option in options():
        name = next((env for env in option.envs if env in environ), None)
        if name is None and option.name == "workers" and WEB_CONCURRENCY in environ:
            name = WEB_CONCURRENCY
        if name is None:
            continue
        text = environ[name]
        if option.meta["kind"] == "append":
            values[option.name] = [option.parse(part, name) for part in text.split(",") if part.strip()]
        else:
            values[option.name] = option.parse(text, name)
    return values


def from_file(path: str) -> dict[str, Any]:
    """Option values from a TOML file whose keys are the flag names (``timeout-keep-alive = 5``)."""
    import tomllib

    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise OptionError(f"--config: cannot read {path}: {exc}") from None
    by_key = {flag[2:]: option for option in options() for flag in option.flags}
    values: dict[str, Any] = {}
    for key, raw in data.items():
        option = by_key.get(key.replace("_", "-"))
        if option is None:
            raise OptionError(f"--config: unknown option {key!r} in {path}")
        source = f"{path}: {key}"
        if option.meta["kind"] == "append":
            items = raw if isinstance(raw, list) else [raw]
            values[option.name] = [option.parse(str(item), source) for item in items]
        elif isinstance(raw, bool) and option.meta["kind"] == "bool":
            values[option.name] = raw
        else:
            values[option.name] = option.parse(str(raw), source)
    return values


def close_matches(word: str, possibilities: list[str], n: int = 3) -> list[str]:
    """The names ``word`` may have meant, for a "did you mean" hint. difflib is imported here,
    for a mistyped name only: it is 0.3 MiB of a serving process's memory."""
    import difflib

    return difflib.get_close_matches(word, possibilities, n=n, cutoff=0.6)
