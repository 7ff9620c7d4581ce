"""`Run`: one generation answered in this worker, its tokens handed to its topic in batches.

The model's answer is read in the run's greenlet; what it yields is queued, and a second
greenlet hands what one loop turn produced to the topic as one event (`topic.py`: at once into
the worker's copy, then, with everything other runs queued, to the broker). The answer ends
with one final event, unless the topic was ended meanwhile (a `DELETE`, a viewer grace that
ran out): the run then stops and cuts the model off. An end written on this worker stops it
at once; one written on another worker, at the run's next write, or (a model still thinking)
at its next tick, within a second. A stopping worker ends its runs `failed` (`server_restart`)
before its streams, so the viewers it tells to reconnect find that end elsewhere.

Viewers on this worker are counted here (`joined`/`left`); one on another worker holds the
generation's viewers lease instead. A run started with a grace is cancelled once it has had no
viewer for that long, so an answer nobody waits for stops costing tokens.
"""

from __future__ import annotations

import logging
import time
from contextlib import suppress
from dataclasses import dataclass

import gevent
from gevent.event import AsyncResult, Event

from broker import AT_END, BrokerUnavailable
from generation.backends import Answer, AnswerFailed, Backend, ModelError
from generation.events import End, Token
from generation.params import GenerationParams
from streaming.cancellation import Cancellation
from streaming.failure import Failure
from streaming.shutdown import Lifetimes, is_restart

from . import record
from .topic import MAX_TOKENS_PER_EVENT, RunTopic

log = logging.getLogger(__name__)

TIMED_OUT = Failure("generation_timeout", "the generation ran past its maximum time")
BROKEN = Failure("stream_error", "the generation failed")
RESTARTED = Failure("server_restart", "the worker answering it stopped before the end; "
                                      "start the generation again")
UNAVAILABLE = record.failed_data("broker_unavailable", "the message broker is unreachable")


@dataclass(frozen=True)
class RunLimits:
    """How long a run may take, how long it is kept, how its liveness is shown."""

    max_seconds: float
    ttl_seconds: float
    lease_seconds: float

    @property
    def tick(self) -> float:
        """How often the lease is renewed and far viewers are looked for."""
        return min(self.lease_seconds / 3, 1.0)


class Run:
    """`params` answered by `backend` as generation `id`; `grace` None runs to the end."""

    def __init__(self, id_: str, params: GenerationParams, backend: Backend, topic: RunTopic,
                 limits: RunLimits, base_url: str, grace: float | None,
                 lifetimes: Lifetimes | None = None) -> None:
        self.id = id_
        self.params = params
        self.topic = topic
        self.cancellation = Cancellation()
        self.opened = AsyncResult()  # None once the answer began, or the ModelError
        self._backend = backend
        self._broker = topic.broker  # for its leases
        self._limits = limits
        self._base_url = base_url
        self._grace = grace
        self._lifetimes = lifetimes
        self._pending: list[str] = []
        self._published = 0  # tokens handed to the topic
        self._written_at = time.monotonic()
        self._answer_over = False
        self._wrote = Event()
        self._viewers = 0
        self._alone_since = time.monotonic()
        self._grace_timer: gevent.Greenlet | None = None
        self.greenlet: gevent.Greenlet | None = None

    def start(self) -> gevent.Greenlet:
        self.topic.on_ended = self.end_elsewhere
        self.greenlet = gevent.spawn(self._run)
        return self.greenlet

    # Viewers of this worker.

    def joined(self) -> None:
        self._viewers += 1
        if self._grace_timer is not None:
            self._grace_timer.kill(block=False)
            self._grace_timer = None

    def left(self) -> None:
        self._viewers -= 1
        if self._viewers == 0 and self._grace is not None and not self.cancellation.cancelled:
            self._alone_since = time.monotonic()
            self._grace_timer = gevent.spawn_later(self._grace, self._end_unwatched)

    def _end_unwatched(self) -> None:
        """Cancel, unless a viewer elsewhere holds the viewers lease (atomic with the end)."""
        self._grace_timer = None
        try:
            ended = self.topic.append(record.END, record.end_data("cancelled"), final=True,
                                      unless_leased=record.viewers_lease(self.id),
                                      position=AT_END)
        except BrokerUnavailable:
            return  # the next tick tries again
        if ended is not None:
            self.cancellation.cancel("unwatched")

    # The answer.

    def _run(self) -> None:
        # A stopping worker takes the model's connection with it: end the answer `failed`
        # now rather than leave its viewers to find the lease expired.
        tracked = self._lifetimes.track(self.cancellation, aged=False) if self._lifetimes else None
        keeper = gevent.spawn(self._keep_alive)
        writer = gevent.spawn(self._write_pending)
        limit = gevent.spawn_later(self._limits.max_seconds, self.cancellation.cancel, "too long")
        try:
            ending = self._answer()
            self._answer_over = True
            self._wrote.set()
            writer.join()
            if ending is not None:
                self._publish_final(*ending)
        except BrokerUnavailable:
            log.warning("generation %s stopped: the broker is unreachable", self.id)
            self.topic.end_here(record.FAILED_EVENT, UNAVAILABLE)
        finally:
            for greenlet in (keeper, writer, limit, self._grace_timer):
                if greenlet is not None:
                    greenlet.kill(block=False)
            self._release_lease()
            if tracked is not None:
                tracked.release()

    def _answer(self) -> tuple[str, str] | None:
        """Read the model's answer; the final event to write (None: the topic ended already)."""
        try:
            answer = self._backend.open(self.params, self.cancellation, self._base_url)
        except ModelError as exc:
            self.opened.set(exc)
            return record.FAILED_EVENT, record.failed_data(exc.type, exc.message,
                                                          exc.upstream_status)
        self.opened.set(None)
        end: End | None = None
        failure: Failure | None = None
        try:
            if answer is not None:
                end = self._read(answer)
        except AnswerFailed as exc:
            failure = exc.failure
        except Exception:
            log.exception("generation %s failed", self.id)
            failure = BROKEN
        finally:
            if answer is not None:
                answer.close()
        return self._ending(end, failure)

    def _read(self, answer: Answer) -> End | None:
        """Queue the answer's tokens for the writer; its End, None if it stopped before."""
        for item in answer:
            if self.cancellation.cancelled:
                return None
            if type(item) is Token:
                self._pending.append(item.text)
                self._wrote.set()
            else:
                return item
        return None

    def _ending(self, end: End | None, failure: Failure | None) -> tuple[str, str] | None:
        reason = self.cancellation.reason
        if reason == "too long":
            failure = TIMED_OUT
        elif is_restart(reason):
            failure = RESTARTED
        elif self.cancellation.cancelled:
            return record.END, record.end_data("cancelled")
        if failure is not None:
            return record.FAILED_EVENT, record.failed_data(failure.type, failure.message)
        if end is None:
            return record.FAILED_EVENT, record.failed_data(BROKEN.type, BROKEN.message)
        return record.END, record.end_data(end.finish_reason, end.usage)

    def _write_pending(self) -> None:
        """Write what the model gave since the last write, one event per batch."""
        while True:
            self._wrote.wait()
            self._wrote.clear()
            # Read first: whatever was queued before the answer was over is written below.
            over = self._answer_over
            while self._pending:
                batch = self._pending[:MAX_TOKENS_PER_EVENT]
                del self._pending[:MAX_TOKENS_PER_EVENT]
                first = self._published
                self._published += len(batch)
                self._written_at = time.monotonic()
                if not self.topic.tokens(first, batch):  # ended: here or elsewhere
                    if not self.topic.mirrored:
                        self.topic.adopt_end()
                    self.end_elsewhere()
                    return
            if over:
                return

    def _publish_final(self, event: str, data: str) -> None:
        if self.topic.append(event, data, final=True, position=self._published) is None:
            self.topic.adopt_end()  # someone else's end came first: the copy needs it too

    def _keep_alive(self) -> None:
        """Renew the lease; end the run once no viewer anywhere watched for its grace."""
        while True:
            gevent.sleep(self._limits.tick)
            try:
                self._broker.lease(record.runner_lease(self.id), self._limits.lease_seconds)
            except BrokerUnavailable:
                continue
            unwatched = time.monotonic() - self._alone_since
            if (self._grace is not None and self._viewers == 0 and self._grace_timer is None
                    and unwatched >= self._grace):
                self._end_unwatched()
            self._look_for_an_end_elsewhere()

    def _look_for_an_end_elsewhere(self) -> None:
        """With a shared broker and nothing written for a tick, read whether the topic ended."""
        if not self.topic.mirrored or time.monotonic() - self._written_at < self._limits.tick:
            return
        if self.topic.adopt_end():
            self.end_elsewhere()

    def end_elsewhere(self) -> None:
        """The topic was ended by someone else: stop the answer (a no-op once it is over)."""
        if not self._answer_over:
            self.cancellation.cancel("ended elsewhere")

    def _release_lease(self) -> None:
        with suppress(BrokerUnavailable):  # if so, it expires by itself
            self._broker.release(record.runner_lease(self.id))
