"""Proxy headers: the client, scheme and host a request really came from, when a trusted proxy says.

How it works
------------
Each proxy on the way appends the address of the peer it received the request from: to
``X-Forwarded-For`` (``client, proxy1, proxy2``) or as one more RFC 7239 ``Forwarded`` element
(``for=client, for=proxy1, ...``). The last entry was written by the proxy squall talks to, the
first one possibly by the client itself, so only the right end can be believed. Walking from the
right, an entry whose address is a trusted proxy is skipped (that proxy wrote the entry on its
left); the first one that is not trusted is the client. Every entry trusted: the leftmost is the
client. With ``*`` (trust everyone) the leftmost entry is the client.

The scheme and the host belong to the same hop: ``X-Forwarded-Proto``/``-Host`` values line up
with the ``X-Forwarded-For`` entries when there are as many of them (each proxy appended one);
otherwise one value applies as it is, and of several the last (the nearest proxy's) is taken. A
``Forwarded`` element carries its own ``proto=`` and ``host=``.

When both families are present, ``X-Forwarded-*`` decides, field by field: almost every proxy
(nginx, Traefik, Caddy, HAProxy, cloud load balancers) sets ``X-Forwarded-For`` and passes a
client's own ``Forwarded`` header through untouched, so believing ``Forwarded`` first would let
any client behind them choose its address. ``Forwarded`` is used for a field only when no
``X-Forwarded-*`` header gives it.

Malformed values are ignored (the request keeps the peer's address, the connection's scheme, its
Host): a proxy header can never fail a request. Pure functions, no I/O: the server applies the
result to the scope (``squall.server.state.apply_forwarded``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Node = tuple[str, int]  # (host, port): an IP in canonical form, "unknown" or "_obfuscated"; port 0 if none

#: The request header names this module reads (lower case, as the protocol layers give them).
FIELDS = frozenset((b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"forwarded"))
SCHEMES = frozenset(("http", "https", "ws", "wss"))
UNIX = "unix:"  # in the trusted list: peers on a Unix domain socket

_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+")
_PORT = re.compile(r"[0-9]{1,5}")
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(?::[0-9]{1,5})?")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_MISSING: Node = ("", 0)  # a Forwarded element without for=: an unknown hop that changes no client


class TrustedProxies:
    """The ``--forwarded-allow-ips`` list: IP addresses, networks (IPv4 and IPv6), ``*``, ``unix:``."""

    def __init__(self, spec: str | Iterable[str]) -> None:
        """Raises ValueError naming the first entry that is none of those."""
        entries = spec.split(",") if isinstance(spec, str) else list(spec)
        self.everyone = False
        self.unix = False
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            if entry == "*":
                self.everyone = True
            elif entry.lower() == UNIX:
                self.unix = True
            else:
                try:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise ValueError(
                        f"{entry!r} is not an IP address, a network (CIDR), '*' or 'unix:'"
                    ) from None
        self.networks = tuple(networks)

    def trusts_peer(self, host: str | None) -> bool:
        """Whether the directly connected peer is a trusted proxy; ``None`` is a Unix socket peer."""
        if self.everyone:
            return True
        if host is None:
            return self.unix
        return self.trusts_address(host)

    def trusts_address(self, host: str) -> bool:
        """Whether ``host`` (an IP address as text) is a trusted proxy; anything else is not."""
        if self.everyone:
            return True
        try:
            address: IPAddress = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d
        return any(address in network for network in self.networks)


@dataclass(frozen=True)
class Origin:
    """What the proxy headers say about a request; ``None`` fields leave the scope as it is."""

    client: Node | None = None
    scheme: str | None = None  # http, https, ws or wss, lower case
    host: bytes | None = None


def resolve(
    headers: Iterable[tuple[bytes, bytes]], proxies: TrustedProxies, *, use_host: bool = False
) -> Origin | None:
    """The client, scheme and (with ``use_host``) host the proxy headers in ``headers`` give for a
    request from a trusted peer; None when they give nothing usable."""
    fields: dict[bytes, list[str]] = {}
    for name, value in headers:
        if name in FIELDS:
            fields.setdefault(name, []).append(value.decode("latin-1"))
    if not fields:
        return None
    forwarded = _forwarded_hop(fields.get(b"forwarded"), proxies)
    client: Node | None = None
    hop, hops = None, 0
    xff = fields.get(b"x-forwarded-for")
    if xff is not None:
        nodes = [parse_node(entry) for entry in _items(xff)]
        hops = len(nodes)
        hop = _client_index(nodes, proxies)
        if hop is not None:
            client = nodes[hop]
    elif forwarded is not None and forwarded.get("for") is not None:
        client = parse_node(forwarded["for"])
    scheme = _pick(fields.get(b"x-forwarded-proto"), hop, hops, _scheme)
    if b"x-forwarded-proto" not in fields and forwarded is not None:
        scheme = _scheme(forwarded.get("proto", ""))
    host = None
    if use_host:
        host = _pick(fields.get(b"x-forwarded-host"), hop, hops, _host)
        if b"x-forwarded-host" not in fields and forwarded is not None:
            host = _host(forwarded.get("host", ""))
    if client == _MISSING:
        client = None
    if client is None and scheme is None and host is None:
        return None
    return Origin(client, scheme, host.encode("ascii") if host is not None else None)


def parse_node(text: str) -> Node | None:
    """An ``X-Forwarded-For`` entry or a ``Forwarded`` ``for=`` value as ``(host, port)``; None
    if malformed. Forms: ``1.2.3.4``, ``1.2.3.4:80``, ``2001:db8::1``, ``[2001:db8::1]:80``,
    ``unknown``, ``_hidden`` (obfuscated, RFC 7239 §6), each with an optional (obfuscated) port."""
    text = text.strip()
    port_text: str | None = None  # after a ':' that ends the host
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        name, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                return None
            port_text = rest[1:]
        host = _ip(name, version=6)
    else:
        host = _ip(text)
        if host is None and text.count(":") == 1:
            text, port_text = text.split(":")
            host = _ip(text, version=4)
        if host is None and (text.lower() == "unknown" or _OBFUSCATED.fullmatch(text)):
            host = text.lower() if text.lower() == "unknown" else text
    if host is None:
        return None
    if port_text is None or _OBFUSCATED.fullmatch(port_text):
        return host, 0
    if not _PORT.fullmatch(port_text) or int(port_text) > 65535:
        return None
    return host, int(port_text)


def parse_forwarded(values: Iterable[str]) -> list[dict[str, str] | None]:
    """RFC 7239 ``Forwarded`` field lines as their elements, left to right: each a dict of its
    parameters (names lower-cased, quoted values unquoted), or None for a malformed element."""
    elements: list[dict[str, str] | None] = []
    for line in values:
        elements.extend(_elements(line))
    return elements


# --- internals -------------------------------------------------------------------------------------


def _items(values: list[str]) -> list[str]:
    """The comma-separated items of a list-valued field given as several lines."""
    return [item.strip() for value in values for item in value.split(",")]


def _ip(text: str, version: int | None = None) -> str | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if version is not None and address.version != version:
        return None
    return str(address)


def _client_index(nodes: list[Node | None], proxies: TrustedProxies) -> int | None:
    """Index of the client among the hops (see the module docstring); None if unusable."""
    if not nodes:
        return None
    index = 0
    if not proxies.everyone:
        for position in range(len(nodes) - 1, -1, -1):
            node = nodes[position]
            if node is None:
                return None  # written by a trusted proxy, yet malformed: believe none of it
            if not proxies.trusts_address(node[0]):
                index = position
                break
    return index if nodes[index] is not None else None


def _pick(
    values: list[str] | None, hop: int | None, hops: int, check: Callable[[str], str | None]
) -> str | None:
    """The value of a list-valued X-Forwarded field for the chosen hop, checked; None if unusable."""
    if values is None:
        return None
    items = _items(values)
    # One value per hop: the chosen hop's; else one value, or of several the nearest proxy's.
    return check(items[hop] if hop is not None and len(items) == hops else items[-1])


def _scheme(text: str) -> str | None:
    lowered = text.strip().lower()
    return lowered if lowered in SCHEMES else None


def _host(text: str) -> str | None:
    text = text.strip()
    return text if len(text) <= 261 and _HOST.fullmatch(text) else None


def _forwarded_hop(lines: list[str] | None, proxies: TrustedProxies) -> dict[str, str] | None:
    """The ``Forwarded`` element of the client's hop (see the module docstring); None if unusable."""
    if lines is None:
        return None
    elements = parse_forwarded(lines)
    nodes: list[Node | None] = []
    for element in elements:
        if element is None:
            nodes.append(None)
        elif "for" not in element:
            nodes.append(_MISSING)
        else:
            nodes.append(parse_node(element["for"]))
    index = _client_index(nodes, proxies)
    return elements[index] if index is not None else None


def _elements(line: str) -> list[dict[str, str] | None]:
    """One ``Forwarded`` line: ``pair *(";" pair)`` elements separated by commas (empty ones
    skipped); a pair is ``token=token`` or ``token="quoted"``. A malformed element is None, and
    an unterminated quote makes the rest of the line one malformed element."""
    elements: list[dict[str, str] | None] = []
    position, end = 0, len(line)
    while position < end:
        element, position = _element(line, position)
        if element != {}:
            elements.append(element)
    return elements


def _element(line: str, position: int) -> tuple[dict[str, str] | None, int]:
    """Parse one element starting at ``position``; return it and the position after its comma."""
    pairs: dict[str, str] = {}
    end = len(line)
    while True:
        position = _skip_space(line, position)
        if position >= end:
            return pairs, end
        if line[position] == ",":
            return pairs, position + 1
        if line[position] == ";":
            position += 1
            continue
        match = _TOKEN.match(line, position)
        if match is None or match.end() >= end or line[match.end()] != "=":
            return None, _next_comma(line, position)
        name = match.group().lower()
        value, position = _value(line, match.end() + 1)
        if value is None or name in pairs:
            return None, _next_comma(line, position)
        pairs[name] = value
        position = _skip_space(line, position)
        if position < end and line[position] not in ",;":
            return None, _next_comma(line, position)


def _value(line: str, position: int) -> tuple[str | None, int]:
    """A token or a quoted string (with backslash escapes) at ``position``."""
    end = len(line)
    if position < end and line[position] == '"':
        chars: list[str] = []
        position += 1
        while position < end:
            char = line[position]
            if char == "\\" and position + 1 < end:
                chars.append(line[position + 1])
                position += 2
            elif char == '"':
                return "".join(chars), position + 1
            else:
                chars.append(char)
                position += 1
        return None, end  # unterminated
    start = position
    # Lenient: a bare value runs to the next delimiter, so the common unquoted
    # ``for=[2001:db8::1]`` (brackets and colons are not token characters) still parses.
    while position < end and line[position] not in ',;" \t':
        position += 1
    return (line[start:position] or None), position


def _skip_space(line: str, position: int) -> int:
    while position < len(line) and line[position] in " \t":
        position += 1
    return position


def _next_comma(line: str, position: int) -> int:
    """Where the element after a malformed one starts: past the next comma outside quotes."""
    quoted = False
    while position < len(line):
        char = line[position]
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            return position + 1
        position += 1
    return position
