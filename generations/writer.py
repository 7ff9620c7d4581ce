"""`BrokerWriter`: one greenlet per worker writing every run's queued events to the broker.

Runs queue their events in their `RunTopic` and say so here; the writer takes what every run
queued while its last write was under way and sends it all with one `Broker.apply`, one round
trip to Redis however many generations run. Two hundred streams of a token every 20 ms cost a
few hundred round trips a second, not ten thousand, and no run waits behind the others' turns
at a pooled connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import gevent
from gevent.event import Event as Signal

from broker import Broker, BrokerUnavailable

if TYPE_CHECKING:
    from .topic import RunTopic

RETRY_SECONDS = 0.5
"""How long the writer waits before trying again when the broker could not be reached."""


class BrokerWriter:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._due: dict[RunTopic, None] = {}  # an ordered set: runs with writes queued
        self._signal = Signal()
        self._greenlet: gevent.Greenlet | None = None

    def due(self, topic: RunTopic) -> None:
        """`topic` has writes queued: send them with the next round trip."""
        self._due[topic] = None
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)
        self._signal.set()

    def _run(self) -> None:
        while True:
            self._signal.wait()
            self._signal.clear()
            if not self.write_due():
                gevent.sleep(RETRY_SECONDS)

    def write_due(self) -> bool:
        """Send every due run's writes in one round trip; False if the broker failed."""
        topics, self._due = list(self._due), {}
        taken = [topic for topic in topics if topic.take_turn()]
        for topic in topics:
            if topic not in taken:  # writing its end itself: the next round, if still due
                self._due[topic] = None
        batches = [(topic, topic.queued_writes()) for topic in taken]
        writes = [write for _, queued in batches for write in queued]
        try:
            results = self._broker.apply(writes) if writes else []
        except BrokerUnavailable:
            for topic in taken:
                topic.end_turn()
                self._due[topic] = None
            return False
        done = 0
        for topic, queued in batches:
            topic.written(results[done:done + len(queued)])
            done += len(queued)
            topic.end_turn()
        return True
