"""Prometheus metrics for streams, correct across gunicorn workers.

With several workers each process only sees its own streams, so when `PROMETHEUS_MULTIPROC_DIR`
is set (gunicorn.conf.py sets it) prometheus_client's multiprocess mode writes every value to a
per-process file and `/metrics` adds them up. Gauges use `livesum`: a dead worker's streams stop
counting once gunicorn's `child_exit` hook marks it dead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol

from gevent import get_hub
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from .cancellation import Cancellation
from .disconnect import DISCONNECT

DURATION_BUCKETS = (0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class StreamMetrics(Protocol):
    """What a stream reports: `Metrics` in the app, a recording fake in tests."""

    def started(self, transport: str) -> None: ...
    def sent(self, transport: str, events: int) -> None: ...
    def ended(self, transport: str, seconds: float, disconnected: bool) -> None: ...


class EventTally:
    """Counts a stream's sent events, reporting them to the metrics at most once a second.

    prometheus_client's multiprocess counters take a lock and write an mmap on every `inc`: per
    write, that was a tenth of the worker's time with 500 paced streams. A scrape every few
    seconds never sees the difference.
    """

    __slots__ = ("_metrics", "_reported_at", "_transport", "_unreported")

    INTERVAL = 1.0

    def __init__(self, metrics: StreamMetrics, transport: str) -> None:
        self._metrics = metrics
        self._transport = transport
        self._unreported = 0
        self._reported_at = time.monotonic()

    def add(self, events: int) -> None:
        self._unreported += events
        now = time.monotonic()
        if now - self._reported_at >= self.INTERVAL:
            self.flush()
            self._reported_at = now

    def flush(self) -> None:
        if self._unreported:
            self._metrics.sent(self._transport, self._unreported)
            self._unreported = 0


class CountedStream:
    """A stream's whole bookkeeping: counted as active while the block runs, its events tallied,
    and on the way out its duration recorded, as a disconnect if `cancellation` says so.

    Every transport (the pipeline, a WebSocket generation, the mock's whole answer) ends its
    streams the same way, so the gauge cannot leak on one path and not on another. A class, not
    a `@contextmanager` generator: an idle stream holds it for its whole life, and a suspended
    generator frame costs several times these five slots.
    """

    __slots__ = ("_began", "_cancellation", "_metrics", "_tally", "_transport")

    def __init__(self, metrics: StreamMetrics, transport: str,
                 cancellation: Cancellation) -> None:
        self._metrics = metrics
        self._transport = transport
        self._cancellation = cancellation
        self._began = 0.0
        self._tally: EventTally | None = None

    def __enter__(self) -> EventTally:
        self._began = time.monotonic()
        self._metrics.started(self._transport)
        self._tally = EventTally(self._metrics, self._transport)
        return self._tally

    def __exit__(self, *exc_info: object) -> None:
        assert self._tally is not None
        self._tally.flush()
        self._metrics.ended(self._transport, time.monotonic() - self._began,
                            self._cancellation.reason == DISCONNECT)


class Metrics:
    """The stream metrics, registered in their own registry (one per app), on which features
    register theirs (the proxy's `llm.metrics`, the log tails' gauge).

    `transports` are the `transport` label values the features serve, each series read as 0
    before its first stream; the core names none of them.

    Shared by every greenlet of a worker: prometheus_client's values are updated under a lock
    that is never held across a switch.

    Stream starts and ends are written once per turn of the event loop, not once per stream:
    in multiprocess mode every write takes a lock and writes an mmap, and a burst starts a
    hundred streams in one turn (gevent accepts up to 100 connections per wake-up). The writes
    run from the hub at the end of the turn, so another worker's scrape sees them within
    milliseconds; this worker's own `/metrics` writes them first.
    """

    def __init__(self, transports: Iterable[str] = (), multiprocess_dir: str = "") -> None:
        """`multiprocess_dir` is PROMETHEUS_MULTIPROC_DIR: where every worker's values are read
        from for `/metrics`; empty means this process's registry alone."""
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        reg = self.registry
        self.streams_active = Gauge("streams_active", "Streams open now.", ["transport"],
                                    registry=reg, multiprocess_mode="livesum")
        self.stream_events = Counter("stream_events", "Events sent to clients.", ["transport"],
                                     registry=reg)
        self.stream_disconnects = Counter("stream_disconnects",
                                          "Streams ended because the client went away.",
                                          ["transport"], registry=reg)
        self.stream_duration = Histogram("stream_duration_seconds", "How long streams lasted.",
                                         ["transport"], buckets=DURATION_BUCKETS, registry=reg)

        # Every series reads 0 before its first stream, and the hot paths find their child in
        # a dict instead of through `labels()`.
        self._events = {t: self.stream_events.labels(t) for t in transports}
        for transport in self._events:
            self.streams_active.labels(transport)
            self.stream_disconnects.labels(transport)
        self._active_change: dict[str, int] = {}
        self._ends: list[tuple[str, float, bool]] = []
        self._write_scheduled = False
        self._before_scrape: list[Callable[[], None]] = []

    def on_scrape(self, write: Callable[[], None]) -> None:
        """Call `write` before each exposition: a feature that writes its figures now and then
        (the broker's, once a second) writes them first, so this worker's own are current."""
        self._before_scrape.append(write)

    # StreamMetrics
    def started(self, transport: str) -> None:
        self._active_change[transport] = self._active_change.get(transport, 0) + 1
        self._write_at_turn_end()

    def sent(self, transport: str, events: int) -> None:
        child = self._events.get(transport) or self.stream_events.labels(transport)
        child.inc(events)

    def ended(self, transport: str, seconds: float, disconnected: bool) -> None:
        self._active_change[transport] = self._active_change.get(transport, 0) - 1
        self._ends.append((transport, seconds, disconnected))
        self._write_at_turn_end()

    def _write_at_turn_end(self) -> None:
        if not self._write_scheduled:
            self._write_scheduled = True
            get_hub().loop.run_callback(self.write_pending)

    def write_pending(self) -> None:
        """Write the starts and ends reported since the last write: one gauge change per
        transport (nothing if as many ended as started), one observation per ended stream."""
        self._write_scheduled = False
        changes, self._active_change = self._active_change, {}
        ends, self._ends = self._ends, []
        for transport, change in changes.items():
            if change:
                self.streams_active.labels(transport).inc(change)
        for transport, seconds, disconnected in ends:
            self.stream_duration.labels(transport).observe(seconds)
            if disconnected:
                self.stream_disconnects.labels(transport).inc()

    def exposition(self) -> tuple[bytes, str]:
        """The text `/metrics` serves, with its content type: every worker's figures."""
        self.write_pending()
        for write in self._before_scrape:
            write()
        if self.multiprocess_dir:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)
        else:
            registry = self.registry
        return generate_latest(registry), CONTENT_TYPE_LATEST
