"""The pipeline `Format` for SSE events encoded before they reach a stream.

Fan-out encodes each event once and hands the same bytes to every subscriber's stream; all a
stream then does is join what is pending into one write. A failure after the start is sent as
`event: error` with `{"type", "message"}`, as the generation streams send it.

`retry` goes in the stream's first event, never in a block of its own: browsers dispatch
nothing for a block without data, but httpx-sse (the MCP SDK's SSE client) yields an empty
event for any block holding a field, a phantom event. Nothing is written before that first
event; the pipeline's empty first write sends the headers at once.
"""

from __future__ import annotations

from typing import Any

from .encoding import compact_json
from .failure import Failure
from .sse import HEARTBEAT, ServerSentEvent


def json_event(event: str, data: Any, id: str | None = None) -> bytes:
    """An SSE event of type `event` whose data is `data` as compact JSON: the shape of every
    notice a stream adds to what it carries (errors, resets, overflows)."""
    return ServerSentEvent(data=compact_json(data), event=event, id=id).encode()


def error_event(failure: Failure) -> bytes:
    """`failure` as an `event: error` SSE event."""
    return json_event("error", {"type": failure.type, "message": failure.message})


class EncodedSSEFormat:
    """`text/event-stream` whose items are encoded events (bytes), written as they are.

    One instance per stream: it remembers whether `retry` went out yet.
    """

    media_type = "text/event-stream"
    heartbeat: bytes | None = HEARTBEAT

    def __init__(self, retry_ms: int) -> None:
        if not isinstance(retry_ms, int) or isinstance(retry_ms, bool) or retry_ms < 0:
            raise ValueError(f"retry_ms must be a non-negative int, got {retry_ms!r}")
        self._retry_ms = retry_ms
        self._retry: bytes | None = f"retry: {retry_ms}\n".encode()

    def preamble(self) -> bytes:
        return b""

    def chunk(self, batch: list) -> bytes:
        return self.first_sets_retry(b"".join(batch))

    def failure(self, failure: Failure) -> bytes | None:
        return self.first_sets_retry(error_event(failure))

    def restart(self, reason: str) -> bytes:
        """`event: restart` carrying `retry` and a data field (`shutdown.py`): a named event,
        never a `message`, and one every parser dispatches, with no phantom event before it."""
        self._retry = None
        return ServerSentEvent(data=compact_json({"reason": reason}), event="restart",
                               retry=self._retry_ms).encode()

    def first_sets_retry(self, events: bytes) -> bytes:
        """`events`, led by the `retry` field if nothing was written before them.

        Every record is a whole event with data, so a field line put in front of the first
        one belongs to that event's block.
        """
        if self._retry is None:
            return events
        retry, self._retry = self._retry, None
        return retry + events
