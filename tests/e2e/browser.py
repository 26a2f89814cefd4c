"""Headless Chromium for end-to-end tests, driven over the DevTools protocol (no extra dependency:
the ``websockets`` sync client speaks to the page's DevTools socket).

    with Browser(["--origin-to-force-quic-on=127.0.0.1:8443", spki_flag(cert_pem)]) as browser:
        browser.navigate("https://127.0.0.1:8443/")
        value = browser.evaluate("fetch('/x').then(r => r.status)")

``available()`` tells whether a Chromium is installed; tests skip (with the reason) when it is not.
Chromium prints its DevTools address on stderr once it listens, which is when ``start()`` returns.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from websockets.sync.client import ClientConnection, connect

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
)
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


def executable() -> str | None:
    """The path of an installed Chromium, or None."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def available() -> bool:
    return executable() is not None


def spki_flag(cert_pem: bytes) -> str:
    """``--ignore-certificate-errors-spki-list`` accepting the certificate ``cert_pem`` (a test CA's
    leaf): Chromium then trusts it for TLS and QUIC alike."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    return f"--ignore-certificate-errors-spki-list={digest}"


class BrowserError(RuntimeError):
    """Chromium failed, or a DevTools command returned an error or an exception."""


class Browser:
    """One headless Chromium with a fresh profile and one page."""

    def __init__(self, args: Sequence[str] = (), timeout: float = 30.0) -> None:
        path = executable()
        if path is None:
            raise BrowserError("no chromium installed")
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="squall-chromium-")
        self.command = [path, *FLAGS, f"--user-data-dir={self._profile}", *args, "about:blank"]
        self.proc: subprocess.Popen[str] | None = None
        self.page: ClientConnection | None = None
        self.log: list[str] = []
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Browser:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> Browser:
        self.proc = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        address = self._devtools_address()
        port = int(address.split(":")[2].split("/")[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=self.timeout) as answer:
            targets = json.load(answer)
        page = next(t for t in targets if t.get("type") == "page")
        self.page = self._stack.enter_context(
            connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=self.timeout)
        )
        self.command_("Page.enable")
        self.command_("Runtime.enable")
        return self

    def _devtools_address(self) -> str:
        """Read Chromium's stderr until it names its DevTools socket (the rest is kept in ``log``)."""
        assert self.proc is not None and self.proc.stderr is not None
        found: list[str] = []
        ready = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stderr is not None
            for line in self.proc.stderr:
                self.log.append(line.rstrip())
                match = _LISTENING.search(line)
                if match and not found:
                    found.append(match.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(self.timeout) or not found:
            raise BrowserError("chromium did not start:\n" + "\n".join(self.log[-20:]))
        return found[0]

    def command_(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command; return its result (events that arrive meanwhile are kept)."""
        assert self.page is not None
        ident = next(self._ids)
        self.page.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout
        while True:
            message = json.loads(self.page.recv(timeout=max(0.01, deadline - time.monotonic())))
            if message.get("id") == ident:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self._events.append(message)

    def wait_event(self, method: str) -> dict[str, Any]:
        """The next DevTools event named ``method`` (one that arrived already counts)."""
        assert self.page is not None
        deadline = time.monotonic() + self.timeout
        while True:
            for index, event in enumerate(self._events):
                if event.get("method") == method:
                    del self._events[index]
                    return event
            message = json.loads(self.page.recv(timeout=max(0.01, deadline - time.monotonic())))
            self._events.append(message)

    def navigate(self, url: str) -> None:
        """Load ``url`` and wait for its load event."""
        self._events = [e for e in self._events if e.get("method") != "Page.loadEventFired"]
        result = self.command_("Page.navigate", url=url)
        if result.get("errorText"):
            raise BrowserError(f"navigation to {url} failed: {result['errorText']}")
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        result = self.command_(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(f"{details.get('text')}: {details.get('exception', {}).get('description')}")
        return result["result"].get("value")

    def close(self) -> None:
        self._stack.close()
        self.page = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self._profile, ignore_errors=True)


def read_pem(path: Path) -> bytes:
    return Path(path).read_bytes()
