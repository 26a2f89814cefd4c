"""Proxy headers, sans-I/O: header lists in, the client / scheme / host they vouch for out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from squall.protocol.forwarded import Origin, TrustedProxies, parse_forwarded, parse_node, resolve

LOCAL = TrustedProxies("127.0.0.1, ::1, 10.0.0.0/8, fd00::/8")


def headers(*pairs: str) -> list[tuple[bytes, bytes]]:
    return [(pairs[i].lower().encode(), pairs[i + 1].encode("latin-1")) for i in range(0, len(pairs), 2)]


# --- the trusted list ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "host", "trusted"),
    [
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.2", False),
        ("10.0.0.0/8", "10.200.3.4", True),
        ("10.0.0.0/8", "11.0.0.1", False),
        ("2001:db8::/32", "2001:db8:1::5", True),
        ("2001:db8::/32", "2001:db9::5", False),
        ("::1", "::1", True),
        ("::1", "0:0:0:0:0:0:0:1", True),  # compared as addresses, not as text
        ("127.0.0.1", "::ffff:127.0.0.1", True),  # an IPv4 peer on a dual-stack socket
        ("*", "203.0.113.9", True),
        ("127.0.0.1", "unknown", False),
        ("127.0.0.1", "not an ip", False),
        ("127.0.0.1, 192.0.2.0/24", "192.0.2.77", True),
    ],
)
def test_trusts_addresses_and_networks(spec: str, host: str, trusted: bool) -> None:
    assert TrustedProxies(spec).trusts_peer(host) is trusted


def test_unix_socket_peers_are_trusted_only_with_unix_or_star() -> None:
    assert TrustedProxies("unix:").trusts_peer(None)
    assert TrustedProxies("*").trusts_peer(None)
    assert not TrustedProxies("127.0.0.1").trusts_peer(None)
    assert not TrustedProxies("unix:").trusts_peer("127.0.0.1")


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "proxy.example", "1.2.3", "unix", "::g"])
def test_a_bad_entry_is_named(bad: str) -> None:
    with pytest.raises(ValueError, match=repr(bad).replace("[", r"\[").replace(".", r"\.")):
        TrustedProxies(f"127.0.0.1, {bad}")


# --- nodes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "node"),
    [
        ("192.0.2.60", ("192.0.2.60", 0)),
        (" 192.0.2.60 ", ("192.0.2.60", 0)),
        ("192.0.2.60:8080", ("192.0.2.60", 8080)),
        ("2001:db8::1", ("2001:db8::1", 0)),
        ("2001:DB8:0::1", ("2001:db8::1", 0)),
        ("[2001:db8::1]", ("2001:db8::1", 0)),
        ("[2001:db8::1]:4711", ("2001:db8::1", 4711)),
        ("unknown", ("unknown", 0)),
        ("UNKNOWN", ("unknown", 0)),
        ("_hidden", ("_hidden", 0)),
        ("_SEVKISEK", ("_SEVKISEK", 0)),
        ("192.0.2.60:_port9", ("192.0.2.60", 0)),
        ("[2001:db8::1]:_p", ("2001:db8::1", 0)),
    ],
)
def test_parse_node(text: str, node: tuple[str, int]) -> None:
    assert parse_node(text) == node


@pytest.mark.parametrize(
    "text",
    [
        "",
        "example.com",
        "1.2.3.4:99999",
        "1.2.3.4:",
        "1.2.3.4:x",
        "[1.2.3.4]",
        "[2001:db8::1",
        "[2001:db8::1]x",
        "2001:db8::1:80:80:80:80:80",
        "_",
        "_bad char",
        "1.2.3.4, 5.6.7.8",
    ],
)
def test_malformed_nodes_are_none(text: str) -> None:
    assert parse_node(text) is None


# --- Forwarded (RFC 7239) ----------------------------------------------------------------------------


def test_parse_forwarded_elements_pairs_and_quotes() -> None:
    assert parse_forwarded(
        ['for=192.0.2.43, for="[2001:db8:cafe::17]";proto=https', "For=_x;BY=203.0.113.1"]
    ) == [
        {"for": "192.0.2.43"},
        {"for": "[2001:db8:cafe::17]", "proto": "https"},
        {"for": "_x", "by": "203.0.113.1"},
    ]


def test_parse_forwarded_quoted_commas_escapes_and_spaces() -> None:
    assert parse_forwarded(['for="a,b\\"c" ; proto = https']) == [None]  # spaces around '=' are not allowed
    assert parse_forwarded(['for="a,b\\"c" ; proto=https ,,']) == [{"for": 'a,b"c', "proto": "https"}]


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("for=1.2.3.4;for=5.6.7.8", [None]),  # a parameter twice in one element
        ('for="1.2.3.4', [None]),  # unterminated quote: the rest of the line
        ("garbage, for=1.2.3.4", [None, {"for": "1.2.3.4"}]),
        ("for=, for=1.2.3.4", [None, {"for": "1.2.3.4"}]),
        ('for="1.2.3.4"x, for=5.6.7.8', [None, {"for": "5.6.7.8"}]),
        ("=x, for=5.6.7.8", [None, {"for": "5.6.7.8"}]),
        ("", []),
    ],
)
def test_malformed_forwarded_elements_are_none_and_the_rest_still_parses(
    line: str, parsed: list[object]
) -> None:
    assert parse_forwarded([line]) == parsed


# --- resolve: X-Forwarded-For ------------------------------------------------------------------------


def test_no_proxy_header_resolves_to_none() -> None:
    assert resolve(headers("host", "example.com", "user-agent", "x"), LOCAL) is None


def test_x_forwarded_for_one_hop() -> None:
    assert resolve(headers("x-forwarded-for", "203.0.113.7"), LOCAL) == Origin(("203.0.113.7", 0))


def test_x_forwarded_for_takes_the_rightmost_untrusted_hop_never_the_spoofable_leftmost() -> None:
    # The client claimed 6.6.6.6; nginx appended the real 203.0.113.7; an inner proxy 10.0.0.2.
    found = resolve(headers("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2"), LOCAL)
    assert found == Origin(("203.0.113.7", 0))


def test_x_forwarded_for_lines_are_one_list() -> None:
    found = resolve(headers("x-forwarded-for", "6.6.6.6", "x-forwarded-for", "203.0.113.7, 10.0.0.2"), LOCAL)
    assert found == Origin(("203.0.113.7", 0))


def test_every_hop_trusted_gives_the_leftmost() -> None:
    assert resolve(headers("x-forwarded-for", "10.0.0.9, 127.0.0.1"), LOCAL) == Origin(("10.0.0.9", 0))


def test_star_trusts_every_hop_so_the_leftmost_is_the_client() -> None:
    found = resolve(headers("x-forwarded-for", "6.6.6.6, 203.0.113.7"), TrustedProxies("*"))
    assert found == Origin(("6.6.6.6", 0))


def test_x_forwarded_for_ports_and_ipv6() -> None:
    assert resolve(headers("x-forwarded-for", "[2001:db8::7]:5555"), LOCAL) == Origin(("2001:db8::7", 5555))
    assert resolve(headers("x-forwarded-for", "2001:db8::7"), LOCAL) == Origin(("2001:db8::7", 0))
    assert resolve(headers("x-forwarded-for", "198.51.100.4:61000"), LOCAL) == Origin(("198.51.100.4", 61000))


@pytest.mark.parametrize("value", ["", " ", "not-an-ip", "1.2.3.4, , 10.0.0.1", "1.2.3.4:99999"])
def test_a_malformed_x_forwarded_for_is_ignored(value: str) -> None:
    assert resolve(headers("x-forwarded-for", value), LOCAL) is None


def test_garbage_left_of_the_client_does_not_matter() -> None:
    assert resolve(headers("x-forwarded-for", "<script>, 203.0.113.7"), LOCAL) == Origin(("203.0.113.7", 0))


# --- resolve: X-Forwarded-Proto / -Host --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "scheme"),
    [("https", "https"), ("HTTP", "http"), (" wss ", "wss"), ("ws", "ws"), ("ftp", None), ("", None)],
)
def test_x_forwarded_proto(value: str, scheme: str | None) -> None:
    found = resolve(headers("x-forwarded-proto", value), LOCAL)
    assert (found.scheme if found else None) == scheme


def test_x_forwarded_proto_lines_up_with_the_chosen_hop() -> None:
    # A CDN (https) in front of an inner proxy (http): each appended what it received.
    both = headers("x-forwarded-for", "203.0.113.7, 10.0.0.5", "x-forwarded-proto", "https, http")
    assert resolve(both, LOCAL) == Origin(("203.0.113.7", 0), "https")
    only_inner_trusted = TrustedProxies("127.0.0.1")
    assert resolve(both, only_inner_trusted) == Origin(("10.0.0.5", 0), "http")


def test_x_forwarded_proto_not_one_per_hop_takes_the_nearest() -> None:
    found = resolve(headers("x-forwarded-for", "203.0.113.7", "x-forwarded-proto", "http, https"), LOCAL)
    assert found == Origin(("203.0.113.7", 0), "https")


def test_x_forwarded_host_only_when_asked() -> None:
    given_host = headers("x-forwarded-host", "example.com:8443")
    assert resolve(given_host, LOCAL) is None
    assert resolve(given_host, LOCAL, use_host=True) == Origin(host=b"example.com:8443")


@pytest.mark.parametrize("value", ["exa mple.com", "a/b", "user@host", "host:port", "", "x" * 300, "[zz]"])
def test_a_malformed_x_forwarded_host_is_ignored(value: str) -> None:
    assert resolve(headers("x-forwarded-host", value), LOCAL, use_host=True) is None


# --- resolve: Forwarded ------------------------------------------------------------------------------


def test_forwarded_for_proto_host() -> None:
    found = resolve(
        headers("forwarded", 'for="[2001:db8::1]:4711";proto=https;host=example.com'), LOCAL, use_host=True
    )
    assert found == Origin(("2001:db8::1", 4711), "https", b"example.com")


def test_forwarded_walks_from_the_right_and_takes_that_hop_s_proto() -> None:
    found = resolve(
        headers("forwarded", "for=6.6.6.6;proto=http, for=203.0.113.7;proto=https, for=10.0.0.2"), LOCAL
    )
    assert found == Origin(("203.0.113.7", 0), "https")


@pytest.mark.parametrize(("node", "client"), [("unknown", ("unknown", 0)), ("_gazonk", ("_gazonk", 0))])
def test_forwarded_obfuscated_and_unknown_nodes_are_the_client_as_written(
    node: str, client: tuple[str, int]
) -> None:
    assert resolve(headers("forwarded", f"for={node};proto=https"), LOCAL) == Origin(client, "https")


def test_forwarded_without_for_changes_only_the_scheme() -> None:
    assert resolve(headers("forwarded", "proto=https"), LOCAL) == Origin(None, "https")


def test_forwarded_host_needs_use_host() -> None:
    assert resolve(headers("forwarded", "host=example.com"), LOCAL) is None


@pytest.mark.parametrize(
    "value", ['for="1.2.3.4', "for=1.2.3.4;for=1.2.3.5", "for=example.com", "proto=gopher", "for=1.2.3.4;x"]
)
def test_a_malformed_forwarded_is_ignored(value: str) -> None:
    assert resolve(headers("forwarded", value), LOCAL) is None


def test_a_client_s_forwarded_cannot_hide_the_hop_its_proxy_appended() -> None:
    found = resolve(headers("forwarded", 'for="6.6.6.6', "forwarded", "for=203.0.113.7"), LOCAL)
    assert found == Origin(("203.0.113.7", 0))


# --- both families -----------------------------------------------------------------------------------


def test_x_forwarded_wins_over_forwarded_field_by_field() -> None:
    # nginx sets X-Forwarded-For and passes the client's own Forwarded through: that one is spoofed.
    spoofed = headers("forwarded", "for=6.6.6.6;proto=https", "x-forwarded-for", "203.0.113.7")
    assert resolve(spoofed, LOCAL) == Origin(("203.0.113.7", 0), "https")
    with_proto = headers("forwarded", "for=6.6.6.6;proto=https", "x-forwarded-proto", "http")
    assert resolve(with_proto, LOCAL) == Origin(("6.6.6.6", 0), "http")


@given(
    st.lists(st.sampled_from(["forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"])),
    st.data(),
)
def test_any_value_resolves_or_is_ignored_never_raises(names: list[str], data: st.DataObject) -> None:
    values = [data.draw(st.text(alphabet=st.characters(max_codepoint=255), max_size=40)) for _ in names]
    pairs = [(name.encode(), value.encode("latin-1")) for name, value in zip(names, values, strict=True)]
    found = resolve(pairs, LOCAL, use_host=True)
    assert found is None or isinstance(found, Origin)
    if found is not None and found.scheme is not None:
        assert found.scheme in ("http", "https", "ws", "wss")
