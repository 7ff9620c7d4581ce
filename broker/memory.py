"""The embedded broker: topics in this process's memory, delivered from the publishing greenlet.

Correct within one process, and only there: with several gunicorn workers each has its own
topics, so set REDIS_URL (the server warns at start). Nothing here blocks or switches: a
publish is appended, then handed to the topic's local subscribers, at once when they are few,
else a slice per turn of the loop (`fanout.py`).

History survives nothing: after a restart an id from before it is "older than the retained
history" (`trimmed_after` compares with the broker's birth), so a resuming client gets a reset.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from itertools import islice

from streaming.mailbox import Mailbox

from .base import AT_END, EACH, IF_APPENDED, ONE, Broker, timed_publish
from .events import ZERO, Event, Key, format_id, next_key
from .fanout import FLUSH_DELAY, Fanout
from .presence import Presence

SWEEP_SECONDS = 60.0
"""How often topics past their retention are looked for (on publish)."""


class _Topic:
    __slots__ = ("ended", "events", "expires_at", "last", "max_deleted")

    def __init__(self, history: int | None, born: Key) -> None:
        self.events: deque[Event] = deque(maxlen=history)
        self.last: Key = ZERO
        # Ids before the broker was born are not known here, as if trimmed.
        self.max_deleted: Key = born
        self.ended = False
        self.expires_at: float | None = None


class MemoryBroker(Broker):
    """Topics in a dict, each a deque of its last `history` events."""

    kind = "memory"
    shared = False

    def __init__(self, history: int, queue_size: int, *,
                 flush_delay: float | None = FLUSH_DELAY) -> None:
        super().__init__(history, queue_size)
        self._topics: dict[str, _Topic] = {}
        self._fanout = self.fanout = Fanout(flush_delay)
        self.presence = Presence()
        self._leases: dict[str, float] = {}
        self._born = next_key(ZERO)
        self._swept_at = time.monotonic()

    def _topic(self, name: str) -> _Topic:
        topic = self._state(name)
        if topic is None:
            topic = self._topics[name] = _Topic(self.history, self._born)
        return topic

    @timed_publish(ONE)
    def publish(self, topic: str, event: str, data: str) -> str:
        return self._append(self._topic(topic), topic, event, data, final=False)

    @timed_publish(EACH)
    def publish_many(self, topic: str, events: Sequence[tuple[str, str]]) -> list[str]:
        state = self._topic(topic)
        items = [self._store(state, event, data, False) for event, data in events]
        self._fanout.deliver(topic, items)  # one hand-over: one wake-up per subscriber
        self._sweep()
        return [item.id for item in items]

    def _state(self, name: str) -> _Topic | None:
        """The topic, unless it is past its retention (forgotten, though not yet swept)."""
        topic = self._topics.get(name)
        if topic is not None and topic.expires_at is not None \
                and topic.expires_at < time.monotonic():
            del self._topics[name]
            return None
        return topic

    @timed_publish(IF_APPENDED)
    def publish_open(self, topic: str, event: str, data: str, *, final: bool = False,
                     unless_leased: str | None = None,
                     retain_seconds: float | None = None,
                     position: int | None = None) -> str | None:
        state = self._state(topic)
        if state is None:
            # Positioned topics start at (0, 0): nothing before them was ever trimmed.
            state = self._topics[topic] = _Topic(None if position is not None else self.history,
                                                 ZERO if position is not None else self._born)
        if state.ended or (unless_leased is not None and self._leased(unless_leased)):
            return None
        key = None if position is None else _positioned(state.last, position)
        event_id = self._append(state, topic, event, data, final, key)
        state.ended = final
        if retain_seconds is not None:
            state.expires_at = time.monotonic() + retain_seconds
        return event_id

    def _append(self, state: _Topic, topic: str, event: str, data: str, final: bool,
                key: Key | None = None) -> str:
        item = self._store(state, event, data, final, key)
        self._fanout.deliver(topic, [item])
        self._sweep()
        return item.id

    @staticmethod
    def _store(state: _Topic, event: str, data: str, final: bool,
               key: Key | None = None) -> Event:
        key = state.last = key or next_key(state.last)
        if len(state.events) == state.events.maxlen:
            state.max_deleted = state.events[0].key
        item = Event(format_id(key), event, data, final, key)
        state.events.append(item)
        return item

    def _sweep(self) -> None:
        now = time.monotonic()
        if now - self._swept_at < SWEEP_SECONDS:
            return
        self._swept_at = now
        for name, state in list(self._topics.items()):
            if state.expires_at is not None and state.expires_at < now and name not in self._fanout:
                del self._topics[name]
        self._leases = {name: until for name, until in self._leases.items() if until > now}

    def latest(self, topic: str, count: int = 1) -> list[Event]:
        state = self._state(topic)
        if state is None:
            return []
        return list(islice(reversed(state.events), count))[::-1]

    def read_after(self, topic: str, after: Key, count: int) -> list[Event]:
        state = self._state(topic)
        if state is None:
            return []
        found = (event for event in state.events if event.key > after)
        return list(islice(found, count))

    def trimmed_after(self, topic: str, after: Key) -> bool:
        state = self._state(topic)
        return (state.max_deleted if state else self._born) > after

    def follow(self, topic: str, mailbox: Mailbox) -> None:
        self._fanout.add(topic, mailbox)

    def unfollow(self, topic: str, mailbox: Mailbox) -> None:
        self._fanout.remove(topic, mailbox)

    def lease(self, name: str, seconds: float) -> None:
        self._leases[name] = time.monotonic() + seconds

    def release(self, name: str) -> None:
        self._leases.pop(name, None)

    def _leased(self, name: str) -> bool:
        return self._leases.get(name, 0.0) > time.monotonic()

    def subscribers(self) -> int:
        return self._fanout.subscribers()


def _positioned(last: Key, position: int) -> Key:
    """The id Redis's `XADD <position>-*` would give after `last` (AT_END: at last's position)."""
    if position == AT_END:
        position = last[0]
    if position < last[0]:
        raise ValueError(f"position {position} is before the topic's last ({last[0]})")
    if position > last[0]:
        return (position, 0)
    return (position, last[1] + 1)
