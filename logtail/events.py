"""How a log tail goes on the wire: SSE events encoded once, written to every viewer as is.

- A line is a default-type event (`EventSource.onmessage` gets it): `id` is the offset just
  after the line, `data` its text, UTF-8 with invalid bytes replaced by U+FFFD. SSE frames only
  on CR and LF, and a line holds no LF; a CR inside a line goes through the encoder's
  multi-line data handling (two `data:` lines), which a client reads back as LF. Every other
  character (tabs, ANSI colour codes, NUL, U+2028) is sent as it is.
- `event: reset` (`{"reason": "truncated" | "rotated" | "offset_past_end"}`, `id: 0`): what
  follows starts again at offset 0 of the file now under that name. The id moves a client's
  Last-Event-ID back to 0 too, so a reconnect right after a reset resumes in the new file.
- `event: error` (`{"type", "message"}`, `streaming/encoded.py`) ends the stream: `overflow`
  (the viewer fell too far behind and may resume from its Last-Event-ID), `log_unavailable`
  (the watcher could not read the file), `not_found` (the log went before the stream began).

The stream's format is the core's `EncodedSSEFormat`: events are encoded here once, by the
watcher, and every viewer writes the same bytes.
"""

from __future__ import annotations

from streaming.encoded import error_event, json_event
from streaming.failure import Failure
from streaming.sse import data_field

from .lines import Line

OVERFLOW_ERROR = error_event(Failure(
    "overflow", "the viewer fell too far behind the log; reconnect with Last-Event-ID to resume "
                "where it stopped"))
UNREADABLE_ERROR = error_event(Failure("log_unavailable", "the log could not be read"))
NOT_FOUND_ERROR = error_event(Failure("not_found", "no such log"))


def line_event(line: Line) -> bytes:
    """One line as its SSE event."""
    end, body = line
    return f"id: {end}\n{data_field(body.decode('utf-8', 'replace'))}\n".encode()


def reset_event(reason: str) -> bytes:
    """`event: reset` with `id: 0`: what follows starts again at offset 0."""
    return json_event("reset", {"reason": reason}, id="0")
