"""What squall's browser tests add to ``browser.Browser`` (kept verbatim, shared with the HTTP/3
tests): console and network errors of the page, a phone-sized viewport, screenshots, closing the
tab, and the JavaScript helpers the tests run in the page (CRC-32, random bytes)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from .browser import Browser

#: ``crc32(bytes, previous)`` as zlib computes it, and ``randomBytes(n)``; defined on ``window``.
HELPERS = """
(() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  window.crc32 = (bytes, crc = 0) => {
    crc = (crc ^ 0xFFFFFFFF) >>> 0;
    for (let i = 0; i < bytes.length; i++) crc = table[(crc ^ bytes[i]) & 0xFF] ^ (crc >>> 8);
    return (crc ^ 0xFFFFFFFF) >>> 0;
  };
  window.randomBytes = (size) => {
    const out = new Uint8Array(size);
    for (let i = 0; i < size; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(size, i + 65536)));
    return out;
  };
  return true;
})()
"""


class Page(Browser):
    """A ``Browser`` that also records the page's errors (console, exceptions, failed loads)."""

    def __init__(self, args: Sequence[str] = (), timeout: float = 60.0) -> None:
        super().__init__(args, timeout)

    def start(self) -> Page:
        super().start()
        self.command_("Log.enable")
        self.command_("Network.enable", maxPostDataSize=1024)  # no megabytes of upload in events
        return self

    def load(self, url: str) -> None:
        """Navigate to ``url`` and define the helpers."""
        self.navigate(url)
        assert self.evaluate(HELPERS) is True

    def errors(self) -> list[str]:
        """Every console error, uncaught exception, failed request and 4xx/5xx response so far."""
        self.command_("Runtime.evaluate", expression="0")  # collects the events sent before it
        found = []
        for event in self._events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append(f"console.error: {params.get('args')}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Network.responseReceived" and params["response"]["status"] >= 400:
                found.append(f"{params['response']['status']} {params['response']['url']}")
            elif method == "Network.loadingFailed" and not params.get("canceled"):
                found.append(f"failed: {params.get('errorText')} {params.get('type')}")
        return found

    def phone(self, width: int = 375, height: int = 740) -> None:
        """Emulate a phone's screen from now on."""
        self.command_(
            "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=2, mobile=True
        )

    def screenshot(self, width: int, height: int) -> bytes:
        """A PNG of the page at ``width`` x ``height`` CSS pixels."""
        self.command_(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        result: dict[str, Any] = self.command_("Page.captureScreenshot", format="png")
        return base64.b64decode(result["data"])

    def close_tab(self) -> None:
        """Close the page as a user closing the tab would (its connections go with it)."""
        self.command_("Page.close")
