"""WebSocket framing, sans-I/O: bytes in, events out; a ``websockets`` client protocol is the peer."""

from __future__ import annotations

import itertools
import struct
import time
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import CLIENT, OPEN, Protocol
from websockets.speedups import apply_mask

from squall.protocol.websocket import (
    CloseReceived,
    HandshakeError,
    PongReceived,
    WebSocketServer,
    accept_key,
    check_handshake,
    negotiate_extensions,
)

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
GOOD = [
    (b"host", b"example.com"),
    (b"upgrade", b"websocket"),
    (b"connection", b"keep-alive, Upgrade"),
    (b"sec-websocket-key", KEY),
    (b"sec-websocket-version", b"13"),
]


def client(extensions: list[PerMessageDeflate] | None = None) -> Protocol:
    peer = Protocol(CLIENT, state=OPEN, max_size=None)
    peer.extensions = list(extensions or [])
    return peer


def wire(peer: Protocol) -> bytes:
    return b"".join(peer.data_to_send())


def frames_from(server: WebSocketServer, peer: Protocol) -> list[Frame]:
    peer.receive_data(server.data_to_send())
    return [e for e in peer.events_received() if isinstance(e, Frame)]


def close_code(server: WebSocketServer) -> int:
    peer = client()
    peer.receive_data(server.data_to_send())
    closes = [f for f in peer.events_received() if isinstance(f, Frame) and f.opcode is Opcode.CLOSE]
    assert closes, "no close frame sent"
    return Close.parse(closes[0].data).code


# ---------------------------------------------------------------- handshake


def test_accept_key_rfc_example() -> None:
    assert accept_key(KEY) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_valid_handshake() -> None:
    offer = check_handshake("GET", "1.1", [*GOOD, (b"sec-websocket-protocol", b"chat, superchat")])
    assert offer.subprotocols == ["chat", "superchat"]
    assert offer.extensions == []
    headers = dict(offer.response_headers("chat"))
    assert headers[b"sec-websocket-accept"] == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert headers[b"sec-websocket-protocol"] == b"chat"
    assert headers[b"upgrade"] == b"websocket"


@pytest.mark.parametrize(
    ("method", "version", "drop", "add", "version_header"),
    [
        ("POST", "1.1", None, None, False),
        ("GET", "1.0", None, None, False),
        ("GET", "1.1", b"sec-websocket-key", None, False),
        ("GET", "1.1", b"sec-websocket-key", (b"sec-websocket-key", b"c2hvcnQ="), False),
        ("GET", "1.1", b"sec-websocket-key", (b"sec-websocket-key", b"not base64!!"), False),
        ("GET", "1.1", None, (b"sec-websocket-key", KEY), False),
        ("GET", "1.1", b"connection", (b"connection", b"keep-alive"), False),
        ("GET", "1.1", b"upgrade", (b"upgrade", b"h2c"), False),
        ("GET", "1.1", b"sec-websocket-version", None, True),
        ("GET", "1.1", b"sec-websocket-version", (b"sec-websocket-version", b"8"), True),
        ("GET", "1.1", None, (b"sec-websocket-version", b"13"), True),
    ],
)
def test_bad_handshakes(
    method: str, version: str, drop: bytes | None, add: tuple[bytes, bytes] | None, version_header: bool
) -> None:
    headers = [h for h in GOOD if h[0] != drop]
    if add is not None:
        headers.append(add)
    with pytest.raises(HandshakeError) as info:
        check_handshake(method, version, headers)
    assert info.value.status == 400
    assert ((b"sec-websocket-version", b"13") in info.value.headers) == version_header


def test_extended_connect_needs_no_key() -> None:
    offer = check_handshake("CONNECT", "2", [(b"sec-websocket-version", b"13")], extended_connect=True)
    assert offer.key is None
    assert offer.response_headers(None) == []


def test_deflate_negotiation() -> None:
    extensions, header = negotiate_extensions([b"x-unknown, permessage-deflate; client_max_window_bits"])
    assert len(extensions) == 1
    assert header is not None and header.startswith(b"permessage-deflate")
    assert negotiate_extensions([b"x-unknown"]) == ([], None)
    offer = check_handshake(
        "GET", "1.1", [*GOOD, (b"sec-websocket-extensions", b"permessage-deflate")], deflate=False
    )
    assert offer.extensions == [] and offer.extensions_header is None
    with pytest.raises(HandshakeError):
        negotiate_extensions([b"permessage-deflate; =bad"])


# ---------------------------------------------------------------- data frames


def test_text_and_binary_fast_path() -> None:
    server = WebSocketServer()
    peer = client()
    peer.send_text("héllo".encode())
    peer.send_binary(b"\x00\x01")
    assert server.receive_data(wire(peer)) == ["héllo", b"\x00\x01"]
    assert server.data_to_send() == b""


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
def test_lengths_both_ways(size: int) -> None:
    server = WebSocketServer()
    peer = client()
    peer.send_binary(b"x" * size)
    assert server.receive_data(wire(peer)) == [b"x" * size]
    server.send_bytes(b"y" * size)
    server.send_text("z" * size)
    frames = frames_from(server, peer)
    assert [(f.opcode, bytes(f.data)) for f in frames] == [
        (Opcode.BINARY, b"y" * size),
        (Opcode.TEXT, b"z" * size),
    ]


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_any_split_gives_the_same_events(cuts: list[int]) -> None:
    peer = client()
    peer.send_text(b"one")
    peer.send_binary(b"b" * 200)
    peer.send_text(b"fra", fin=False)
    peer.send_ping(b"p")
    peer.send_continuation(b"g", fin=True)
    peer.send_close(1000, "done")
    data = wire(peer)
    server = WebSocketServer()
    events = []
    start = 0
    for cut in [*sorted({min(c, len(data)) for c in cuts}), len(data)]:
        events += server.receive_data(data[start:cut])
        start = cut
    assert events == ["one", b"b" * 200, "frag", CloseReceived(1000, "done")]
    out = frames_from(server, client())
    assert [f.opcode for f in out] == [Opcode.PONG, Opcode.CLOSE]
    assert server.eof_sent


def test_fragmented_binary_with_control_frames_between() -> None:
    server = WebSocketServer()
    peer = client()
    peer.send_binary(b"a", fin=False)
    peer.send_ping(b"1")
    peer.send_continuation(b"b", fin=False)
    peer.send_pong(b"2")
    peer.send_continuation(b"c", fin=True)
    assert server.receive_data(wire(peer)) == [PongReceived(b"2"), b"abc"]
    assert [f.opcode for f in frames_from(server, client())] == [Opcode.PONG]


def test_invalid_utf8_in_a_single_frame_is_1007() -> None:
    server = WebSocketServer()
    peer = client()
    peer.send_text(b"ok \xff")
    assert server.receive_data(wire(peer)) == [CloseReceived(1007, "invalid UTF-8: invalid start byte")]
    assert server.eof_sent
    assert close_code(server) == 1007


def test_invalid_utf8_in_a_fragment_fails_before_the_message_ends() -> None:
    server = WebSocketServer()
    peer = client()
    peer.send_text(b"ok", fin=False)
    peer.send_continuation(b"\xc3\x28", fin=False)  # never completed
    events = server.receive_data(wire(peer))
    assert [type(e) for e in events] == [CloseReceived] and events[0].code == 1007  # type: ignore[union-attr]


def test_utf8_split_across_fragments_is_fine() -> None:
    server = WebSocketServer()
    peer = client()
    encoded = "é".encode()
    peer.send_text(encoded[:1], fin=False)
    peer.send_continuation(encoded[1:], fin=True)
    assert server.receive_data(wire(peer)) == ["é"]


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"\x82\x02ab", 1002),  # unmasked
        (b"\x83\x80\x00\x00\x00\x00", 1002),  # reserved opcode
        (b"\xc2\x80\x00\x00\x00\x00", 1002),  # RSV1 without an extension
        (b"\x80\x80\x00\x00\x00\x00", 1002),  # continuation with nothing to continue
        (b"\x09\x80\x00\x00\x00\x00", 1002),  # fragmented ping
        (b"\x89\xfe\x00\x7e" + b"\x00" * 4 + b"x" * 126, 1002),  # control frame > 125 bytes
        (b"\x88\x81\x00\x00\x00\x00x", 1002),  # close payload of one byte
    ],
)
def test_protocol_errors(raw: bytes, code: int) -> None:
    server = WebSocketServer()
    events = server.receive_data(raw)
    assert len(events) == 1 and isinstance(events[0], CloseReceived) and events[0].code == code
    assert close_code(server) == code
    assert server.eof_sent


def test_new_message_inside_a_fragmented_one_is_1002() -> None:
    server = WebSocketServer()
    peer = client()
    peer.send_text(b"a", fin=False)
    data = wire(peer)
    peer2 = client()
    peer2.send_text(b"b")
    events = server.receive_data(data + wire(peer2))
    assert events == [CloseReceived(1002, "expected a continuation frame")]


def test_oversize_frame_fails_on_its_header() -> None:
    server = WebSocketServer(max_size=1000)
    header = b"\x82\xff" + struct.pack("!Q", 10**9) + b"\x00" * 4
    events = server.receive_data(header)  # no payload needed: the length alone is too big
    assert [type(e) for e in events] == [CloseReceived] and events[0].code == 1009  # type: ignore[union-attr]


def test_oversize_fragmented_message_is_1009() -> None:
    server = WebSocketServer(max_size=1000)
    peer = client()
    peer.send_binary(b"x" * 400, fin=False)
    peer.send_continuation(b"x" * 400, fin=False)
    peer.send_continuation(b"x" * 400, fin=False)
    events = server.receive_data(wire(peer))
    assert isinstance(events[-1], CloseReceived) and events[-1].code == 1009


# ---------------------------------------------------------------- permessage-deflate


def deflate_pair(max_size: int = 1 << 20) -> tuple[WebSocketServer, Protocol]:
    extensions, _ = negotiate_extensions([b"permessage-deflate; client_max_window_bits"])
    server = WebSocketServer(extensions, max_size=max_size)
    peer = client([PerMessageDeflate(False, False, 12, 12)])
    return server, peer


def test_deflate_round_trip() -> None:
    server, peer = deflate_pair()
    peer.send_text(("squall " * 1000).encode())
    peer.send_binary(b"\x00" * 5000)
    data = wire(peer)
    assert len(data) < 1000  # compressed on the wire
    assert server.receive_data(data) == ["squall " * 1000, b"\x00" * 5000]
    server.send_text("back " * 1000)
    server.send_bytes(b"")
    out = server.data_to_send()
    assert out[0] & 0x40  # RSV1: compressed
    peer.receive_data(out)
    assert [bytes(f.data) for f in peer.events_received() if isinstance(f, Frame)] == [
        ("back " * 1000).encode(),
        b"",
    ]


def test_deflate_bomb_stops_at_max_size() -> None:
    server, _ = deflate_pair(max_size=65536)
    compressor = zlib.compressobj(wbits=-12)
    bomb = compressor.compress(b"\0" * 20_000_000) + compressor.flush(zlib.Z_SYNC_FLUSH)
    payload = bomb[:-4]  # framed by hand: RSV1 set, payload already compressed, zero mask
    frame = b"\xc2\xff" + struct.pack("!Q", len(payload)) + b"\x00" * 4 + payload
    events = server.receive_data(frame)
    assert [type(e) for e in events] == [CloseReceived] and events[0].code == 1009  # type: ignore[union-attr]


# ---------------------------------------------------------------- closing


def test_server_initiated_close() -> None:
    server = WebSocketServer()
    server.send_close(4000, "bye")
    assert not server.open
    assert close_code(server) == 4000
    assert not server.eof_sent
    peer = client()
    peer.send_close(4000, "bye")
    assert server.receive_data(wire(peer)) == [CloseReceived(4000, "bye")]
    assert server.eof_sent


def test_empty_close_frame_is_1005() -> None:
    server = WebSocketServer()
    assert server.receive_data(b"\x88\x80\x00\x00\x00\x00") == [CloseReceived(1005, "")]


def test_eof_without_close_is_1006() -> None:
    server = WebSocketServer()
    server.receive_eof()
    events = server.receive_data(b"")
    assert events == [] or events == [CloseReceived(1006, "")]


def test_data_after_close_is_ignored() -> None:
    server = WebSocketServer()
    peer = client()
    peer.send_close(1000)
    events = server.receive_data(wire(peer) + b"\x82\x81\x00\x00\x00\x00x")
    assert events == [CloseReceived(1000, "")]


def test_send_after_close_raises() -> None:
    server = WebSocketServer()
    server.send_close()
    with pytest.raises(Exception, match="closing"):
        server.send_text("late")


@pytest.mark.parametrize(("code", "reason"), [(1005, ""), (999, ""), (5000, ""), (1000, "x" * 124)])
def test_unsendable_close(code: int, reason: str) -> None:
    with pytest.raises(ValueError):
        WebSocketServer().send_close(code, reason)


def test_ping_frames_out() -> None:
    server = WebSocketServer()
    server.send_ping(b"abcd")
    assert [(f.opcode, bytes(f.data)) for f in frames_from(server, client())] == [(Opcode.PING, b"abcd")]


# ---------------------------------------------------------------- strictness (Autobahn) and linear cost


def masked(first: int, payload: bytes, mask: bytes = b"\x01\x02\x03\x04") -> bytes:
    """One masked frame with first byte ``first`` (FIN, RSV, opcode), framed by hand."""
    n = len(payload)
    if n < 126:
        head = bytes((first, 0x80 | n))
    elif n < 65536:
        head = bytes((first, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + mask + apply_mask(payload, mask)


def test_close_inside_a_fragmented_message_is_answered_with_its_code() -> None:
    # Autobahn 7.1.5: control frames may come between fragments (RFC 6455 §5.4), close too
    server = WebSocketServer()
    data = masked(0x01, b"frag") + masked(0x88, b"\x03\xe8") + masked(0x80, b"ment")
    assert server.receive_data(data) == [CloseReceived(1000, "")]
    assert close_code(server) == 1000
    assert server.eof_sent


BREAKS_PROTOCOL = {
    "3.2 RSV=2": masked(0xA1, b"Hello"),
    "3.3 RSV=3": masked(0xB1, b"Hello"),
    "4.1.3 reserved opcode 5": masked(0x85, b""),
    "4.1.4 reserved opcode 6 with payload": masked(0x86, b"payload"),
    "4.2.3 reserved control opcode 0xB": masked(0x8B, b""),
    "4.2.4 reserved control opcode 0xC with payload": masked(0x8C, b"payload"),
    "5.15 continuation with nothing to continue": masked(0x00, b"fragment3"),
}


@pytest.mark.parametrize("bad", BREAKS_PROTOCOL.values(), ids=BREAKS_PROTOCOL.keys())
def test_a_frame_breaking_the_protocol_waits_behind_the_messages_before_it(bad: bytes) -> None:
    server = WebSocketServer(hold_errors=True)
    data = masked(0x01, b"fragment1") + masked(0x80, b"fragment2") + bad + masked(0x89, b"ping")
    assert server.receive_data(data) == ["fragment1fragment2"]
    assert server.held
    assert server.data_to_send() == b""  # neither the close nor the pong yet
    assert server.receive_data(masked(0x89, b"more")) == []  # input stays behind the held frame
    server.send_text("fragment1fragment2")  # the app's echo
    events = server.release()
    assert [type(e) for e in events] == [CloseReceived] and events[0].code == 1002  # type: ignore[union-attr]
    peer = client()
    peer.receive_data(server.data_to_send())
    frames = [f for f in peer.events_received() if isinstance(f, Frame)]
    assert [f.opcode for f in frames] == [Opcode.TEXT, Opcode.CLOSE]  # echo first, no pong
    assert server.eof_sent


def test_without_hold_errors_the_connection_fails_at_once() -> None:
    server = WebSocketServer()
    events = server.receive_data(masked(0x81, b"hi") + BREAKS_PROTOCOL["3.2 RSV=2"])
    assert events[0] == "hi" and isinstance(events[1], CloseReceived) and events[1].code == 1002
    assert not server.held


def test_valid_control_frames_after_a_message_are_not_held() -> None:
    server = WebSocketServer(hold_errors=True)
    data = masked(0x81, b"a") + masked(0x89, b"p") + masked(0x01, b"b") + masked(0x80, b"c")
    assert server.receive_data(data) == ["a", "bc"]
    assert not server.held
    assert [f.opcode for f in frames_from(server, client())] == [Opcode.PONG]


def test_a_bad_frame_alone_is_not_held() -> None:
    server = WebSocketServer(hold_errors=True)
    events = server.receive_data(BREAKS_PROTOCOL["4.1.3 reserved opcode 5"])
    assert [type(e) for e in events] == [CloseReceived] and not server.held


# Autobahn 6.4.x: PART2 makes the message invalid UTF-8 (a code point above U+10FFFF)
PART1 = "κόσμε".encode()
PART2 = b"\xf4\x90\x80\x80"
PART3 = b"edited"


def chops(frame: bytes, *payload_cuts: int) -> list[bytes]:
    """``frame`` (a 2 + 4 byte header) cut after its header and at the payload offsets given."""
    cuts = [0, 6, *(6 + cut for cut in payload_cuts), len(frame)]
    return [frame[a:b] for a, b in itertools.pairwise(cuts)]


@pytest.mark.parametrize("first", [0x81, 0x01], ids=["one frame", "first fragment"])
def test_invalid_utf8_fails_as_soon_as_it_arrives(first: int) -> None:
    # Autobahn 6.4.3 / 6.4.4: one frame sent in 3 chops, the connection failed on the 2nd
    server = WebSocketServer()
    head, start, middle, end = chops(masked(first, PART1 + PART2 + PART3), len(PART1), len(PART1 + PART2))
    assert server.receive_data(head + start) == []
    events = server.receive_data(middle)
    assert [type(e) for e in events] == [CloseReceived] and events[0].code == 1007  # type: ignore[union-attr]
    assert close_code(server) == 1007
    assert server.receive_data(end) == []


def test_invalid_utf8_in_an_arriving_continuation_fails_at_once() -> None:
    server = WebSocketServer()
    assert server.receive_data(masked(0x01, b"ok \xf4")) == []  # a code point left open
    payload = b"\x8f\xbf\xbf fine, then \xff and more"
    bad = payload.index(b"\xff")
    head, start, middle, _ = chops(masked(0x80, payload), bad, bad + 2)
    assert server.receive_data(head + start) == []  # U+10FFFF completes: still valid
    events = server.receive_data(middle)
    assert [type(e) for e in events] == [CloseReceived] and events[0].code == 1007  # type: ignore[union-attr]


def test_utf8_split_anywhere_inside_an_arriving_frame_is_fine() -> None:
    text = "é€😀 κόσμε " * 40
    for first, tail in ((0x81, b""), (0x01, masked(0x80, b"!"))):
        data = masked(first, text.encode()) + tail
        for step in (1, 2, 3, 5, 7, 64):
            server = WebSocketServer()
            events = [e for i in range(0, len(data), step) for e in server.receive_data(data[i : i + step])]
            assert events == [text + ("!" if tail else "")], (first, step)


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12), hold=st.booleans())
def test_any_split_of_big_and_multibyte_frames_gives_the_same_events(cuts: list[int], hold: bool) -> None:
    peer = client()
    peer.send_text("é€😀 ".encode() * 100)
    peer.send_binary(bytes(range(256)) * 3)
    peer.send_text("κόσμε".encode(), fin=False)
    peer.send_ping(b"p")
    peer.send_continuation("😀".encode() * 60, fin=True)
    peer.send_close(1000, "done")
    data = wire(peer)
    server = WebSocketServer(hold_errors=hold)
    events = []
    start = 0
    for cut in [*sorted({min(c, len(data)) for c in cuts}), len(data)]:
        events += server.receive_data(data[start:cut])
        start = cut
    text = "é€😀 " * 100
    assert events == [text, bytes(range(256)) * 3, "κόσμε" + "😀" * 60, CloseReceived(1000, "done")]
    assert [f.opcode for f in frames_from(server, client())] == [Opcode.PONG, Opcode.CLOSE]


def test_server_close_while_a_big_frame_arrives() -> None:
    server = WebSocketServer()
    data = masked(0x82, b"x" * 100_000)
    assert server.receive_data(data[:50_000]) == []
    server.send_close(1000, "")
    peer = client()
    peer.send_close(1000, "")
    assert server.receive_data(data[50_000:] + wire(peer)) == [b"x" * 100_000, CloseReceived(1000, "")]


def cpu_seconds(pieces: list[bytes]) -> float:
    """CPU time (best of 3) for a fresh server to receive ``pieces`` as successive reads."""
    best = float("inf")
    for _ in range(3):
        server = WebSocketServer(max_size=32 << 20)
        started = time.process_time()
        events = [e for piece in pieces for e in server.receive_data(piece)]
        best = min(best, time.process_time() - started)
        assert len(events) == 1 and not isinstance(events[0], CloseReceived)
    return best


@pytest.mark.parametrize("first", [0x81, 0x82, 0x02], ids=["text", "binary", "fragment"])
def test_a_big_frame_in_many_reads_costs_about_what_it_costs_whole(first: int) -> None:
    # 16 MiB in 64 KiB reads: each read used to copy the whole partly received frame again
    size, read = 16 << 20, 64 << 10
    data = masked(first, b"a" * size)
    if first == 0x02:
        data += masked(0x80, b"")
    whole = cpu_seconds([data])
    in_reads = cpu_seconds([data[i : i + read] for i in range(0, len(data), read)])
    assert in_reads < 4 * whole + 0.01, (in_reads, whole)
