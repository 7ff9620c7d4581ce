"""Just enough HTTP/1.1 for the fake servers: read one request, frame a chunked body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO


@dataclass(frozen=True)
class Request:
    """One request as the client sent it."""

    method: str
    target: str
    headers: list[tuple[str, str]]  # as sent: order, case and repeats kept
    body: bytes


def read_request(reader: BinaryIO) -> Request | None:
    """One request from the connection (its body by Content-Length); None once it has ended."""
    request_line = reader.readline()
    if not request_line.strip():
        return None
    method, target, _ = request_line.decode("latin-1").split(" ", 2)
    headers = []
    while (line := reader.readline().decode("latin-1").rstrip("\r\n")):
        name, _, value = line.partition(":")
        headers.append((name, value.strip()))
    length = next((int(value) for name, value in headers if name.lower() == "content-length"), 0)
    return Request(method, target, headers, reader.read(length))


def chunk(data: bytes) -> bytes:
    """`data` as one chunk of a chunked body."""
    return b"%X\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
"""The end of a chunked body (with no trailers)."""


def chunked(pieces: list[bytes]) -> bytes:
    """A whole chunked body: each piece a chunk, then the end."""
    return b"".join(chunk(piece) for piece in pieces) + LAST_CHUNK
