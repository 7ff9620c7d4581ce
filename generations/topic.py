"""`RunTopic`: a running generation's topic, written to the broker and mirrored in this worker.

With a shared broker (Redis), every event the run writes is also appended to an in-process
memory broker with the same position, so it gets the same id (`<position>-<n>` counts the same
way in both). Viewers on the run's worker read that copy: a burst of new streams costs no round
trip per viewer and no `XREAD` delivery per token, only the run's one write per batch. An end
written by another worker (a `DELETE`, an orphaned run's failure) is copied in when the run
learns of it (`adopt_end`). Without a shared broker the broker is itself the local copy.

Appends go through one lock per topic, so the copy takes them in the broker's order (a `DELETE`
here racing the run's write of a batch must not reach the copy first), and ids stay equal.

The copy is kept LOCAL_RETAIN_SECONDS after the end, for the viewers still reading it; viewers
that come later read the broker.
"""

from __future__ import annotations

from gevent.lock import Semaphore

from broker import Broker, BrokerUnavailable

LOCAL_RETAIN_SECONDS = 300.0


class RunTopic:
    """The topic `name` in `broker`, mirrored in `local` (the same object if not shared)."""

    def __init__(self, broker: Broker, local: Broker, name: str, *, ttl_seconds: float,
                 max_seconds: float) -> None:
        self.broker = broker
        self.local = local
        self.name = name
        self._ttl = ttl_seconds
        self._max = max_seconds
        self._order = Semaphore()

    @property
    def mirrored(self) -> bool:
        return self.local is not self.broker

    def append(self, event: str, data: str, *, position: int, final: bool = False,
               unless_leased: str | None = None) -> str | None:
        """`publish_open` on the broker, then the same on the copy; None if the topic ended
        (or the lease is held). A final event starts the topic's retention (its TTL); the
        first one keeps it for at most the run's maximum time plus the TTL."""
        retain = self._ttl if final else self._max + self._ttl if position == 0 else None
        with self._order:
            written = self.broker.publish_open(self.name, event, data, final=final,
                                               unless_leased=unless_leased, position=position,
                                               retain_seconds=retain)
            if written is not None and self.mirrored:
                self._copy(event, data, position, final)
        return written

    def adopt_end(self) -> bool:
        """Whether the broker's topic ended; if so, its end is copied here."""
        with self._order:
            try:
                latest = self.broker.latest(self.name)
            except BrokerUnavailable:
                return False
            if not latest or not latest[-1].final:
                return False
            if self.mirrored:
                end = latest[-1]
                self._copy(end.event, end.data, end.key[0], final=True)
            return True

    def _copy(self, event: str, data: str, position: int, final: bool) -> None:
        retain = (LOCAL_RETAIN_SECONDS if final
                  else self._max + LOCAL_RETAIN_SECONDS if position == 0 else None)
        self.local.publish_open(self.name, event, data, final=final, position=position,
                                retain_seconds=retain)
