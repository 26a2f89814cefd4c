"""What an operator sees of a running squall: the access log (squall's line, gunicorn's atoms or
JSON, one line per request however it ended), the JSON log formatter, the request id, and the
Prometheus metrics (plain counters in each worker, merged by the supervisor, written as text).

Beside ``asgi/`` in the layers: ``server/`` and ``asgi/`` call it; it imports neither, nor
``process/``.
"""
