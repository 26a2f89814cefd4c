"""The asyncio glue: sockets ↔ protocol objects (``squall.protocol``) ↔ ASGI cycles (``squall.asgi``).

One module per connection kind (``http1``, ``http2``, ``websocket``, ``h2websocket``); ``accept``
decides which kind serves a new socket and builds the protocol-switch table; ``state`` holds what
they all share and imports none of them; ``tls`` builds the SSL context. Imports point down only:
``accept`` → ``h2websocket`` → ``http2``/``websocket`` → ``http1`` → ``state``.
"""
