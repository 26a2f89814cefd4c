"""ASGI side: protocol events ↔ ASGI messages. Knows no wire format."""
