"""The demo app served by ``squall`` with no arguments: a small page that shows how the browser
reached squall (protocol, TLS version), the request's ASGI scope, a websocket echo box and a live
event stream; plus ``/stream`` (a line every 100 ms), ``/events`` (server-sent events), ``/ws``
(a websocket echo) and an icon, so a visit leaves no error in the browser's console."""

from __future__ import annotations

import asyncio
import html
import time
from typing import Any

from squall.asgi.types import Receive, Scope, Send

_ICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" '
    b'fill="#1d4ed8"/><path d="M6 20c4-8 8 4 12-4s6-4 8-2" stroke="#fff" stroke-width="3" fill="none" '
    b'stroke-linecap="round"/></svg>'
)
_TLS_VERSIONS = {0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2", 0x0304: "TLS 1.3"}

_STYLE = """
:root{color-scheme:light dark;--fg:#1f2937;--muted:#6b7280;--bg:#f8fafc;--card:#fff;--line:#e5e7eb;
  --accent:#1d4ed8}
@media (prefers-color-scheme:dark){
  :root{--fg:#e5e7eb;--muted:#9ca3af;--bg:#0f172a;--card:#111827;--line:#1f2937}}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:52rem;margin:0 auto;padding:1rem}
h1{font-size:1.5rem;margin:.5rem 0}
h2{font-size:1.05rem;margin:0 0 .5rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:.6rem;padding:.9rem 1rem;
  margin:.8rem 0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(15rem,1fr));gap:0 .8rem}
.badge{display:inline-block;background:var(--accent);color:#fff;border-radius:1rem;padding:.1rem .7rem;
  font-weight:600}
table{border-collapse:collapse;width:100%}
td,th{text-align:left;vertical-align:top;padding:.25rem .4rem;border-top:1px solid var(--line)}
th{color:var(--muted);font-weight:500;white-space:nowrap;width:1%}
td,code,pre{font-family:ui-monospace,monospace;font-size:.85rem;overflow-wrap:anywhere;word-break:break-word}
pre{white-space:pre-wrap;margin:.4rem 0 0}
form{display:flex;gap:.5rem}
input{flex:1;min-width:0;padding:.4rem;border:1px solid var(--line);border-radius:.4rem;background:var(--bg);
  color:var(--fg)}
button{padding:.4rem .9rem;border:0;border-radius:.4rem;background:var(--accent);color:#fff}
.log{max-height:9rem;overflow:auto;margin-top:.5rem;color:var(--muted)}
.muted{color:var(--muted)}
"""

_SCRIPT = """
const wsUrl = location.origin.replace(/^http/, 'ws') + '/ws';
const log = (id, text) => {
  const box = document.getElementById(id);
  const line = document.createElement('div');
  line.textContent = text;
  box.prepend(line);
};
let echoed, evented;
const echo = new Promise((resolve) => { echoed = resolve; });
const events = new Promise((resolve) => { evented = resolve; });
const ws = new WebSocket(wsUrl);
ws.onopen = () => {
  document.getElementById('ws-state').textContent = 'open';
  ws.send('hello from the browser');
};
ws.onmessage = (event) => { log('ws-log', '\u2190 ' + event.data); echoed(event.data); };
ws.onclose = () => { document.getElementById('ws-state').textContent = 'closed'; };
document.getElementById('ws-form').onsubmit = (event) => {
  event.preventDefault();
  const input = document.getElementById('ws-input');
  if (input.value && ws.readyState === WebSocket.OPEN) {
    ws.send(input.value);
    log('ws-log', '\u2192 ' + input.value);
  }
  input.value = '';
};
const source = new EventSource('/events');
source.onmessage = (event) => {
  document.getElementById('ev-last').textContent = event.data;
  document.getElementById('ev-count').textContent = event.lastEventId;
  evented(true);
};
window.squallDemo = {ready: Promise.all([echo, events]).then(([echo, events]) => ({echo, events}))};
"""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>squall demo</title><link rel="icon" href="/favicon.svg" type="image/svg+xml">
<style>{style}</style></head>
<body><main>
<h1>Hello from squall</h1>
<p class="muted">You reached this ASGI app over <span class="badge">{protocol}</span> {security}.
Serve your own with <code>squall module:app</code>.</p>
<div class="grid">
<section class="card"><h2>WebSocket echo <span class="muted" id="ws-state">connecting</span></h2>
<form id="ws-form"><input id="ws-input" placeholder="say something" aria-label="message">
<button>Send</button></form><div class="log" id="ws-log"></div></section>
<section class="card"><h2>Live events</h2>
<p>Server time: <code id="ev-last">waiting</code><br><span class="muted">event <span id="ev-count">-</span>
from <code>/events</code>; a streamed response at <a href="/stream">/stream</a></span></p></section>
</div>
<section class="card"><h2>Your request's scope</h2><table id="scope">{scope}</table></section>
</main><script>{script}</script></body></html>
"""


def _protocol(scope: Scope) -> str:
    return f"HTTP/{scope['http_version']}"


def _security(scope: Scope) -> str:
    tls = scope.get("extensions", {}).get("tls")
    if not tls:
        return "without TLS"
    version = _TLS_VERSIONS.get(tls.get("tls_version"), "TLS")
    return f"with <span class='badge'>{version}</span>"


def _cell(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return f"<code>{html.escape(repr(value) if not isinstance(value, str) else value)}</code>"


def _scope_rows(scope: Scope) -> str:
    rows = []
    for key, value in scope.items():
        if key in ("state", "headers", "extensions", "asgi"):
            continue
        rows.append(f"<tr><th>{html.escape(key)}</th><td>{_cell(value)}</td></tr>")
    headers = "<br>".join(
        f"{html.escape(n.decode('latin-1'))}: {html.escape(v.decode('latin-1'))}" for n, v in scope["headers"]
    )
    rows.append(f"<tr><th>headers</th><td>{headers}</td></tr>")
    for name, value in scope.get("extensions", {}).items():
        rows.append(f"<tr><th>extensions.{html.escape(name)}</th><td>{_extension(value)}</td></tr>")
    return "".join(rows)


def _extension(value: Any) -> str:
    if not isinstance(value, dict) or not value:
        return "<code>{}</code>"
    parts = []
    for key, item in value.items():
        if isinstance(item, str) and "-----BEGIN" in item:
            parts.append(
                f"<details><summary>{html.escape(key)}</summary><pre>{html.escape(item)}</pre></details>"
            )
        else:
            parts.append(f"{html.escape(key)}: {_cell(item)}")
    return "<br>".join(parts)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI entry point of the demo."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "websocket":
        await _echo(receive, send)
        return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/stream":
        await _stream(send)
    elif path == "/events":
        await _events(send)
    elif path in ("/favicon.svg", "/favicon.ico"):
        await _respond(send, 200, b"image/svg+xml", _ICON, cache=True)
    elif path == "/":
        page = _PAGE.format(
            style=_STYLE,
            script=_SCRIPT,
            protocol=_protocol(scope),
            security=_security(scope),
            scope=_scope_rows(scope),
        )
        await _respond(send, 200, b"text/html; charset=utf-8", page.encode())
    else:
        await _respond(send, 404, b"text/plain; charset=utf-8", b"Not Found: try / or /stream\n")


async def _respond(send: Send, status: int, content_type: bytes, body: bytes, cache: bool = False) -> None:
    headers = [(b"content-type", content_type)]
    if cache:
        headers.append((b"cache-control", b"max-age=86400"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _stream(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for n in range(10):
        await send({"type": "http.response.body", "body": f"line {n}\n".encode(), "more_body": True})
        await asyncio.sleep(0.1)
    await send({"type": "http.response.body", "body": b""})


async def _events(send: Send) -> None:
    """Server-sent events: the server's time once a second, until the client leaves."""
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    n = 0
    try:
        while True:
            n += 1
            now = time.strftime("%H:%M:%S")
            await send(
                {
                    "type": "http.response.body",
                    "body": f"id: {n}\ndata: {now}\n\n".encode(),
                    "more_body": True,
                }
            )
            await asyncio.sleep(1.0)
    except OSError:  # the client left (squall's ClientDisconnected is an OSError)
        return


async def _echo(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")})
        else:
            return
