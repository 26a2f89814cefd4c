"""The HTTP connection scope, checked against the ASGI www spec 2.5."""

from __future__ import annotations

import json
from typing import Any

import httpx

from .harness import Server
from .rawhttp import RawConnection, request


def raw_scope(server: Server, data: bytes) -> tuple[dict[str, Any], tuple[str, int]]:
    """Send raw request bytes to the scope endpoint; return the scope and our socket address."""
    with RawConnection.tcp(server.host, server.port) as conn:
        conn.send(data)
        response = conn.read_response()
        local = conn.sock.getsockname()
    assert response.status == 200, response
    return json.loads(response.body), local


def test_scope_basics(server: Server) -> None:
    scope = httpx.get(server.url + "/scope").json()
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.5"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["root_path"] == ""
    assert scope["types"]["raw_path"] == "bytes"
    assert scope["types"]["query_string"] == "bytes"
    assert scope["header_types"] == ["bytes,bytes"]


def test_http_1_0_version(server: Server) -> None:
    scope, _ = raw_scope(server, request("GET", "/scope", version="1.0", host=False))
    assert scope["http_version"] == "1.0"


def test_methods_are_passed_through(server: Server) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        assert httpx.request(method, server.url + "/scope").json()["method"] == method


def test_path_is_percent_decoded_utf8_and_raw_path_is_raw(server: Server) -> None:
    scope, _ = raw_scope(server, request("GET", "/caf%C3%A9/a%20b?x=%C3%A9&y=1+2"))
    assert scope["path"] == "/café/a b"
    assert scope["raw_path"] == "/caf%C3%A9/a%20b"
    assert scope["query_string"] == "x=%C3%A9&y=1+2"


def test_encoded_slash_stays_distinguishable_in_raw_path(server: Server) -> None:
    scope, _ = raw_scope(server, request("GET", "/a%2Fb"))
    assert scope["path"] == "/a/b"
    assert scope["raw_path"] == "/a%2Fb"


def test_query_string_is_raw_and_empty_when_absent(server: Server) -> None:
    assert httpx.get(server.url + "/scope").json()["query_string"] == ""
    scope, _ = raw_scope(server, request("GET", "/scope?a=1&a=2&b"))
    assert scope["query_string"] == "a=1&a=2&b"


def test_headers_lowercased_ordered_with_duplicates(server: Server) -> None:
    data = request("GET", "/scope", "X-Dup: one", "X-Mixed-CASE: Value", "x-dup: two", "Accept: */*")
    scope, _ = raw_scope(server, data)
    assert scope["headers"] == [
        ["host", "e2e.test"],
        ["x-dup", "one"],
        ["x-mixed-case", "Value"],
        ["x-dup", "two"],
        ["accept", "*/*"],
    ]


def test_header_values_keep_non_ascii_bytes(server: Server) -> None:
    scope, _ = raw_scope(server, request("GET", "/scope")[:-2] + b"X-Latin: caf\xe9\r\n\r\n")
    assert ["x-latin", "caf\xe9"] in scope["headers"]


def test_client_and_server_addresses(server: Server) -> None:
    scope, local = raw_scope(server, request("GET", "/scope"))
    assert scope["client"] == [local[0], local[1]]
    assert scope["server"] == [server.host, server.port]
    assert scope["client_port_type"] == "int"
    assert scope["server_port_type"] == "int"


def test_lifespan_state_reaches_requests(server: Server) -> None:
    scope = httpx.get(server.url + "/scope").json()
    assert scope["state"] == {"greeting": "hello from lifespan"}


def test_state_is_a_copy_per_request(server: Server) -> None:
    with server.client() as client:
        assert client.get("/state-mutate").json() == ["mutated_by_request"]
        assert client.get("/scope").json()["state"] == {"greeting": "hello from lifespan"}
    assert httpx.get(server.url + "/scope").json()["state"] == {"greeting": "hello from lifespan"}
