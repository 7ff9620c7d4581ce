"""Where lines begin and end in a log file, by byte offset. No I/O of its own, no gevent.

A line's offset is the byte just after its LF: that is the SSE event id, and a client resuming
from it continues with the next line. Everything here reads through a `read(offset, size)`
callable, so the caller decides how a read yields to other greenlets (and tests pass a slice).

Choices:

1. A line is what ends with LF. A CR just before the LF is dropped (CRLF files), a CR anywhere
   else is kept (the SSE encoder turns it into a second data line).
2. A line longer than `MAX_LINE` bytes is delivered in pieces of at most that size, each with
   the offset just after it as its id, so memory per line stays bounded and resuming works in
   the middle of such a line. A piece is cut before a UTF-8 sequence, never inside one. A
   partial last line waits for its LF unless it already is longer than `MAX_LINE`.
3. The tail scan looks back at most `lines * MAX_LINE` bytes; the first line of a tail of
   enormous lines may therefore start inside one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

MAX_LINE = 32 * 1024
"""Longest line delivered whole, in bytes; longer ones arrive in pieces."""

READ_CHUNK = 64 * 1024
"""Bytes read at once: bounds how long one read and its encoding hold the event loop."""

Read = Callable[[int, int], bytes]
"""`read(offset, size)`: up to `size` bytes of the file from `offset` (fewer at its end)."""

Line = tuple[int, bytes]
"""(offset just after the line, the line's bytes without its line break)."""


def _cut(data: bytes, start: int, at: int) -> int:
    # Back up over at most three UTF-8 continuation bytes (0b10xxxxxx), so the next piece
    # starts with a character's first byte; invalid UTF-8 just gets cut where it is.
    for cut in range(at, max(at - 3, start + 1) - 1, -1):
        if data[cut] & 0xC0 != 0x80:
            return cut
    return at


def split_lines(data: bytes, offset: int, *, final: bool = False) -> tuple[list[Line], int]:
    """The lines `data` (read at file `offset`) completes, and how many of its bytes they use.

    With `final`, the end of `data` is known to end a line (a finished file, or a boundary
    already handed out), so a last piece without LF is a line too.
    """
    lines: list[Line] = []
    start, size = 0, len(data)
    while start < size:
        newline = data.find(b"\n", start, start + MAX_LINE + 1)
        if newline >= 0:
            end = newline + 1
            body = data[start:newline]
            if body.endswith(b"\r"):
                body = body[:-1]
        elif size - start > MAX_LINE:
            end = _cut(data, start, start + MAX_LINE)
            body = data[start:end]
        elif final:
            end, body = size, data[start:]
        else:
            break
        lines.append((offset + end, body))
        start = end
    return lines, start


def read_lines(read: Read, start: int, stop: int, *, final: bool,
               chunk: int = READ_CHUNK) -> Iterator[list[Line]]:
    """The lines between offsets `start` and `stop`, one list per chunk read.

    `final`: `stop` is a line boundary, so the bytes just before it end a line even without
    LF. Stops early if the file turns out shorter (truncated meanwhile).
    """
    offset = start
    while offset < stop:
        data = read(offset, min(chunk, stop - offset))
        reached = offset + len(data) >= stop
        lines, used = split_lines(data, offset, final=final and reached)
        if lines:
            yield lines
        offset += used
        if reached or used == 0:
            return


def tail_start(read: Read, end: int, lines: int, *, chunk: int = READ_CHUNK) -> int:
    """Where the last `lines` lines before `end` (a line boundary) begin, read backwards."""
    if lines <= 0 or end <= 0:
        return end
    floor = max(0, end - lines * MAX_LINE)
    # The byte before `end` is the LF of the last line: it starts no line.
    position, wanted = end - 1, lines
    while position > floor:
        size = min(chunk, position - floor)
        base = position - size
        block = read(base, size)
        at = len(block)
        while (at := block.rfind(b"\n", 0, at)) >= 0:
            wanted -= 1
            if wanted == 0:
                return base + at + 1
        position = base
    return floor


def last_boundary(read: Read, size: int) -> int:
    """The end of the last complete line of a file of `size` bytes, where following starts.

    A partial line longer than a chunk counts as ended where the file ends now.
    """
    if size <= 0:
        return 0
    base = max(0, size - READ_CHUNK)
    block = read(base, size - base)
    newline = block.rfind(b"\n")
    if newline >= 0:
        return base + newline + 1
    return 0 if base == 0 else size
