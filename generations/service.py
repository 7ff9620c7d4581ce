"""`Generations`: start answers that outlive their connection, and answer for any of them.

All state is in the broker, so any worker or instance reads, watches, resumes or cancels any
generation; only the run itself (the model's connection) lives in the worker that started it.
Reading a generation, or watching it while it is quiet, also settles one whose worker died:
its runner lease expired without an end, so it is ended `failed` there and then, atomically,
by whoever notices first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress

from broker import AT_END, Broker, BrokerUnavailable, format_id, make_broker
from generation.backends import Backend
from generation.params import GenerationParams
from streaming.shutdown import Lifetimes

from . import record
from .runner import Run, RunLimits
from .topic import RunTopic
from .view import GenerationView
from .writer import BrokerWriter

ORPHANED = "the worker running the generation stopped"
START_WAIT_SECONDS = 5.0
"""Longest a viewer of this worker's copy waits for the start to be in the broker."""


class UnknownGeneration(LookupError):
    """No generation has this id (or it ended longer ago than it is kept)."""


class Generations:
    """The generations of one app, answered by `backend`."""

    def __init__(self, broker: Broker, backend: Backend, limits: RunLimits,
                 grace_seconds: float, lifetimes: Lifetimes | None = None) -> None:
        self.broker = broker
        self.lifetimes = lifetimes
        # Where this worker's viewers of its own runs read: a copy in memory (see topic.py).
        self.local = make_broker("", 1, broker.queue_size) if broker.shared else broker
        self.writer = BrokerWriter(broker)
        self.backend = backend
        self.limits = limits
        self.grace_seconds = grace_seconds
        self._running: dict[str, Run] = {}

    def start(self, params: GenerationParams, base_url: str, *, graced: bool = False,
              resumable: bool = True, stored: bool = False, id_: str | None = None) -> Run:
        """Start answering `params` in this worker; with `graced`, the run is cancelled once
        nobody watched it for GENERATION_GRACE_SECONDS (a direct stream's answer), or as its
        last viewer leaves if that viewer could not resume it (`resumable` false). With
        `stored`, it returns once the generation is in the broker, for any worker to find
        (BrokerUnavailable if it cannot be); a direct stream's first viewer reads this
        worker's copy, and need not wait. `id_` is the new generation's id (by default a new
        one)."""
        id_ = id_ or record.new_id()
        topic = RunTopic(self.broker, self.local, self.writer, record.topic(id_),
                         ttl_seconds=self.limits.ttl_seconds, max_seconds=self.limits.max_seconds)
        topic.open(record.start_data(self.backend.model, params.tokens, self.backend.name),
                   record.runner_lease(id_), self.limits.lease_seconds)
        if stored:
            topic.flush()
        run = Run(id_, params, self.backend, topic, self.limits, base_url,
                  None if not graced else self.grace_seconds if resumable else 0.0,
                  self.lifetimes)
        self._running[id_] = run
        run.start().link(lambda _: self._running.pop(id_, None))
        return run

    def state(self, id_: str) -> record.GenerationState:
        """The generation so far; one whose runner died is ended `failed` first."""
        state = self._read(id_)
        if state.status == record.RUNNING and self.fail_if_orphaned(id_):
            state = self._read(id_)
        return state

    def _read(self, id_: str) -> record.GenerationState:
        events = self.broker.read_after(record.topic(id_), (0, 0), 256)
        if not events:
            raise UnknownGeneration(id_)
        state = record.GenerationState(id_)
        while events:
            for event in events:
                state.add(event)
            events = self.broker.read_after(record.topic(id_), events[-1].key, 256)
        return state

    def fail_if_orphaned(self, id_: str) -> bool:
        """End the generation `failed` if it has not ended and nobody holds its runner lease."""
        if id_ in self._running:
            return False
        failed = self.broker.publish_open(
            record.topic(id_), record.FAILED_EVENT,
            record.failed_data("generation_failed", ORPHANED), final=True,
            unless_leased=record.runner_lease(id_), position=AT_END,
            retain_seconds=self.limits.ttl_seconds)
        return failed is not None

    def cancel(self, id_: str) -> record.GenerationState:
        """End the generation `cancelled` (a no-op once it ended) and cut its model off: at
        once in this worker, within a broker delivery in any other."""
        self.state(id_)  # UnknownGeneration, or a dead runner's generation settled first
        run = self._running.get(id_)
        if run is None:
            self.broker.publish_open(record.topic(id_), record.END,
                                     record.end_data("cancelled"), final=True, position=AT_END,
                                     retain_seconds=self.limits.ttl_seconds)
        else:
            if run.topic.append(record.END, record.end_data("cancelled"), final=True,
                                position=AT_END) is None:
                run.topic.adopt_end()
            run.end_elsewhere()
        return self.state(id_)

    def watch(self, id_: str, after: int | None, *, counted: Run | None = None
              ) -> GenerationView | None:
        """A view of the generation for a viewer whose last token was `after` (see
        GenerationView); None when the viewer already had the end (`after` is the count).

        `counted` is the run this viewer was already counted by (its starter). Raises
        UnknownGeneration.
        """
        run = counted or self._running.get(id_)
        store = self.broker if run is None else self.local
        # Its starter knows it exists, and has no last token.
        start = (0, 0) if counted is not None else self._resume_point(store, id_, after)
        if start is None:
            return None
        subscription = store.subscribe(record.topic(id_), format_id(start), kept_whole=True)
        if counted is None and run is not None:
            run.joined()
        if run is None:
            return GenerationView(id_, subscription, after, tick=self.limits.tick,
                                  on_tick=self._ticker(id_), on_end=_nothing,
                                  on_close=_nothing)
        # The run is here: alive, and it counts this viewer itself.
        return GenerationView(id_, subscription, after, tick=self.limits.tick,
                              on_tick=_nothing, on_end=run.end_elsewhere, on_close=run.left,
                              before_first=lambda: run.topic.in_broker.wait(START_WAIT_SECONDS))

    @staticmethod
    def _resume_point(store: Broker, id_: str, after: int | None) -> tuple[int, int] | None:
        """Where a viewer whose last token is `after` reads from: position after+1 holds the
        batch that starts past it. None when it had the end; UnknownGeneration if none.

        The broker may be a write behind what a viewer of the run's own worker had (that
        worker's copy goes first, see topic.py), so a running generation is read from its
        last position, and the view drops what the viewer had; an ended one treats any
        `after` from its count on as a viewer that had the end."""
        latest = store.latest(record.topic(id_))
        if not latest:
            raise UnknownGeneration(id_)
        last = latest[-1]
        if after is None:
            return (0, 0)
        if last.final and after >= last.key[0]:
            return None
        return (min(after + 1, last.key[0]), 0)

    def _ticker(self, id_: str) -> Callable[[], None]:
        """What a viewer on another worker than the run's does while the topic is quiet:
        hold the viewers lease (the run's grace), and settle a run that died."""
        renew_for = self.grace_seconds + 2 * self.limits.tick
        last = [0.0]

        def tick() -> None:
            if time.monotonic() - last[0] >= self.limits.tick:
                last[0] = time.monotonic()
                with suppress(BrokerUnavailable):
                    self.broker.lease(record.viewers_lease(id_), renew_for)
                self.fail_if_orphaned(id_)

        tick()
        return tick


def _nothing() -> None:
    pass
