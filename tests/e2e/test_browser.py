"""A real browser against a real squall: Debian's headless Chromium over the DevTools protocol.

Over TLS (a test CA's certificate, trusted through Chromium's SPKI allow-list) the page, its
fetches, an EventSource, a streamed fetch, a 5 MiB upload, a 16 MiB download and websockets all
run on one HTTP/2 connection, the websockets as RFC 8441 extended CONNECT (squall's scope says
``http_version`` "2" for them); in cleartext the same runs over HTTP/1.1. Closing the tab with a
websocket, an event stream and a download open leaves squall healthy with a clean log. The demo
page (``squall`` with no APP) is checked too: protocol and TLS version shown, websocket echo and
live events working, readable on a phone, no console errors. Every wait is on the page's own
promises (``Runtime.evaluate`` with ``awaitPromise``), never on a sleep.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from . import browser
from .cdp import Page
from .conftest import StartServer
from .h2util import Certs, certs
from .harness import Server

__all__ = ["certs"]

pytestmark = [
    pytest.mark.skipif(
        not browser.available(), reason="chromium is not installed (apt-get install chromium)"
    ),
    pytest.mark.timeout(180),
]
APP = "tests.e2e.browser_app:app"
MIB = 1024 * 1024
LOG_TROUBLE = re.compile(r"ERROR|Traceback|Exception|WARNING")
ACCESS = re.compile(
    r'INFO (?P<client>\S+) - "(?P<method>[A-Za-z]+) (?P<target>\S+)(?: HTTP/(?P<version>[\d.]+))?" (?P<status>\d{3})'
)


def access(server: Server) -> list[re.Match[str]]:
    """The access log lines, HTTP/2 and websockets included."""
    server.log()
    return [m for m in map(ACCESS.search, server.lines) if m]


def page_for(server: Server, certs: Certs) -> Page:
    """A Chromium trusting the test certificate; ``with`` starts it."""
    return Page([browser.spki_flag(certs.cert.read_bytes())])


def serve(start_server: StartServer, certs: Certs, tls: bool, app: str = APP) -> Server:
    return start_server(*(certs.args() if tls else []), app=app)


FETCH_JSON = "fetch('/json').then(r => r.json())"
NEXT_HOP = "performance.getEntriesByType('navigation')[0].nextHopProtocol"
WEBSOCKET = """
new Promise((resolve, reject) => {
  const ws = new WebSocket(location.origin.replace('http', 'ws') + '/ws');
  ws.binaryType = 'arraybuffer';
  const big = randomBytes(SIZE);
  let how = null;
  ws.onmessage = (event) => {
    if (how === null) { how = JSON.parse(event.data); ws.send('hello'); return; }
    if (event.data === 'hello') { ws.send(big); return; }
    const echoed = new Uint8Array(event.data);
    ws.close(1000);
    resolve({how, size: echoed.length, same: crc32(echoed) === crc32(big)});
  };
  ws.onerror = () => reject(new Error('websocket error'));
})
""".replace("SIZE", str(MIB))
EVENTS = """
new Promise((resolve, reject) => {
  const source = new EventSource('/events?n=5');
  const seen = [];
  source.onmessage = (event) => seen.push(event.data);
  source.addEventListener('end', () => { source.close(); resolve(seen); });
  source.onerror = () => { source.close(); reject(new Error('EventSource error after ' + seen.length)); };
})
"""
STREAMED = """
(async () => {
  const response = await fetch('/stream?n=10');
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = '', reads = 0;
  for (;;) {
    const {done, value} = await reader.read();
    if (done) break;
    reads += 1;
    text += decoder.decode(value, {stream: true});
  }
  return {text, reads};
})()
"""
UPLOAD = """
(async () => {
  const body = randomBytes(SIZE);
  const response = await fetch('/upload', {method: 'POST', body});
  return {answer: await response.json(), crc32: crc32(body)};
})()
""".replace("SIZE", str(5 * MIB))
DOWNLOAD = """
(async () => {
  const response = await fetch('/download?mib=16');
  const reader = response.body.getReader();
  let crc = 0, size = 0;
  for (;;) {
    const {done, value} = await reader.read();
    if (done) break;
    crc = crc32(value, crc);
    size += value.length;
  }
  return {size, crc32: crc, expected: Number(response.headers.get('x-crc32'))};
})()
"""


@pytest.mark.parametrize("tls", [True, False], ids=["tls-h2", "cleartext"])
def test_page_fetch_websocket_events_stream_upload_download(
    start_server: StartServer, certs: Certs, tls: bool
) -> None:
    server = serve(start_server, certs, tls)
    version = "2" if tls else "1.1"
    with page_for(server, certs) as page:
        page.load(server.url + "/")
        assert page.evaluate(NEXT_HOP) == ("h2" if tls else "http/1.1")
        assert page.evaluate(FETCH_JSON) == {"http_version": version, "scheme": "https" if tls else "http"}
        echo = page.evaluate(WEBSOCKET)
        assert echo == {
            "how": {"http_version": version, "scheme": "wss" if tls else "ws"},
            "size": MIB,
            "same": True,
        }
        assert page.evaluate(EVENTS) == [f"event {n}" for n in range(5)]
        streamed = page.evaluate(STREAMED)
        assert streamed["text"] == "".join(f"part {n};" for n in range(10))
        upload = page.evaluate(UPLOAD)
        assert upload["answer"] == {"length": 5 * MIB, "crc32": upload["crc32"]}
        download = page.evaluate(DOWNLOAD)
        assert download["size"] == 16 * MIB
        assert download["crc32"] == download["expected"]
        assert page.errors() == []
    lines = access(server)
    assert {m["method"] for m in lines} == {"GET", "POST", "WebSocket"}  # a websocket's line, then or now:
    assert [m["target"] for m in lines if m["method"] == "WebSocket"] == ["/ws"]  # "WebSocket /ws [HTTP/v]"
    assert {m["version"] for m in lines if m["method"] != "WebSocket"} == {version}
    if tls:  # one HTTP/2 connection carried the page, its fetches and the websocket stream
        assert len({m["client"] for m in lines}) == 1, server.log()
    assert not [line for line in server.lines if LOG_TROUBLE.search(line)]


OPEN_EVERYTHING = """
(async () => {
  const ws = new WebSocket(location.origin.replace('http', 'ws') + '/ws');
  await new Promise((resolve) => { ws.onmessage = resolve; });
  const source = new EventSource('/events?n=0');
  await new Promise((resolve) => { source.onmessage = resolve; });
  const response = await fetch('/download?forever=1&mib=1');
  window.downloadReader = response.body.getReader();
  await window.downloadReader.read();
  return true;
})()
"""


@pytest.mark.parametrize("tls", [True, False], ids=["tls-h2", "cleartext"])
def test_closing_the_tab_with_everything_open_leaves_squall_healthy(
    start_server: StartServer, certs: Certs, tls: bool
) -> None:
    server = serve(start_server, certs, tls)
    with page_for(server, certs) as page:
        page.load(server.url + "/")
        assert page.evaluate(OPEN_EVERYTHING) is True
        mark = server.mark()
        page.close_tab()
        for gone in ("APP websocket gone", "APP events gone", "APP download gone"):
            server.wait_for_line(gone, timeout=15, start=mark)
    verify = certs.ssl_context() if tls else False
    with httpx.Client(base_url=server.url, verify=verify, timeout=10) as client:
        assert client.get("/json").status_code == 200
    assert server.stop() == 0
    assert not [line for line in server.lines if LOG_TROUBLE.search(line)], server.log()


# ---------------------------------------------------------------------- the demo page

DEMO_READY = "window.squallDemo.ready"


@pytest.mark.parametrize("tls", [True, False], ids=["tls-h2", "cleartext"])
def test_demo_page(start_server: StartServer, certs: Certs, tls: bool) -> None:
    server = start_server(*(certs.args() if tls else []), app=None)
    with page_for(server, certs) as page:
        page.phone()
        page.load(server.url + "/")
        ready = page.evaluate(DEMO_READY)
        assert ready == {"echo": "hello from the browser", "events": True}
        text = page.evaluate("document.body.innerText")
        assert ("HTTP/2" if tls else "HTTP/1.1") in text
        if tls:
            assert re.search(r"TLS ?1\.[23]", text)
        assert "/" in page.evaluate("document.querySelector('#scope').innerText")
        width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], f"the page is wider than a phone: {width}"
        assert page.errors() == []
    assert [m["status"] for m in access(server) if m["status"] not in ("200", "101")] == []
    assert not [line for line in server.lines if LOG_TROUBLE.search(line)]


def save_demo_screenshot(path: Path, server: Server, certs: Certs) -> None:
    """Write the README's screenshot of the demo page (``scripts/demo_screenshot.py``)."""
    with page_for(server, certs) as page:
        page.load(server.url + "/")
        page.evaluate(DEMO_READY)
        path.write_bytes(page.screenshot(900, 760))
