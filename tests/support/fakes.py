"""Fakes shared by unit tests; handed out by fixtures in conftest.py."""

from __future__ import annotations


class RecordingMetrics:
    """A `streaming.metrics.StreamMetrics` that keeps what streams report, for assertions."""

    def __init__(self) -> None:
        self.starts: list[str] = []  # the transport of every stream started
        self.active = 0
        self.events = 0
        self.ends: list[tuple[str, bool]] = []  # (transport, disconnected) of every end

    @property
    def disconnects(self) -> int:
        return sum(disconnected for _, disconnected in self.ends)

    def started(self, transport: str) -> None:
        self.starts.append(transport)
        self.active += 1

    def sent(self, transport: str, events: int) -> None:
        self.events += events

    def ended(self, transport: str, seconds: float, disconnected: bool) -> None:
        self.active -= 1
        self.ends.append((transport, disconnected))
