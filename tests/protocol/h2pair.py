"""A squall ``H2Server`` and an h2 client talking in memory: bytes moved both ways until quiet."""

from __future__ import annotations

import h2.connection

from squall.protocol.http2 import H2Server


def exchange(server: H2Server, client: h2.connection.H2Connection) -> tuple[list[object], list[object]]:
    """Move bytes both ways until quiet; return (server events, client events)."""
    server_events: list[object] = []
    client_events: list[object] = []
    for _ in range(20):
        to_server = client.data_to_send()
        if to_server:
            server_events += server.receive_data(to_server)
        to_client = server.data_to_send()
        if to_client:
            client_events += client.receive_data(to_client)
        if not to_server and not to_client:
            break
    return server_events, client_events
