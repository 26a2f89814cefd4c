"""nginx in front of squall nodes, and a keep-alive load generator, for tests and ``bench/``.

``Nginx`` runs Debian's nginx on loopback with the README's configuration (the block between the
``nginx:conf`` markers), changing only the upstream ports, the listening port and file paths.
nginx binds its listening socket before it daemonizes, so once ``nginx`` has exited with 0 it
accepts: no polling for readiness.

``Load`` runs keep-alive HTTP/1.1 clients in threads (``http.client``), each alternating GETs and
POSTs against one URL and counting answers by method, node and code version (the headers
``tests/e2e/node_apps.py`` sets). A failure is any exception or any status but 200, or a POST
answer that does not match the body sent.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .harness import REPO_ROOT, Server

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
CONF_BLOCK = re.compile(r"<!-- nginx:conf -->\n```nginx\n(?P<conf>.*?)```\n<!-- /nginx:conf -->", re.S)


def readme_nginx_conf() -> str:
    """The nginx configuration the README shows (between its ``nginx:conf`` markers)."""
    match = CONF_BLOCK.search((REPO_ROOT / "README.md").read_text())
    if match is None:
        raise RuntimeError("README.md has no <!-- nginx:conf --> block")
    return match["conf"]


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Nginx:
    """nginx with the README's configuration, in front of squall at ``upstreams`` (host:port)."""

    def __init__(
        self,
        workdir: Path,
        upstreams: Sequence[str],
        *,
        certfile: str | None = None,
        keyfile: str | None = None,
        client_max_body_size: str = "10m",
    ) -> None:
        self.dir = workdir
        self.port = free_port()
        self.tls = certfile is not None
        conf = readme_nginx_conf()
        servers = re.findall(r"^\s*server 127\.0\.0\.1:\d+[^\n]*\n", conf, re.M)
        template = servers[0]
        upstream_lines = "".join(re.sub(r"127\.0\.0\.1:\d+", address, template) for address in upstreams)
        conf = conf.replace("".join(servers), upstream_lines)
        listen = f"listen 127.0.0.1:{self.port}" + (" ssl;" if self.tls else ";")
        conf = conf.replace("listen 443 ssl;", listen)
        if self.tls:
            conf = conf.replace("/etc/ssl/example.com.pem", str(certfile))
            conf = conf.replace("/etc/ssl/example.com.key", str(keyfile))
        else:
            conf = re.sub(r"^\s*ssl_certificate.*\n", "", conf, flags=re.M)
        conf = conf.replace("client_max_body_size 10m;", f"client_max_body_size {client_max_body_size};")
        self.error_log = workdir / "error.log"
        self.pid_path = workdir / "nginx.pid"
        self.conf_path = workdir / "nginx.conf"
        self.conf_path.write_text(self._main_conf(conf))

    def _main_conf(self, http_block: str) -> str:
        d = self.dir
        temp = "\n".join(
            f"    {kind}_temp_path {d}/{kind}_temp;"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        user = "user root;\n" if os.geteuid() == 0 else ""
        return (
            f"{user}worker_processes 1;\npid {self.pid_path};\nerror_log {d}/error.log info;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            f"    log_format upstream '$remote_addr \"$request\" $status $upstream_addr $upstream_status';\n"
            f"    access_log {d}/access.log upstream;\n{temp}\n"
            f"{http_block}}}\n"
        )

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> Nginx:
        """Start nginx; when this returns, it accepts connections."""
        assert NGINX is not None
        done = subprocess.run(
            [NGINX, "-p", str(self.dir), "-e", str(self.error_log), "-c", str(self.conf_path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"nginx did not start: {done.stderr}\n{self.conf_path.read_text()}")
        return self

    def stop(self) -> None:
        """Stop nginx (SIGTERM to its master) and wait until it is gone."""
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            pid = int(self.pid_path.read_text())
            handle = os.pidfd_open(pid)  # readable once the process has exited
            try:
                os.kill(pid, signal.SIGTERM)
                select.select([handle], [], [], 10)
            finally:
                os.close(handle)

    def log(self) -> str:
        return self.error_log.read_text() if self.error_log.exists() else ""

    def access_log(self) -> list[str]:
        path = self.dir / "access.log"
        return path.read_text().splitlines() if path.exists() else []


@contextlib.contextmanager
def running_nginx(workdir: Path, upstreams: Sequence[str], **kwargs: object) -> Iterator[Nginx]:
    proxy = Nginx(workdir, upstreams, **kwargs).start()  # type: ignore[arg-type]
    try:
        yield proxy
    finally:
        proxy.stop()


# ---------------------------------------------------------------------- nodes


def node_args(port: int, workers: int = 2, extra: Sequence[str] = (), access_log: bool = False) -> list[str]:
    """CLI arguments of one squall node behind nginx."""
    log = [] if access_log else ["--no-access-log"]
    return ["--port", str(port), "--workers", str(workers), *log, *extra]


def start_node(
    name: str,
    port: int,
    version: str,
    *,
    workers: int = 2,
    extra: Sequence[str] = (),
    access_log: bool = False,
) -> Server:
    """A squall node (``version``: ``old`` or ``new`` code) on ``port``; returns once it serves."""
    server = Server(
        node_args(port, workers, extra, access_log),
        app=f"tests.e2e.node_apps:{version}",
        env={"SQUALL_TEST_NODE": name},
        ephemeral_port=False,
    )
    return server.start()


# ---------------------------------------------------------------------- load


@dataclass
class Counts:
    """What the load generator saw."""

    total: collections.Counter[str] = field(default_factory=collections.Counter)  # by method
    failed: collections.Counter[str] = field(default_factory=collections.Counter)
    served_by: collections.Counter[tuple[str, str]] = field(
        default_factory=collections.Counter
    )  # (node, code)
    errors: list[str] = field(default_factory=list)

    def describe(self) -> str:
        lines = [
            f"{method}: {self.failed[method]} failed of {self.total[method]}" for method in sorted(self.total)
        ]
        lines += [
            f"node {node} {code} code: {n} responses" for (node, code), n in sorted(self.served_by.items())
        ]
        lines += [f"  error: {error}" for error in self.errors[:10]]
        return "\n".join(lines)


class Load:
    """``clients`` keep-alive clients in threads, alternating GET and POST at ``host:port``."""

    def __init__(self, host: str, port: int, clients: int = 4, *, max_requests: int | None = None) -> None:
        self.host = host
        self.port = port
        self.counts = Counts()
        self.max_requests = max_requests
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._progress = threading.Condition(self._lock)
        self._threads = [
            threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(clients)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> Counts:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        return self.counts

    def wait_until(self, predicate: object, timeout: float) -> bool:
        """Block until ``predicate(counts)`` holds (checked after every answer) or ``timeout``."""
        with self._progress:
            return self._progress.wait_for(lambda: predicate(self.counts), timeout)  # type: ignore[operator]

    def _record(self, method: str, node: str | None, code: str | None, error: str | None) -> None:
        with self._progress:
            counts = self.counts
            counts.total[method] += 1
            if error is not None:
                counts.failed[method] += 1
                counts.errors.append(f"{method}: {error}")
            else:
                counts.served_by[(node or "?", code or "?")] += 1
            if self.max_requests is not None and sum(counts.total.values()) >= self.max_requests:
                self._stop.set()
            self._progress.notify_all()

    def _client(self, number: int) -> None:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        sequence = 0
        while not self._stop.is_set():
            sequence += 1
            post = sequence % 2 == 0
            body = os.urandom(256 + (number * 997 + sequence * 131) % 4096) if post else None
            method = "POST" if post else "GET"
            try:
                connection.request(method, "/", body=body)
                response = connection.getresponse()
                data = response.read()
                error = None
                if response.status != 200:
                    error = f"status {response.status}: {data[:200]!r}"
                elif body is not None and data != b"%d %08x" % (len(body), zlib.crc32(body)):
                    error = f"wrong answer {data[:100]!r}"
                self._record(method, response.getheader("x-node"), response.getheader("x-code"), error)
                if response.will_close:
                    connection.close()
            except (OSError, http.client.HTTPException) as exc:
                self._record(method, None, None, f"{type(exc).__name__}: {exc}")
                connection.close()
        connection.close()


def served(counts: Counts, node: str, code: str, at_least: int = 1) -> bool:
    """Whether ``node`` running ``code`` has answered at least ``at_least`` requests."""
    return counts.served_by[(node, code)] >= at_least


@dataclass
class Node:
    """One squall node behind the balancer: its name, port and the process serving now."""

    name: str
    port: int
    server: Server
    version: str = "old"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def start_nodes(
    names: Sequence[str], version: str = "old", extra: Sequence[str] = (), workers: int = 2
) -> list[Node]:
    """One node per name, each on a free port."""
    nodes: list[Node] = []
    for name in names:
        port = free_port()
        nodes.append(Node(name, port, start_node(name, port, version, workers=workers, extra=extra), version))
    return nodes


def rolling_deploy(
    nodes: Sequence[Node], load: Load, extra: Sequence[str] = (), timeout: float = 60
) -> list[float]:
    """Replace each node in turn with the ``new`` code, under ``load``; return each drain's seconds.

    A node is told to drain (SIGTERM) once the balancer sends it traffic; it is started again with
    the new code when it has exited, and the next node goes only when the balancer sends the new
    one traffic again (nginx retries a node it saw down after ``fail_timeout``).
    """
    drains = []
    for node in nodes:
        if not load.wait_until(lambda c, n=node.name, v=node.version: served(c, n, v, 20), timeout):
            raise TimeoutError(f"node {node.name} got no traffic:\n{load.counts.describe()}")
        began = time.monotonic()
        node.server.terminate()
        node.server.wait_exit(timeout)
        drains.append(time.monotonic() - began)
        node.server = start_node(node.name, node.port, "new", extra=extra)
        node.version = "new"
        if not load.wait_until(lambda c, n=node.name: served(c, n, "new", 20), timeout):
            raise TimeoutError(f"new node {node.name} got no traffic:\n{load.counts.describe()}")
    return drains
