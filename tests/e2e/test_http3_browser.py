"""A real browser over HTTP/3: headless Chromium forced onto QUIC for the test origin loads a page,
fetches, streams and uploads, each over h3 (``nextHopProtocol``)."""

from __future__ import annotations

import pytest

from . import browser
from .conftest import StartServer
from .h2util import Certs, certs

__all__ = ["certs"]

pytestmark = pytest.mark.skipif(not browser.available(), reason="chromium is not installed")

SCRIPT = """
(async () => {
  const page = performance.getEntriesByType("navigation")[0].nextHopProtocol;
  const scope = await (await fetch("/scope")).json();
  const response = await fetch("/stream?n=200");
  const reader = response.body.getReader();
  let text = "", reads = 0;
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    reads += 1;
    text += new TextDecoder().decode(value);
  }
  const body = new Uint8Array(3 * 1024 * 1024).map((_, i) => i % 251);
  const upload = await (await fetch("/body-info", {method: "POST", body})).json();
  const protocols = performance.getEntriesByType("resource").map(e => e.nextHopProtocol);
  return {page, version: scope.http_version, lines: text.split("\\n").length - 1, reads,
          uploaded: upload.length, protocols};
})()
"""


@pytest.mark.timeout(120)
def test_chromium_loads_fetches_streams_and_uploads_over_h3(start_server: StartServer, certs: Certs) -> None:
    server = start_server(*certs.args("--http3"))
    origin = f"127.0.0.1:{server.port}"
    flags = [f"--origin-to-force-quic-on={origin}", browser.spki_flag(certs.cert.read_bytes())]
    with browser.Browser(flags) as chromium:
        chromium.navigate(f"https://{origin}/")
        result = chromium.evaluate(SCRIPT)
    assert result["page"] == "h3"
    assert result["version"] == "3"
    assert result["lines"] == 200
    assert result["uploaded"] == 3 * 1024 * 1024
    assert result["protocols"] and set(result["protocols"]) == {"h3"}
    assert "HTTP/3" in server.log()
