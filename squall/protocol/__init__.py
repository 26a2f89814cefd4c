"""Sans-I/O wire protocols: bytes in, :mod:`squall.events` out. No asyncio, no ASGI."""
