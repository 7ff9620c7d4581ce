"""The broker's Prometheus metrics, registered on the registry it is given (the app's, `/metrics`).

`broker_published_total`, `broker_publish_seconds`, `broker_delivered_total`,
`broker_overflows_total` and `broker_subscribers`, each labelled with the `backend`, and for
Redis `broker_reader_lag_seconds` and `broker_reconnects_total`; docs/api.md says what each
counts.

The delivery path is kept as it was: the fan-out counts in plain ints, once per hand-over
(`Fanout.handed_over`, `Fanout.overflows`), and a repeating timer of the worker's loop writes
what changed to prometheus once a second (so does a scrape of this worker, before it reads).
In multiprocess mode every write takes a lock and writes an mmap (streaming/metrics.py), which
per put into ten thousand mailboxes would cost more than the put. A publish is observed as it
happens: one counter and one histogram write.
"""

from __future__ import annotations

import weakref
from typing import Any

from gevent import get_hub
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .base import Broker

PUBLISH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)
INTERVAL = 1.0
"""Seconds between writes of the fan-out's counts."""


class BrokerMetrics:
    """Reports `broker`'s figures on `registry`; `start()` begins the writes once a second.

    Shared by the greenlets of one worker, as prometheus_client's values are.
    """

    def __init__(self, broker: Broker, registry: CollectorRegistry) -> None:
        self._broker = broker
        backend = broker.kind
        self._published = Counter("broker_published", "Events published through the broker.",
                                  ["backend"], registry=registry).labels(backend)
        self._publish_seconds = Histogram("broker_publish_seconds",
                                          "Time one publish call to the broker took.",
                                          ["backend"], buckets=PUBLISH_BUCKETS,
                                          registry=registry).labels(backend)
        self._delivered = Counter("broker_delivered",
                                  "Events handed to local subscribers (events x subscribers).",
                                  ["backend"], registry=registry).labels(backend)
        self._overflows = Counter("broker_overflows",
                                  "Subscribers dropped with event: overflow for falling behind.",
                                  ["backend"], registry=registry).labels(backend)
        self._subscribers = Gauge("broker_subscribers", "Subscriptions following a topic now.",
                                  ["backend"], registry=registry,
                                  multiprocess_mode="livesum").labels(backend)
        self._reader = getattr(broker, "reader", None)  # Redis: the StreamReader
        if self._reader is not None:
            self._lag = Gauge("broker_reader_lag_seconds",
                              "How far behind the newest entry it read the Redis reader was.",
                              registry=registry, multiprocess_mode="livemax")
            self._reconnects = Counter("broker_reconnects",
                                       "Times the Redis reader lost its connection.",
                                       registry=registry)
        self._written = {"delivered": 0, "overflows": 0, "reconnects": 0}
        self._subscribers_written = -1
        self._timer: Any = None
        broker.on_publish = self.published

    def published(self, events: int, seconds: float) -> None:
        """A publish call appended `events` events in `seconds` (the broker calls it)."""
        if events:
            self._published.inc(events)
        self._publish_seconds.observe(seconds)

    def start(self) -> None:
        """Write the fan-out's counts once a second from this thread's loop. The timer keeps
        neither the loop nor this object alive: it stops once the app that holds it is gone
        (tests build many apps)."""
        if self._timer is not None:
            return
        timer = self._timer = get_hub().loop.timer(INTERVAL, INTERVAL, ref=False)
        alive = weakref.ref(self)

        def tick() -> None:
            metrics = alive()
            if metrics is None:
                timer.close()
            else:
                metrics.write()
        timer.start(tick)

    def stop(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.close()

    def write(self) -> None:
        """Write what changed since the last write: a few values, whatever the traffic."""
        fanout = self._broker.fanout
        self._add("delivered", fanout.handed_over, self._delivered)
        self._add("overflows", fanout.overflows, self._overflows)
        subscribers = fanout.subscribers()
        if subscribers != self._subscribers_written:
            self._subscribers.set(subscribers)
            self._subscribers_written = subscribers
        if self._reader is not None:
            self._add("reconnects", self._reader.reconnects, self._reconnects)
            self._lag.set(self._reader.lag_seconds)

    def _add(self, name: str, total: int, counter: Any) -> None:
        change = total - self._written[name]
        if change:
            counter.inc(change)
            self._written[name] = total

