"""HTTP/2 wire constants (RFC 9113 §6) for tests that build raw frames, written from the RFC
rather than imported from squall, so that a wrong constant in squall cannot hide itself."""

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    range(10)
)
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
