"""Where a stream's events come from, delivered in batches the pipeline writes as one chunk.

Two kinds, one interface (`batches(idle, cancellation)`, a generator of lists, or of `IDLE` when
nothing came for `idle` seconds so the pipeline can send a heartbeat):

- `PacedSource`: a plain iterator of `(due, item)` pairs, released when due. It needs no greenlet
  of its own: the serving greenlet sleeps until the next item is due (or the stream is
  cancelled). This is what the demo model uses, and why 10,000 idle streams cost so little.
- `ProducerSource`: a producer that blocks on I/O (an upstream, a broker) runs in its own
  greenlet and puts items into a bounded queue. A slow client fills the queue, then the
  producer blocks on `put`: backpressure, so memory per stream stays bounded.

Both honour a `Cancellation`: the wait ends at once and the producer greenlet is killed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from typing import Any

import gevent
from gevent.queue import Empty, Full, Queue

from .cancellation import Cancellation

IDLE = object()
"""Yielded by `batches` after `idle` seconds without an item: time for a heartbeat."""

MAX_BATCH = 256
"""Most items in one chunk. Bounds how long one fast stream keeps the others waiting."""


class PacedSource:
    """Items from `items`, pairs of (seconds after the stream starts, item), released when due.

    Items already due are sent together in one batch, so a producer that is ahead of the socket
    costs one write per batch, never one per item; a lone due item is sent at once. Nothing is
    released once the cancellation is set, not even items that are due.
    """

    def __init__(self, items: Iterable[tuple[float, Any]]) -> None:
        self._items = iter(items)
        self._error: Exception | None = None

    def _next(self) -> tuple[float, Any] | None:
        # An item is read ahead of the batch being built: if the iterator fails there, the
        # batch must still go out before the failure is raised, or tokens would be lost.
        try:
            return next(self._items, None)
        except Exception as exc:
            self._error = exc
            return None

    def batches(self, idle: float | None,
                cancellation: Cancellation) -> Iterator[list | object]:
        started = time.monotonic()
        pending = self._next()
        while pending is not None:
            # Before every batch, the first too: a stream cancelled before it ran sends nothing.
            if cancellation.cancelled:
                return
            due = started + pending[0]
            now = time.monotonic()
            if due > now:
                idle_first = idle is not None and idle < due - now
                if cancellation.wait(idle if idle_first else due - now):
                    return
                # Not "still before due": libev's timers run on its cached loop time and can
                # wake a little early, which must not pass for an idle period.
                if idle_first:
                    yield IDLE
                continue
            batch = [pending[1]]
            pending = self._next()
            while pending is not None and len(batch) < MAX_BATCH and started + pending[0] <= now:
                batch.append(pending[1])
                pending = self._next()
            yield batch
            if pending is not None and started + pending[0] <= now:
                # A CPU-bound producer must let other streams run between batches: a write to
                # a socket with room in its buffer never switches greenlets by itself.
                gevent.sleep(0)
        if self._error is not None and not cancellation.cancelled:
            raise self._error


class ProducerFailed(Exception):
    """The producer raised; `__cause__` holds its exception."""


_DONE = object()


class _Raised:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class ProducerSource:
    """Items a producer greenlet emits, through a queue of at most `maxsize` items.

    `produce(emit)` runs in its own greenlet and calls `emit(item)` for each item; `emit` blocks
    while the queue is full. The greenlet is killed when the stream ends or is cancelled, so a
    producer must release what it holds in `finally`. The bound is the producer's to choose, in
    its own unit: the proxy's relay holds 8 pieces of up to 16 KiB (`llm/relay.py`); small
    events can afford more.
    """

    def __init__(self, produce: Callable[[Callable[[Any], None]], None],
                 maxsize: int = 64) -> None:
        self._produce = produce
        self._queue: Queue = Queue(maxsize)

    def _run(self) -> None:
        try:
            self._produce(self._queue.put)
        except Exception as exc:  # handed to the serving greenlet, which reports it
            self._queue.put(_Raised(exc))
        else:
            self._queue.put(_DONE)

    def _wake(self) -> None:
        # Called from the hub on cancellation. A full queue means the reader is not waiting.
        with suppress(Full):
            self._queue.put_nowait(_DONE)

    def batches(self, idle: float | None,
                cancellation: Cancellation) -> Iterator[list | object]:
        producer = gevent.spawn(self._run)
        cancellation.on_cancel(lambda: producer.kill(block=False))
        cancellation.on_cancel(self._wake)
        try:
            while not cancellation.cancelled:
                try:
                    item = self._queue.get(timeout=idle)
                except Empty:
                    yield IDLE
                    continue
                batch = []
                while True:
                    if item is _DONE:
                        if batch:
                            yield batch
                        return
                    if type(item) is _Raised:
                        if batch:
                            yield batch
                        raise ProducerFailed() from item.error
                    batch.append(item)
                    if len(batch) >= MAX_BATCH or self._queue.empty():
                        break
                    item = self._queue.get_nowait()
                yield batch
        finally:
            producer.kill(block=False)
