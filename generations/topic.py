"""`RunTopic`: a running generation's topic, in the broker and, first, in this worker's memory.

With a shared broker (Redis) the run's events are also kept in an in-process memory broker,
at the same positions. Viewers on the run's worker read that copy, so a token reaches them as
soon as the model gave it, never behind a round trip, and a burst of new streams costs no
round trip per viewer and no `XREAD` delivery per token. Tokens are appended to the copy at
once and queued for the broker, which the worker's `BrokerWriter` writes for all runs at once
(one round trip for everything queued while the last one was under way). Viewers on other
workers, and resumes there, read the broker, at most one write behind.

Client-visible ids are token positions, the same in both; only the batching, and so the broker
ids, may differ. An end written by another worker (a `DELETE`, an orphaned run's failure) is
copied in when the run learns of it (`adopt_end`). Without a shared broker, the broker is the
copy and every append goes straight to it.

A run's writes go out one turn at a time (`take_turn`): the writer's, or the run's own when it
writes its end after everything queued, so the broker takes them in order.

The copy is kept LOCAL_RETAIN_SECONDS after the end, for the viewers still reading it; viewers
that come later read the broker.
"""

from __future__ import annotations

from collections.abc import Callable

from gevent.event import Event as Signal
from gevent.lock import Semaphore

from broker import AT_END, Append, Broker, BrokerUnavailable, Lease

from . import record
from .writer import BrokerWriter

LOCAL_RETAIN_SECONDS = 300.0
MAX_TOKENS_PER_EVENT = 256
"""Most tokens in one event: bounds what a viewer decodes in one go."""


class RunTopic:
    """The topic `name` in `broker`, kept first in `local` (the same object if not shared),
    its queued writes sent by `writer`.

    `on_ended` is called when the broker refuses tokens because the topic ended there.
    """

    def __init__(self, broker: Broker, local: Broker, writer: BrokerWriter, name: str, *,
                 ttl_seconds: float, max_seconds: float) -> None:
        self.broker = broker
        self.local = local
        self.name = name
        self.on_ended: Callable[[], None] = lambda: None
        self.in_broker = Signal()  # the start is in the broker
        self.ended = False
        self._writer = writer
        self._ttl = ttl_seconds
        self._max = max_seconds
        self._turn = Semaphore()
        self._opening: tuple[str, str, float] | None = None  # the start, not yet in the broker
        self._unsent: list[tuple[int, list[str]]] = []  # (first index, texts) for the broker
        self._sending: list[int] = []  # how many of _unsent each queued write carries

    @property
    def mirrored(self) -> bool:
        return self.local is not self.broker

    def open(self, data: str, lease: str, lease_seconds: float) -> None:
        """Write the start: in the copy at once, in the broker (after the runner's `lease`,
        so that nobody takes the run for dead) behind it; `flush` waits for that."""
        self._opening = (data, lease, lease_seconds)
        if not self.mirrored:
            self.flush()
            return
        self._copy(record.START, data, 0, False)
        self._writer.due(self)

    def flush(self) -> None:
        """Write what is queued to the broker now (BrokerUnavailable if it cannot)."""
        with self._turn:
            self._send_queued()

    def append(self, event: str, data: str, *, position: int, final: bool = False,
               unless_leased: str | None = None) -> str | None:
        """`publish_open` on the broker (after every queued write), then the same on the
        copy; None if the topic ended there (or the lease is held). A final event starts the
        topic's retention (its TTL)."""
        with self._turn:
            self._send_queued()
            written = self.broker.publish_open(
                self.name, event, data, final=final, unless_leased=unless_leased,
                position=position, retain_seconds=self._ttl if final else None)
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
        self._writer.due(self)
        return True

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

    # The writer's side: a turn, the writes queued, what became of them.

    def take_turn(self) -> bool:
        return self._turn.acquire(blocking=False)

    def end_turn(self) -> None:
        self._turn.release()

    def queued_writes(self) -> list[Append | Lease]:
        """The start (after its lease), then the tokens, joined into events of at most
        MAX_TOKENS_PER_EVENT; `written` must follow with their results."""
        writes: list[Append | Lease] = []
        if self._opening is not None:
            data, lease, lease_seconds = self._opening
            writes += [Lease(lease, lease_seconds),
                       Append(self.name, record.START, data, position=0,
                              retain_seconds=self._max + self._ttl)]
        self._sending = []
        at = 0
        while at < len(self._unsent) and not self.ended:
            first, texts = self._unsent[at]
            joined = 1
            while at + joined < len(self._unsent) and \
                    len(texts) + len(self._unsent[at + joined][1]) <= MAX_TOKENS_PER_EVENT:
                texts = texts + self._unsent[at + joined][1]
                joined += 1
            writes.append(Append(self.name, record.TOKENS, record.tokens_data(first, texts),
                                 position=first + len(texts)))
            self._sending.append(joined)
            at += joined
        return writes

    def written(self, results: list[str | None]) -> None:
        if self._opening is not None:
            self._opening = None
            self.in_broker.set()
            results = results[2:]
        sent = sum(self._sending)
        del self._unsent[:sent]  # only now: a failed write is tried again
        if any(result is None for result in results) and not self.ended:
            # Ended there: by a DELETE, a grace, an orphan's failure.
            self._unsent.clear()
            self.adopt_end()
            self.on_ended()

    def _send_queued(self) -> None:
        writes = self.queued_writes()
        if writes:
            self.written(self.broker.apply(writes))

    def _copy(self, event: str, data: str, position: int, final: bool) -> str | None:
        retain = (LOCAL_RETAIN_SECONDS if final
                  else self._max + LOCAL_RETAIN_SECONDS if position == 0 else None)
        return self.local.publish_open(self.name, event, data, final=final, position=position,
                                       retain_seconds=retain)
