"""HTTP/1.1 chunked transfer coding, decoded from whatever bytes have arrived.

Every LLM API streams its events as one HTTP chunk each, so a relay that reads one chunk per
call (http.client's `read1`) pays a read call, a hand-over and a write per event. Fed
everything one `recv` returned, `ChunkedDecoder.feed` returns all the payload in it at once:
the cost per chunk is a few byte searches.

Follows RFC 9112 section 7.1: chunk extensions (`;name=value`) and trailer fields are read and
dropped, as a proxy that does not forward trailers may do. A malformed size line raises
`ChunkedError` rather than guessing where the next chunk starts.
"""

from __future__ import annotations

__all__ = ["ChunkedDecoder", "ChunkedError"]

MAX_LINE = 8192
"""Longest size line (size and extensions) or trailer line accepted; longer is bad framing."""


class ChunkedError(ValueError):
    """The bytes are not valid chunked transfer coding."""


class ChunkedDecoder:
    """Decodes one chunked body fed in pieces of any size; `done` once its last chunk and
    trailers went by. Bytes after the end (a next response) are left unread: `feed` returns
    them in `rest` as `(payload, rest)`. Not for sharing between greenlets."""

    __slots__ = ("_buffer", "_left", "_state", "done")

    def __init__(self) -> None:
        self._buffer = b""  # an incomplete size line, trailer line, or CRLF after data
        self._left = 0  # payload bytes still to come in the current chunk
        self._state = "size"  # size -> data -> crlf -> size ... -> trailer
        self.done = False

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        """The payload in `data` (joined), and what followed the end of the body."""
        if self._buffer:
            data, self._buffer = self._buffer + data, b""
        payload: list[bytes] = []
        at, end = 0, len(data)
        while at < end and not self.done:
            state = self._state
            if state == "data":
                take = min(self._left, end - at)
                payload.append(data[at:at + take])
                at += take
                self._left -= take
                if not self._left:
                    self._state = "crlf"
                continue
            line_end = data.find(b"\n", at)
            if line_end < 0:
                self._keep(data[at:])
                break
            line = data[at:line_end]
            at = line_end + 1
            if state == "size":
                size = _chunk_size(line)
                stop = at + size
                if not size:
                    self._state = "trailer"
                elif data[stop:stop + 2] == b"\r\n":  # the usual case: the whole chunk is here
                    payload.append(data[at:stop])
                    at = stop + 2
                else:
                    self._left, self._state = size, "data"
            elif state == "crlf":
                if line not in (b"", b"\r"):
                    raise ChunkedError("chunk data is longer than its size")
                self._state = "size"
            elif line in (b"", b"\r"):  # the blank line after the trailers: the end
                self.done = True
        joined = payload[0] if len(payload) == 1 else b"".join(payload)
        return joined, data[at:] if self.done else b""

    def _keep(self, partial: bytes) -> None:
        if len(partial) > MAX_LINE:
            raise ChunkedError("chunk size or trailer line too long")
        self._buffer = partial


def _chunk_size(line: bytes) -> int:
    size = line[:-1] if line.endswith(b"\r") else line
    if b";" in size:  # extensions, rare: dropped
        size = size.split(b";", 1)[0].rstrip(b" \t")
    # isalnum() first: int() would also take "+1", " 1" and "1_0".
    if not size.isalnum():
        raise ChunkedError(f"bad chunk size line {line[:40]!r}")
    try:
        return int(size, 16)
    except ValueError:
        raise ChunkedError(f"bad chunk size line {line[:40]!r}") from None
