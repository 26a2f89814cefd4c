"""Squall: a fast, safe ASGI server for HTTP/1.1."""

__version__ = "0.1.0"
