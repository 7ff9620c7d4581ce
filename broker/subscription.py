"""`Subscription`: one subscriber of a topic, from a last id through the history to live events.

The same for both backends; a backend is the `Store` it reads from. How a subscription joins
without a gap or a duplicate:

1. it starts following the topic (its mailbox gets every event delivered from now on);
2. only then does it read the history after its start (or the latest id), so an event
   delivered before step 1 was already stored and is in what step 2 reads;
3. live events it already got from the history are dropped by id (ids only grow per topic).

A new subscriber's start is the newest id when `pin()` ran: a view pins before the response
starts, so an event published once the client has the headers is never missed, even though the
stream itself only begins reading after its first write.

A subscription with an `Attendance` counts in its topic's presence from the moment it starts
reading (step 1) until it closes, and, if it asked, gets the topic's joins and leaves in its
mailbox: they carry no id, so they never move its place in the topic (`presence.py`). It counts
from its start rather than from `pin()`, because only a stream that started is sure to close it.

A subscription ends after its topic's final event (a finished task), when its mailbox
overflows (it gets `event: overflow`), or when the broker is unreachable (`event: error`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Protocol

from streaming.cancellation import Cancellation
from streaming.mailbox import Mailbox, batches_of

from .events import BROKER_ERROR, RESET, ZERO, Event, Key, Notice, overflow_notice, parse_id
from .presence import Attendance, Presence


class BrokerUnavailable(Exception):
    """The broker could not be reached; the message says so without internal detail."""


class Store(Protocol):
    """What a subscription reads. Each call may block on I/O and raise BrokerUnavailable."""

    def follow(self, topic: str, mailbox: Mailbox) -> None: ...
    def unfollow(self, topic: str, mailbox: Mailbox) -> None: ...
    def read_after(self, topic: str, after: Key, count: int) -> list[Event]: ...
    def latest(self, topic: str, count: int = 1) -> list[Event]: ...
    def trimmed_after(self, topic: str, after: Key) -> bool: ...

    @property
    def presence(self) -> Presence: ...


Item = Event | Notice


class Subscription:
    """The events of `topic` after `last_id` (a Last-Event-ID), then live ones as they come.

    Without `last_id` it starts with what is published next (after `pin()`, or after reading
    began), or, with `from_latest`, with the latest retained event. `kept_whole` skips the
    checks for a lost history (two round trips to Redis) for a topic that is never trimmed.
    A `last_id` that is not an id raises InvalidEventId at once; one older than the retained
    history yields `event: reset` first, then the oldest retained event.

    Iterate it (`for event in sub`), poll it (`get(timeout)`), or stream it: it is a pipeline
    source (`batches`). One greenlet reads a subscription; `close()` may come from any.
    """

    PAGE = 256
    """Events read from the history at a time (and written as one chunk)."""

    def __init__(self, store: Store, topic: str, last_id: str | None, queue_size: int, *,
                 from_latest: bool = False, kept_whole: bool = False,
                 attendance: Attendance | None = None) -> None:
        self.topic = topic
        self._store = store
        self._after: Key | None = parse_id(last_id) if last_id else None
        # A client's id may be past the history, unless the topic is positioned and kept
        # whole (`publish_open(position=...)`), and the caller has checked it is still there.
        self._resuming = self._after is not None and not kept_whole
        self._from_latest = from_latest
        self._first: list[Item] = []
        self._mailbox = Mailbox(queue_size, overflow_notice(queue_size))
        self._following = False
        self._replaying = False
        self._catching_up = True  # live events may repeat what the history gave
        self._ended = False
        self._pending: deque[Item] = deque()
        self._attendance = attendance
        self._counted: Attendance | None = None  # how it counts in the topic's presence now

    @property
    def ended(self) -> bool:
        return self._ended and not self._pending

    def batches(self, idle: float | None,
                cancellation: Cancellation) -> Iterator[list | object]:
        """The pipeline source: batches of events (one chunk each), IDLE while nothing comes."""
        cancellation.on_cancel(self._mailbox.wake)
        try:
            yield from batches_of(self.next_batch, idle, cancellation)
        finally:
            self.close()

    def get(self, timeout: float | None = None) -> Item | None:
        """The next event, or None if none came within `timeout` seconds or the stream ended."""
        if not self._pending:
            self._pending.extend(self.next_batch(timeout) or ())
        return self._pending.popleft() if self._pending else None

    def __iter__(self) -> Iterator[Item]:
        while (item := self.get()) is not None:
            yield item

    def pin(self) -> None:
        """Fix now where a subscriber without a last id starts (after the newest event, or at
        it with `from_latest`), so that it gets everything published after this returns,
        however late its reading begins: call it before the response's headers go out."""
        if self._after is None:
            latest = self._store.latest(self.topic)
            self._after = latest[-1].key if latest else ZERO
            self._first = latest if self._from_latest else []

    def close(self) -> None:
        """Stop following the topic; safe to call more than once."""
        self._ended = True
        self._mailbox.close()
        counted, self._counted = self._counted, None
        if counted is not None:
            self._leave(counted)
        if self._following:
            self._following = False
            self._store.unfollow(self.topic, self._mailbox)

    def next_batch(self, timeout: float | None) -> list[Item] | None:
        """The next events (the history first, then live), None after `timeout` seconds
        without one, `[]` once the subscription ended."""
        if self._ended:
            return []
        try:
            if not self._following:
                first = self._start()
                if first:
                    return self._deliver(first)
            if self._replaying:
                page = self._store.read_after(self.topic, self._after, self.PAGE)
                self._replaying = len(page) == self.PAGE
                if page:
                    return self._deliver(page)
            return self._live(timeout)
        except BrokerUnavailable:
            self.close()
            return [BROKER_ERROR]

    def _start(self) -> list[Item]:
        """Follow the topic, then find where to start; returns what comes first, if anything."""
        if self._attendance is not None:
            self._enter(self._attendance)
        self._following = True
        self._store.follow(self.topic, self._mailbox)
        if self._after is None:
            self.pin()
            return self._first
        self._replaying = True
        if not self._resuming:
            return self._first
        if self._store.trimmed_after(self.topic, self._after):
            return [RESET]
        latest = self._store.latest(self.topic)
        if not latest or latest[-1].key < self._after:
            # Beyond anything the topic holds: its history was lost (a flushed Redis, a
            # restarted memory broker), so whatever it holds now is new to this client.
            self._after = ZERO
            return [RESET]
        return []

    def _enter(self, attendance: Attendance) -> None:
        self._counted = attendance
        presence = self._store.presence
        presence.enter(self.topic, attendance.subject)
        if attendance.events:
            presence.watch(self.topic, self._mailbox)

    def _leave(self, attendance: Attendance) -> None:
        presence = self._store.presence
        if attendance.events:
            presence.unwatch(self.topic, self._mailbox)
        presence.leave(self.topic, attendance.subject)

    def _live(self, timeout: float | None) -> list[Item] | None:
        while True:
            items = self._mailbox.take(timeout)
            if items is None:
                return None
            if not items:
                self.close()
                return []
            if self._catching_up:
                after = self._after
                items = [item for item in items if item.key is None or item.key > after]
                if not items:
                    continue
                # Notices (joins, leaves) say nothing of how far the live events are.
                self._catching_up = all(item.key is None for item in items)
            return self._deliver(items)

    def _deliver(self, items: list[Item]) -> list[Item]:
        last = next((item for item in reversed(items) if item.key is not None), None)
        if last is not None:
            self._after = last.key
            # Nothing is ever published after a topic's final event, so it is its last.
            if last.final:
                self.close()
        return items
