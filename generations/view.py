"""`GenerationView`: one viewer of a generation, as a pipeline source of generation events.

It reads the generation's topic through a broker `Subscription` (history, then live, without a
gap or a repeat) and hands on what comes after the viewer's last token: the `start` only to a
viewer that has not seen it, tokens after `after`, then the end. While the topic is quiet it
checks the runner's lease (settling a generation whose worker died) and, watching from a worker
other than the runner's, renews the viewers lease that keeps the run's grace from running out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import suppress

from broker import BrokerUnavailable, Notice, Subscription
from generation.events import Reset, Start, Token
from streaming.cancellation import Cancellation
from streaming.failure import Failure
from streaming.sources import IDLE

from . import record

EXPIRED = Reset("generation_expired")
FELL_BEHIND = Failure("stream_error", "this viewer fell behind the generation and was "
                                      "disconnected; reconnect with its Last-Event-ID to resume")
_NOTICES = {"reset": EXPIRED, "overflow": FELL_BEHIND}


class GenerationView:
    """The events of generation `id` for a viewer whose last token was `after` (-1: it saw the
    start only; None: nothing yet).

    `on_tick` runs while the topic is quiet (at least every `tick` seconds); `on_end` when the
    topic's final event arrives; `on_close` once, when the view ends; `before_first` before
    anything is sent (a viewer of the run's own copy waits for the start to be in the broker,
    so that its reconnect to any worker finds the generation).
    """

    def __init__(self, id_: str, subscription: Subscription, after: int | None, *,
                 tick: float, on_tick: Callable[[], None], on_end: Callable[[], None],
                 on_close: Callable[[], None],
                 before_first: Callable[[], object] = lambda: None) -> None:
        self.id = id_
        self._subscription = subscription
        self._after = -2 if after is None else after  # the start's place is -1
        self._tick = tick
        self._on_tick = on_tick
        self._on_end = on_end
        self._on_close = on_close
        self._before_first = before_first

    def batches(self, idle: float | None,
                cancellation: Cancellation) -> Iterator[list | object]:
        wait = self._tick if idle is None else min(idle, self._tick)
        quiet_since = time.monotonic()
        try:
            for batch in self._subscription.batches(wait, cancellation):
                if batch is IDLE:
                    with suppress(BrokerUnavailable):  # if so, the subscription reports it
                        self._on_tick()
                    if idle is not None and time.monotonic() - quiet_since >= idle:
                        quiet_since = time.monotonic()
                        yield IDLE
                    continue
                items = self._new(batch)
                if items:
                    if self._before_first is not None:
                        self._before_first()
                        self._before_first = None
                    quiet_since = time.monotonic()
                    yield items
        finally:
            self._on_close()

    def _new(self, batch: list) -> list:
        items: list = []
        for event in batch:
            if isinstance(event, Notice):
                items.append(_NOTICES.get(event.event) or Failure(
                    "broker_unavailable", "the message broker is unreachable; reconnect with "
                                          "Last-Event-ID to resume"))
                continue
            if event.final:
                self._on_end()
            for item in record.decode(event, self.id):
                place = item.index if type(item) is Token else -1 if type(item) is Start \
                    else None
                if place is None or place > self._after:
                    items.append(item)
                    if place is not None:
                        self._after = place
        return items
