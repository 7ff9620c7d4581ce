"""The broker interface both backends implement (`memory.py`, `redis_streams.py`).

A topic is an append-only log of events with a retained history of about `history` events.
Publishing appends; subscribing replays what is retained after a last id, then follows live.
Finite topics (tasks) end with a final event: `publish_open` refuses to append after it. Leases
are named flags with a time to live, so a dead process's work can be told from a slow one's.
"""

from __future__ import annotations

import functools
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from streaming.mailbox import Mailbox

from .events import Event, Key
from .fanout import Fanout
from .presence import Attendance, Presence
from .subscription import Subscription

Method = TypeVar("Method", bound=Callable[..., Any])

AT_END = -1
"""The `position` of a topic's last event (`publish_open`)."""


@dataclass(frozen=True, slots=True)
class Append:
    """A `publish_open` to make as part of `Broker.apply`."""

    topic: str
    event: str
    data: str
    final: bool = False
    unless_leased: str | None = None
    retain_seconds: float | None = None
    position: int | None = None


@dataclass(frozen=True, slots=True)
class Lease:
    """A `lease` to take as part of `Broker.apply`."""

    name: str
    seconds: float


def timed_publish(count: Callable[[Any], int]) -> Callable[[Method], Method]:
    """Decorates a backend's publish method: tells `Broker.on_publish`, if set, how many
    events `count(result)` says it appended and how long it took."""
    def decorate(method: Method) -> Method:
        @functools.wraps(method)
        def publish(self: Broker, *args: Any, **kwargs: Any) -> Any:
            report = self.on_publish
            if report is None:
                return method(self, *args, **kwargs)
            began = time.perf_counter()
            result = method(self, *args, **kwargs)
            report(count(result), time.perf_counter() - began)
            return result
        return publish  # type: ignore[return-value]
    return decorate


ONE, EACH, IF_APPENDED = (lambda _: 1), len, (lambda result: int(result is not None))
"""What `timed_publish` counts: publish, publish_many, publish_open."""


def appended(results: list[str | None]) -> int:
    """What `timed_publish` counts of an `apply`: the appends made."""
    return sum(result is not None for result in results)


class Broker(ABC):
    """Publish to and subscribe to topics. Every method may be called from any greenlet.

    Methods that reach the backend raise `BrokerUnavailable` when it cannot be reached.
    """

    kind: str
    """"memory" or "redis"."""
    shared: bool
    """Whether other processes (workers, instances, jobs) see the same topics."""
    presence: Presence
    """Who subscribes to each topic (`presence.py`): this process's, or every process's."""
    fanout: Fanout
    """This process's subscribers' mailboxes, by topic, and its delivery counts."""
    on_publish: Callable[[int, float], None] | None = None
    """Told of each publish call: events appended, seconds taken (`metrics.py`)."""

    def __init__(self, history: int, queue_size: int) -> None:
        if history < 1 or queue_size < 1:
            raise ValueError(f"history and queue_size must be >= 1, got {history}, {queue_size}")
        self.history = history
        self.queue_size = queue_size

    def subscribe(self, topic: str, last_id: str | None = None, *,
                  from_latest: bool = False, kept_whole: bool = False,
                  attendance: Attendance | None = None) -> Subscription:
        """A subscriber of `topic`; nothing happens until it is read (see Subscription). With
        `attendance` it counts in the topic's presence while it reads."""
        return Subscription(self, topic, last_id, self.queue_size, from_latest=from_latest,
                            kept_whole=kept_whole, attendance=attendance)

    @abstractmethod
    def publish(self, topic: str, event: str, data: str) -> str:
        """Append an event (`data` is JSON text) and deliver it; returns its id."""

    @abstractmethod
    def publish_many(self, topic: str, events: Sequence[tuple[str, str]]) -> list[str]:
        """Append `events` (pairs of event type and JSON data text) atomically and in order,
        and deliver them together; returns their ids in order. The Redis backend sends them
        in one round trip (MULTI/EXEC)."""

    @abstractmethod
    def publish_open(self, topic: str, event: str, data: str, *, final: bool = False,
                     unless_leased: str | None = None,
                     retain_seconds: float | None = None,
                     position: int | None = None) -> str | None:
        """Append unless the topic already ended (or the lease `unless_leased` is held);
        returns the id, or None if nothing was appended. Atomic: of two callers racing to end
        a topic, one wins. A `final` event ends the topic. With `retain_seconds` the topic is
        forgotten that long after this append (kept until then, or forever if never given).

        `position` makes a topic that is kept whole and addressed by position rather than by
        time (a generation's tokens): the id is `<position>-<n>`, n counting events at that
        position from 0 (from 1 at position 0, as Redis counts), and nothing is trimmed.
        `AT_END` appends at the last event's position. Positions never go back.

        `unless_leased` names a lease of this topic: `<topic>` or `<topic>/<more>` for a topic
        `<kind>/<id>`. On a Redis Cluster that is what keeps both keys in one slot; another
        lease raises ValueError there (`redis_keys.py`).
        """

    def apply(self, writes: Sequence[Append | Lease]) -> list[str | None]:
        """Each write in order, as `publish_open` and `lease` make them (an Append's id or
        None; None for a Lease). Not atomic as a whole; the Redis backend sends them all in
        one round trip."""
        return [self.publish_open(w.topic, w.event, w.data, final=w.final,
                                  unless_leased=w.unless_leased,
                                  retain_seconds=w.retain_seconds, position=w.position)
                if isinstance(w, Append) else self.lease(w.name, w.seconds) for w in writes]

    @abstractmethod
    def latest(self, topic: str, count: int = 1) -> list[Event]:
        """The last `count` retained events, oldest first."""

    @abstractmethod
    def read_after(self, topic: str, after: Key, count: int) -> list[Event]:
        """Up to `count` retained events whose id is after `after`, oldest first."""

    @abstractmethod
    def trimmed_after(self, topic: str, after: Key) -> bool:
        """Whether an event after `after` is no longer retained (or never was known here)."""

    @abstractmethod
    def follow(self, topic: str, mailbox: Mailbox) -> None:
        """Deliver the topic's events published from now on to `mailbox`."""

    @abstractmethod
    def unfollow(self, topic: str, mailbox: Mailbox) -> None:
        """Stop delivering to `mailbox`. Never blocks, never fails."""

    @abstractmethod
    def lease(self, name: str, seconds: float) -> None:
        """Hold (or renew) the lease `name` for `seconds`."""

    @abstractmethod
    def release(self, name: str) -> None:
        """Give the lease `name` up."""

    @abstractmethod
    def subscribers(self) -> int:
        """Subscriptions of this process following a topic now."""

    def close(self) -> None:  # noqa: B027 (only a backend holding connections needs it)
        """Release what the broker holds (connections, its reader)."""
