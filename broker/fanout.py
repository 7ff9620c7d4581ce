"""`Fanout`: which mailboxes of this process follow which topic, and delivery to them.

Both backends deliver through it: the memory broker from the publishing greenlet, the Redis
backend from its one reader greenlet. Nothing here blocks or switches greenlets, so a delivery
reaches every mailbox of a topic before anything else runs, and a mailbox added meanwhile
cannot see half of it.

With a `flush_delay` (seconds), events are held and handed over together, once per delay, as
one list per topic: each subscriber is woken once and writes one chunk for all of them. That
trades latency (up to the delay) for CPU: see bench/README.md's fan-out figures. A subscription
that joins meanwhile may find a held event in the history too; it drops it by id, as it drops
any live event it already read (`subscription.py`).
"""

from __future__ import annotations

from typing import Any

from gevent import get_hub

from streaming.mailbox import Mailbox

from .events import Event, Notice

FLUSH_DELAY: float | None = None
"""The brokers' default: None hands each delivery over at once; 0 holds it to the end of the
loop turn (one wake-up for everything delivered in that turn); more waits that long."""


class Fanout:
    """Topic → the mailboxes following it. Shared by a process's greenlets; never blocks."""

    __slots__ = ("_flush_delay", "_flush_timer", "_flushing", "_held", "_topics")

    def __init__(self, flush_delay: float | None = FLUSH_DELAY) -> None:
        self._topics: dict[str, set[Mailbox]] = {}
        self._flush_delay = flush_delay
        self._held: dict[str, list[Event]] = {}
        self._flushing = False  # a hand-over of what is held is scheduled
        self._flush_timer: Any = None

    def add(self, topic: str, mailbox: Mailbox) -> bool:
        """Follow `topic` with `mailbox`; True if no mailbox followed it before."""
        mailboxes = self._topics.get(topic)
        if mailboxes is None:
            self._topics[topic] = {mailbox}
            return True
        mailboxes.add(mailbox)
        return False

    def remove(self, topic: str, mailbox: Mailbox) -> bool:
        """Stop following; True if that was the topic's last mailbox."""
        mailboxes = self._topics.get(topic)
        if mailboxes is None or mailbox not in mailboxes:
            return False
        mailboxes.discard(mailbox)
        if mailboxes:
            return False
        del self._topics[topic]
        return True

    def __contains__(self, topic: str) -> bool:
        return topic in self._topics

    def topics(self) -> list[str]:
        return list(self._topics)

    def subscribers(self) -> int:
        return sum(map(len, self._topics.values()))

    def deliver(self, topic: str, events: list[Event]) -> None:
        """Hand `events` to every mailbox following `topic`, now or after the flush delay.

        A mailbox that overflows closes itself; its subscription then stops following.
        """
        if self._flush_delay is None:
            self._hand_over(topic, events)
            return
        held = self._held.get(topic)
        if held is None:
            self._held[topic] = list(events)
        else:
            held += events
        if not self._flushing:
            self._flushing = True
            loop = get_hub().loop
            if self._flush_delay == 0:
                loop.run_callback(self._flush_held)
                return
            if self._flush_timer is None:
                # Repeating, so that again() counts from now each time (see Mailbox).
                self._flush_timer = loop.timer(self._flush_delay, self._flush_delay)
            self._flush_timer.again(self._flush_held)

    def _flush_held(self) -> None:
        """Run by the hub: hand over everything held, one list per topic."""
        if self._flush_timer is not None:
            self._flush_timer.stop()
        self._flushing = False
        held, self._held = self._held, {}
        for topic, events in held.items():
            self._hand_over(topic, events)

    def _hand_over(self, topic: str, events: list[Event]) -> None:
        # One list shared by every mailbox; a put never calls back into the fan-out.
        for mailbox in self._topics.get(topic, ()):
            mailbox.put(events)

    def fail_all(self, notice: Notice) -> None:
        """End every subscription with `notice` (the broker is unreachable)."""
        topics, self._topics = self._topics, {}
        self._held = {}
        for mailboxes in topics.values():
            for mailbox in mailboxes:
                mailbox.close(notice)

    def fail(self, topic: str, notice: Notice) -> None:
        """End the subscriptions of `topic` with `notice` (its Redis node is unreachable)."""
        self._held.pop(topic, None)
        for mailbox in self._topics.pop(topic, ()):
            mailbox.close(notice)
