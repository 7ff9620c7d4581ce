"""What every `text/event-stream` format of the pipeline shares, whatever its events."""

from __future__ import annotations

from .sse import HEARTBEAT, ServerSentEvent


class SSEStreamFormat:
    """The media type, the `: ping` heartbeat, and a preamble setting the client's reconnection
    delay (`retry:`), written before anything can block. Formats add `chunk` and `failure`."""

    media_type = "text/event-stream"
    heartbeat: bytes | None = HEARTBEAT

    def __init__(self, retry_ms: int) -> None:
        self._preamble = ServerSentEvent(retry=retry_ms).encode()

    def preamble(self) -> bytes:
        return self._preamble
