"""The pipeline `Format` for SSE events encoded before they reach a stream.

Fan-out encodes each event once and hands the same bytes to every subscriber's stream; all a
stream then does is join what is pending into one write. A failure after the start is sent as
`event: error` with `{"type", "message"}`, as the generation streams send it.
"""

from __future__ import annotations

from .encoding import compact_json
from .failure import Failure
from .sse import HEARTBEAT, ServerSentEvent


def error_event(failure: Failure) -> bytes:
    """`failure` as an `event: error` SSE event."""
    return ServerSentEvent(data=compact_json({"type": failure.type, "message": failure.message}),
                           event="error").encode()


class EncodedSSEFormat:
    """`text/event-stream` whose items are encoded events (bytes), written as they are."""

    media_type = "text/event-stream"
    heartbeat: bytes | None = HEARTBEAT

    def __init__(self, retry_ms: int) -> None:
        self._preamble = ServerSentEvent(retry=retry_ms).encode()

    def preamble(self) -> bytes:
        return self._preamble

    def chunk(self, batch: list) -> bytes:
        return b"".join(batch)

    def failure(self, failure: Failure) -> bytes | None:
        return error_event(failure)
