"""`Mailbox`: a bounded queue that a fan-out fills without ever blocking, read by one greenlet.

A `ProducerSource` gives backpressure: a slow client makes its producer wait. In fan-out one
producer feeds many readers, so waiting for the slowest would stall them all. A mailbox never
makes the writer wait: a reader that falls `maxsize` behind is dropped instead, its pending
items freed at once, and what it reads last is the `overflow` item it was given. How far behind
is counted in items (a broker's events), or in what `weigh` says an item weighs (a log tail's
bytes of encoded lines).

The reader takes everything pending at once, so a reader that was busy writes one chunk for
all the items that queued meanwhile (fan-out's batching, for free).

Shared between greenlets: `put`, `close` and `wake` may be called from any greenlet, never
block and never switch; `take` and `batches` belong to the one reader.

A fan-out puts into a thousand mailboxes per event, and each reader waits once per batch, so
both paths are kept short: a wake-up is scheduled only for a reader that is waiting (one per
wait, however many puts come before it runs), and a reader keeps one timer for its idle
timeout, restarted on each wait, rather than creating one per wait (about a third of a wait's
cost, measured with 1,000 readers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from gevent.hub import Waiter, get_hub

from .cancellation import Cancellation
from .sources import IDLE

_TIMED_OUT = object()


class Mailbox:
    """At most `maxsize` pending; past that the reader gets only `overflow`, then the end.

    Without `weigh` each item counts 1; with it, an item counts `weigh(item)`.
    """

    __slots__ = ("_closed", "_final", "_items", "_load", "_maxsize", "_overflow", "_timer",
                 "_timer_seconds", "_waiter", "_weigh", "overflowed")

    def __init__(self, maxsize: int, overflow: Any, *,
                 weigh: Callable[[Any], int] | None = None) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize!r}")
        self._maxsize = maxsize
        self._overflow = overflow
        self._weigh = weigh
        self._items: list = []
        self._load = 0
        self._closed = False
        self._final: Any = None
        self._waiter: Waiter | None = None
        self._timer: Any = None  # the reader's idle timer, kept for its next wait
        self._timer_seconds = 0.0
        self.overflowed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, items: list) -> bool:
        """Queue `items` for the reader; False if the mailbox is closed or has just overflowed."""
        if self._closed:
            return False
        load = self._load + (len(items) if self._weigh is None else sum(map(self._weigh, items)))
        if load > self._maxsize:
            self.overflowed = True
            self._items = []  # the reader resumes from its last id; nothing pending is kept
            self.close(self._overflow)
            return False
        self._load = load
        self._items += items
        if self._waiter is not None:
            self.wake()
        return True

    def close(self, final: Any = None) -> None:
        """End the mailbox: the reader gets what is pending, then `final` (if not None)."""
        if self._closed:
            return
        self._closed = True
        self._final = final
        self.wake()

    def wake(self) -> None:
        """Interrupt the reader's wait (for a cancellation): its `take` returns what it has."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            # A Waiter may only be switched from the hub, whoever wakes it.
            waiter.hub.loop.run_callback(waiter.switch, None)

    def take(self, timeout: float | None) -> list | None:
        """Everything pending, waiting up to `timeout` seconds for something to come.

        None when the time passed first; `[]` when the mailbox is closed and drained, or when
        `wake()` interrupted the wait with nothing pending. A closed mailbox's final item comes
        last, once.
        """
        if not self._items and not self._closed:
            timed_out = self._wait(timeout)
            if timed_out and not self._items and not self._closed:
                return None
        items, self._items = self._items, []
        self._load = 0
        if self._closed:
            self._drop_timer()
            if self._final is not None:
                items.append(self._final)
                self._final = None
        return items

    def _wait(self, timeout: float | None) -> bool:
        """Sleep until woken or `timeout` seconds pass; True if the time passed."""
        hub = get_hub()
        waiter = Waiter(hub)
        self._waiter = waiter
        timer = None
        if timeout is not None:
            timer = self._idle_timer(hub, timeout)
            timer.again(waiter.switch, _TIMED_OUT)
        try:
            return waiter.get() is _TIMED_OUT
        finally:
            if timer is not None:
                timer.stop()
            if self._waiter is waiter:
                self._waiter = None

    def _idle_timer(self, hub: Any, seconds: float) -> Any:
        """A stopped timer of `seconds`: the last one if it has that length (a reader's idle
        timeout rarely changes), else a new one. It repeats, so that `again()` restarts it
        from now (a one-shot timer, once fired, fires at once when started again); a
        repeat of 0 would never fire, so no wait is shorter than a millisecond."""
        seconds = max(seconds, 0.001)
        timer = self._timer
        if timer is None or self._timer_seconds != seconds:
            self._drop_timer()
            timer = self._timer = hub.loop.timer(seconds, seconds)
            self._timer_seconds = seconds
        return timer

    def _drop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.close()

    def batches(self, idle: float | None,
                cancellation: Cancellation) -> Iterator[list | object]:
        """The mailbox as a pipeline source: batches until closed or cancelled, IDLE between."""
        cancellation.on_cancel(self.wake)
        yield from batches_of(self.take, idle, cancellation)


def batches_of(take: Callable[[float | None], list | None], idle: float | None,
               cancellation: Cancellation) -> Iterator[list | object]:
    """A pipeline source reading `take(timeout)`, which has `Mailbox.take`'s contract: a batch,
    None when `timeout` passed without one (IDLE goes out), or `[]` at the end.

    For readers that turn what a mailbox holds into what they send (a subscription, a log
    tail); the cancellation must wake whatever `take` waits on.
    """
    while not cancellation.cancelled:
        batch = take(idle)
        if batch is None:
            yield IDLE
        elif batch:
            yield batch
        else:
            return
