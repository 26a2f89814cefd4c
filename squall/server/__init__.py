"""The asyncio glue: sockets ↔ protocol objects (``squall.protocol``) ↔ ASGI cycles (``squall.asgi``).

One module per connection kind (``http1``, ``http2``, ``http3``, ``websocket``, ``h2websocket``);
``accept`` decides which kind serves a new socket and builds the protocol-switch table; ``streams``
is the channel of one HTTP/2 or HTTP/3 request stream (what both share); ``state`` holds what they
all share; ``tls`` builds the SSL context. Imports point down only: ``accept`` → ``h2websocket`` →
``http2``/``websocket`` → ``http1`` → ``state`` → ``tls``; ``http2`` and ``http3`` (loaded with
``--http3`` only) → ``streams``, which imports no sibling.
"""
