"""What a broker carries: events with ids, the notices a subscription adds, and their SSE form.

Every event is encoded to its SSE bytes once, when it is published (in memory) or read from
Redis (once per worker), and those bytes are shared by every subscriber; a batch of events is
one write (`EventFormat.chunk`).

Ids are Redis stream ids, `<milliseconds>-<sequence>`, for both backends: the SSE id a client
sends back as Last-Event-ID, ordered per topic by `(ms, seq)`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from http_policy.validation import InvalidParameter
from streaming.encoded import EncodedSSEFormat, error_event, json_event
from streaming.failure import Failure
from streaming.sse import data_field

Key = tuple[int, int]
"""An id as the pair it is ordered by."""

ZERO: Key = (0, 0)

_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")  # not \d: it takes any Unicode digit


class InvalidEventId(InvalidParameter):
    """A Last-Event-ID that no broker could have given out: a `400` naming `last_event_id`,
    like any other bad parameter."""

    def __init__(self, message: str) -> None:
        super().__init__("last_event_id", message)


def parse_id(raw: str) -> Key:
    """`"1700000000000-3"` → `(1700000000000, 3)`; InvalidEventId for anything else."""
    match = _ID.fullmatch(raw)
    if match is None:
        raise InvalidEventId(f"an event id is <milliseconds>-<sequence>, got {raw[:60]!r}")
    return int(match[1]), int(match[2])


def format_id(key: Key) -> str:
    return f"{key[0]}-{key[1]}"


def next_key(last: Key) -> Key:
    """The id Redis's `XADD *` would give after `last`: the clock, or `last` + 1 in sequence."""
    now = int(time.time() * 1000)
    return (now, 0) if now > last[0] else (last[0], last[1] + 1)


@dataclass(frozen=True, slots=True)
class Event:
    """One published event: its id, type, JSON data text, and whether it closes its topic."""

    id: str
    event: str
    data: str
    final: bool = False
    key: Key = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    """Parsed from `id` unless given (a broker that made the id has it already)."""
    wire: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.key is None:
            object.__setattr__(self, "key", parse_id(self.id))
        # Built here, once, for every subscriber. Data is JSON text, normally one line.
        text = f"id: {self.id}\nevent: {self.event}\n{data_field(self.data)}\n"
        object.__setattr__(self, "wire", text.encode())


@dataclass(frozen=True, slots=True)
class Notice:
    """A message from the broker itself (reset, overflow, error): an SSE event with no id, so
    the client's Last-Event-ID stays that of the last real event it got."""

    event: str
    wire: bytes = field(repr=False)
    key: None = None
    final: bool = False

    @classmethod
    def of(cls, event: str, data: dict) -> Notice:
        """The notice `event` with `data` as its JSON."""
        return cls(event, json_event(event, data))


RESET = Notice.of("reset", {"reason": "history_trimmed"})
"""Starts a stream whose Last-Event-ID is older than the retained history."""


def overflow_notice(queue_size: int) -> Notice:
    return Notice.of("overflow", {
        "reason": "subscriber_queue_full",
        "message": f"this client fell {queue_size} events behind and was disconnected; "
                   "reconnect with its Last-Event-ID to resume"})


UNAVAILABLE = Failure("broker_unavailable",
                      "the message broker is unreachable; reconnect with Last-Event-ID to resume")
BROKER_ERROR = Notice("error", error_event(UNAVAILABLE))


class EventFormat(EncodedSSEFormat):
    """The pipeline `Format` for broker events: each batch is the join of its pre-encoded bytes;
    a failure is the core's `event: error`, as `BROKER_ERROR` is."""

    def chunk(self, batch: list) -> bytes:
        return self.first_sets_retry(b"".join([item.wire for item in batch]))
