"""`Fanout`: which mailboxes of this process follow which topic, and delivery to them.

Both backends deliver through it: the memory broker from the publishing greenlet, the Redis
backend from its one reader greenlet. Nothing here blocks or switches greenlets.

Delivery is sliced: one turn of the event loop hands a delivery to at most `slice_size`
mailboxes (`SLICE_SIZE`), so ten thousand subscribers of one topic never hold the loop for
more than a slice's puts (a put is about a microsecond). A topic with no more followers than
that is handed its delivery at once, in the caller's greenlet, as before; a larger one gets
its first slice at once and the rest from the hub, a slice per callback (`loop.run_callback`),
between which the woken subscribers write and I/O runs (gevent breaks out of its callbacks to
poll every switch interval). Every slice of a turn shares one budget, whatever the topic.

What slicing keeps:

1. Order per mailbox. A topic's deliveries are handed over in the order they came, one after
   the other; a delivery for a topic that still has one under way waits behind it (several
   waiting deliveries of a topic join into one list: one wake-up, one chunk).
2. No half deliveries. A delivery goes to the mailboxes following its topic when it starts
   (its first slice); a mailbox that joins later gets none of it, never part of it. It loses
   nothing: an event is stored before it is delivered, and a joining subscription reads the
   history after it follows (`subscription.py`), dropping live events it already read by id.

With a `flush_delay` (seconds), events are held and handed over together, once per delay, as
one list per topic: each subscriber is woken once and writes one chunk for all of them. That
trades latency (up to the delay) for CPU: see bench/README.md's fan-out figures. A subscription
that joins meanwhile may find a held event in the history too; it drops it by id, as it drops
any live event it already read (`subscription.py`).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from gevent import get_hub

from streaming.mailbox import Mailbox

from .events import Event, Notice

FLUSH_DELAY: float | None = None
"""The brokers' default: None hands each delivery over at once; 0 holds it to the end of the
loop turn (one wake-up for everything delivered in that turn); more waits that long."""

SLICE_SIZE = 1000
"""Most mailboxes handed a delivery per turn of the event loop: about 3.5 ms of puts at most.
500 split the 1,000 subscribers of bench/fanout.py in two, and the second half waited
behind the first half's writes: p99 131-165 ms against 72-77 ms unsliced (alternated)."""


class _Delivery:
    """Events on their way to a topic's mailboxes: `mailboxes` is None until it starts."""

    __slots__ = ("events", "mailboxes", "position", "topic")

    def __init__(self, topic: str, events: list[Event]) -> None:
        self.topic = topic
        self.events = events
        self.mailboxes: list[Mailbox] | None = None
        self.position = 0


class Fanout:
    """Topic → the mailboxes following it. Shared by a process's greenlets; never blocks."""

    __slots__ = ("_continuing", "_flush_delay", "_flush_timer", "_flushing", "_held",
                 "_queue", "_slice", "_topics", "_unfinished", "handed_over", "overflows")

    def __init__(self, flush_delay: float | None = FLUSH_DELAY,
                 slice_size: int = SLICE_SIZE) -> None:
        if slice_size < 1:
            raise ValueError(f"slice_size must be >= 1, got {slice_size!r}")
        self._topics: dict[str, set[Mailbox]] = {}
        self._flush_delay = flush_delay
        self._slice = slice_size
        self._held: dict[str, list[Event]] = {}
        self._flushing = False  # a hand-over of what is held is scheduled
        self._flush_timer: Any = None
        self._queue: deque[_Delivery] = deque()  # deliveries under way, in order
        self._unfinished: dict[str, _Delivery] = {}  # a topic's last delivery in the queue
        self._continuing = False  # a callback to continue the queue is scheduled
        self.handed_over = 0
        """Events put into mailboxes so far (events times mailboxes), for the broker metrics."""
        self.overflows = 0
        """Mailboxes removed after they overflowed, for the broker metrics."""

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
        if mailbox.overflowed:  # counted here, once, rather than on the delivery path
            self.overflows += 1
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

    def pending(self) -> int:
        """Deliveries not yet handed to all of their mailboxes."""
        return len(self._queue)

    def deliver(self, topic: str, events: list[Event]) -> None:
        """Hand `events` to every mailbox following `topic`, now or after the flush delay,
        in slices (see the module's docstring).

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
        waiting = self._unfinished.get(topic)
        if waiting is not None:  # behind a delivery under way: keep the order
            if waiting.mailboxes is None:
                waiting.events = waiting.events + events  # not started: nobody holds it yet
            else:
                self._enqueue(_Delivery(topic, list(events)))
            return
        mailboxes = self._topics.get(topic)
        if not mailboxes:
            return
        if len(mailboxes) <= self._slice:
            # One list shared by every mailbox; a put never calls back into the fan-out.
            for mailbox in mailboxes:
                mailbox.put(events)
            self.handed_over += len(events) * len(mailboxes)
            return
        delivery = _Delivery(topic, list(events))
        self._start(delivery)
        self._slice_of(delivery, self._slice)
        self._enqueue(delivery)

    def _start(self, delivery: _Delivery) -> None:
        delivery.mailboxes = list(self._topics.get(delivery.topic, ()))

    def _slice_of(self, delivery: _Delivery, budget: int) -> int:
        """Hand `delivery` to up to `budget` more mailboxes; how many it was handed to."""
        assert delivery.mailboxes is not None
        start = delivery.position
        end = min(start + budget, len(delivery.mailboxes))
        events = delivery.events
        for mailbox in delivery.mailboxes[start:end]:
            mailbox.put(events)
        delivery.position = end
        self.handed_over += len(events) * (end - start)
        return end - start

    def _enqueue(self, delivery: _Delivery) -> None:
        self._queue.append(delivery)
        self._unfinished[delivery.topic] = delivery
        if not self._continuing:
            self._continuing = True
            get_hub().loop.run_callback(self._continue)

    def _continue(self) -> None:
        """Run by the hub: one slice's worth of the deliveries under way, oldest first."""
        self._continuing = False
        budget = self._slice
        queue = self._queue
        while queue and budget > 0:
            delivery = queue[0]
            if delivery.mailboxes is None:
                self._start(delivery)
            budget -= self._slice_of(delivery, budget)
            if delivery.position >= len(delivery.mailboxes or ()):
                queue.popleft()
                if self._unfinished.get(delivery.topic) is delivery:
                    del self._unfinished[delivery.topic]
        if queue:
            self._continuing = True
            get_hub().loop.run_callback(self._continue)

    def fail_all(self, notice: Notice) -> None:
        """End every subscription with `notice` (the broker is unreachable)."""
        topics, self._topics = self._topics, {}
        self._held = {}
        self._queue.clear()
        self._unfinished.clear()
        for mailboxes in topics.values():
            for mailbox in mailboxes:
                mailbox.close(notice)

    def fail(self, topic: str, notice: Notice) -> None:
        """End the subscriptions of `topic` with `notice` (its Redis node is unreachable)."""
        self._held.pop(topic, None)
        for mailbox in self._topics.pop(topic, ()):
            mailbox.close(notice)
