"""Squall: a fast, safe ASGI server (HTTP/1.1, HTTP/2, WebSockets) with its own process manager."""

__version__ = "0.1.0"
