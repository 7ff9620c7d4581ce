"""`RunTopic`: a running generation's topic, in the broker and, first, in this worker's memory.

With a shared broker (Redis) the run's events are also kept in an in-process memory broker,
at the same positions. Viewers on the run's worker read that copy, so a token reaches them as
soon as the model gave it, never behind a round trip, and a burst of new streams costs no
round trip per viewer and no `XREAD` delivery per token. Tokens are appended to the copy at
once and sent to the broker behind it by one greenlet, one write for everything queued while
the last write was under way (with Redis, a round trip per batch, never per token). Viewers on
other workers and resumes read the broker, at most one write behind.

Client-visible ids are token positions, the same in both; only the batching, and so the broker
ids, may differ. An end written by another worker (a `DELETE`, an orphaned run's failure) is
copied in when the run learns of it (`adopt_end`). Without a shared broker, the broker is the
copy and every append goes straight to it.

The copy is kept LOCAL_RETAIN_SECONDS after the end, for the viewers still reading it; viewers
that come later read the broker.
"""

from __future__ import annotations

from collections.abc import Callable

import gevent
from gevent.event import Event as Signal
from gevent.lock import Semaphore

from broker import AT_END, Broker, BrokerUnavailable

from . import record

LOCAL_RETAIN_SECONDS = 300.0
MAX_TOKENS_PER_EVENT = 256
"""Most tokens in one event: bounds what a viewer decodes in one go."""


class RunTopic:
    """The topic `name` in `broker`, kept first in `local` (the same object if not shared).

    `on_ended` is called (from the sending greenlet) when the broker refuses tokens because
    the topic ended there.
    """

    def __init__(self, broker: Broker, local: Broker, name: str, *, ttl_seconds: float,
                 max_seconds: float) -> None:
        self.broker = broker
        self.local = local
        self.name = name
        self.on_ended: Callable[[], None] = lambda: None
        self._ttl = ttl_seconds
        self._max = max_seconds
        self._order = Semaphore()  # one write to the broker at a time, in order
        self._unsent: list[tuple[int, list[str]]] = []  # (first index, texts) for the broker
        self._queued = Signal()
        self._sender: gevent.Greenlet | None = None
        self._opening: tuple[str, str, float] | None = None  # the start, not yet in the broker
        self.in_broker = Signal()  # the start is in the broker
        self.ended = False

    @property
    def mirrored(self) -> bool:
        return self.local is not self.broker

    def open(self, data: str, lease: str, lease_seconds: float) -> None:
        """Write the start: in the copy at once, in the broker (after the runner's `lease`,
        so that nobody takes the run for dead) behind it; see `flush` to wait for that."""
        self._opening = (data, lease, lease_seconds)
        if not self.mirrored:
            self.flush()
            return
        self._copy(record.START, data, 0, False)
        self._wake_sender()

    def flush(self) -> None:
        """Write what is queued to the broker now (BrokerUnavailable if it cannot)."""
        with self._order:
            self._send_unsent()

    def append(self, event: str, data: str, *, position: int, final: bool = False,
               unless_leased: str | None = None) -> str | None:
        """`publish_open` on the broker (after every queued token), then the same on the
        copy; None if the topic ended there (or the lease is held). A final event starts the
        topic's retention (its TTL); the first one keeps it at most the run's maximum time
        plus the TTL."""
        retain = self._ttl if final else self._max + self._ttl if position == 0 else None
        with self._order:
            self._send_unsent()
            written = self.broker.publish_open(self.name, event, data, final=final,
                                               unless_leased=unless_leased, position=position,
                                               retain_seconds=retain)
            if written is not None and final:
                self.ended = True
            if written is not None and self.mirrored:
                self._copy(event, data, AT_END if final else position, final)
        return written

    def tokens(self, first: int, texts: list[str]) -> bool:
        """Append tokens `first`.. (at most MAX_TOKENS_PER_EVENT); False if the topic ended."""
        data = record.tokens_data(first, texts)
        if not self.mirrored:
            return self.broker.publish_open(self.name, record.TOKENS, data,
                                            position=first + len(texts)) is not None
        if self.ended or self._copy(record.TOKENS, data, first + len(texts), False) is None:
            return False
        self._unsent.append((first, texts))
        self._wake_sender()
        return True

    def _wake_sender(self) -> None:
        if self._sender is None:
            self._sender = gevent.spawn(self._send_forever)
        self._queued.set()

    def adopt_end(self) -> bool:
        """Whether the broker's topic ended; if so, its end is copied here."""
        try:
            latest = self.broker.latest(self.name)
        except BrokerUnavailable:
            return False
        if not latest or not latest[-1].final:
            return False
        self.ended = True
        if self.mirrored:
            end = latest[-1]
            self._copy(end.event, end.data, AT_END, final=True)
        return True

    def end_here(self, event: str, data: str) -> None:
        """End the copy only (the broker cannot be reached): its viewers are not left waiting."""
        self.ended = True
        if self.mirrored:
            self._copy(event, data, AT_END, final=True)

    def close(self) -> None:
        if self._sender is not None:
            self._sender.kill(block=False)

    def _send_forever(self) -> None:
        while True:
            self._queued.wait()
            self._queued.clear()
            with self._order:
                try:
                    self._send_unsent()
                except BrokerUnavailable:
                    continue  # kept: the next write, or the final's, tries again

    def _send_unsent(self) -> None:
        """Write what is queued: the start, then tokens joined into events of at most
        MAX_TOKENS_PER_EVENT."""
        if self._opening is not None:
            data, lease, lease_seconds = self._opening
            self.broker.lease(lease, lease_seconds)
            self.broker.publish_open(self.name, record.START, data, position=0,
                                     retain_seconds=self._max + self._ttl)
            self._opening = None
            self.in_broker.set()
        while self._unsent and not self.ended:
            first, texts = self._unsent[0]
            joined = 1
            while joined < len(self._unsent) and \
                    len(texts) + len(self._unsent[joined][1]) <= MAX_TOKENS_PER_EVENT:
                texts = texts + self._unsent[joined][1]
                joined += 1
            written = self.broker.publish_open(self.name, record.TOKENS,
                                               record.tokens_data(first, texts),
                                               position=first + len(texts))
            del self._unsent[:joined]  # only once written: a failed write is tried again
            if written is None:  # ended there: by a DELETE, a grace, an orphan's failure
                self._unsent.clear()
                self.adopt_end()
                self.on_ended()

    def _copy(self, event: str, data: str, position: int, final: bool) -> str | None:
        retain = (LOCAL_RETAIN_SECONDS if final
                  else self._max + LOCAL_RETAIN_SECONDS if position == 0 else None)
        return self.local.publish_open(self.name, event, data, final=final, position=position,
                                       retain_seconds=retain)
