"""A tiny HTTP/1.1 client over a raw socket, for bytes no well-behaved client would send."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

HOST_HEADER = b"Host: e2e.test\r\n"


def request(
    method: str = "GET",
    target: str = "/",
    *headers: str,
    body: bytes = b"",
    version: str = "1.1",
    host: bool = True,
) -> bytes:
    """Build request bytes; ``headers`` are ``"Name: value"`` strings."""
    head = f"{method} {target} HTTP/{version}\r\n".encode()
    if host:
        head += HOST_HEADER
    head += b"".join(h.encode("latin-1") + b"\r\n" for h in headers)
    return head + b"\r\n" + body


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    trailers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name.lower()]


class RawConnection:
    """A blocking socket with a read buffer and a bounded timeout on every read."""

    def __init__(self, sock: socket.socket, timeout: float = 5.0) -> None:
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buffer = bytearray()
        self.eof = False

    @classmethod
    def tcp(cls, host: str, port: int, timeout: float = 5.0, rcvbuf: int | None = None) -> RawConnection:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.connect((host, port))
        return cls(sock, timeout)

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def fill(self) -> bool:
        """Read more bytes into the buffer; False at EOF (or reset)."""
        if self.eof:
            return False
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        return True

    def read_until(self, delimiter: bytes) -> bytes:
        while delimiter not in self.buffer:
            if not self.fill():
                raise EOFError(f"connection closed before {delimiter!r}; got {bytes(self.buffer)!r}")
        index = self.buffer.index(delimiter) + len(delimiter)
        data = bytes(self.buffer[:index])
        del self.buffer[:index]
        return data

    def read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self.fill():
                raise EOFError(f"connection closed after {len(self.buffer)} of {size} bytes")
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def read_to_eof(self) -> bytes:
        """Everything until the server closes (raises TimeoutError if it does not)."""
        while self.fill():
            pass
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def read_head(self) -> RawResponse:
        head = self.read_until(b"\r\n\r\n").decode("latin-1")
        status_line, *lines = head[:-4].split("\r\n")
        version, code, *reason = status_line.split(" ", 2)
        assert version == "HTTP/1.1", status_line
        headers = [(n.strip().lower(), v.strip()) for n, _, v in (line.partition(":") for line in lines)]
        return RawResponse(int(code), reason[0] if reason else "", headers)

    def read_response(self, head_request: bool = False) -> RawResponse:
        """One complete response (interim 1xx responses are returned as they come)."""
        response = self.read_head()
        if head_request or response.status in (204, 304) or response.status < 200:
            return response
        if (response.header("transfer-encoding") or "").lower() == "chunked":
            self.read_chunked_body(response)
        elif response.header("content-length") is not None:
            response.body = self.read_exact(int(response.header("content-length") or 0))
        else:
            response.body = self.read_to_eof()
        return response

    def read_chunked_body(self, response: RawResponse) -> None:
        body = bytearray()
        while True:
            size = int(self.read_until(b"\r\n").split(b";")[0], 16)
            if not size:
                break
            body += self.read_exact(size)
            assert self.read_exact(2) == b"\r\n"
        while (line := self.read_until(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            response.trailers.append((name.strip().lower(), value.strip()))
        response.body = bytes(body)

    def wait_closed(self, timeout: float) -> float:
        """Wait for the server to close (EOF or reset) without sending anything more.

        Returns the seconds it took. Raises AssertionError if data arrives, TimeoutError if the
        connection stays open for ``timeout`` seconds.
        """
        started = time.monotonic()
        self.sock.settimeout(timeout)
        assert not self.buffer, f"unexpected bytes {bytes(self.buffer)!r}"
        assert not self.fill(), f"unexpected bytes {bytes(self.buffer)!r}"
        return time.monotonic() - started


def exchange(host: str, port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection and return everything until the server closes."""
    with RawConnection.tcp(host, port, timeout) as conn:
        conn.send(data)
        return conn.read_to_eof()
