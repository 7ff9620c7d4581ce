"""Ending open streams on purpose: all of them when the worker stops, each at its maximum age.

Left alone, a stopping gunicorn worker lets its streams run for `graceful_timeout` and then cuts
them. Instead every stream is told to come back and ends cleanly (the formats decide how: SSE
`event: restart` with a `retry:` field, an NDJSON restart line, WebSocket close 1012); a client
that reconnects with its Last-Event-ID resumes on another worker.

- No reconnect storm: a stopping worker ends its streams spread evenly over a window of at most
  `MAX_WINDOW` seconds, in random order, so its clients do not all return in the same
  millisecond. A stream that starts while the worker stops is told at once.
- Maximum age: with `max_age`, each stream ends the same way after a random age between
  `1 - JITTER` and 1 times `max_age` (so streams opened together do not end together), never
  later than the configured age.
- Noticing the stop: every way gunicorn stops a worker sets `worker.alive` to False (SIGTERM,
  which the master also sends old workers on a SIGHUP reload, in `workers/base.py`
  `handle_exit`; recycling after `max_requests` in `workers/base_async.py`), but the gevent
  worker's own loop looks only once a second (`workers/ggevent.py`). `follow()` polls the flag
  every `POLL_SECONDS` from one greenlet.

Streams are ended through their `Cancellation`, with the reason `SERVER_RESTART` or `MAX_AGE`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import gevent
from gevent.hub import get_hub

from .cancellation import Cancellation
from .failure import Failure

SERVER_RESTART = "server_restart"
MAX_AGE = "max_age"
RESTART_REASONS = frozenset({SERVER_RESTART, MAX_AGE})


def is_restart(reason: str | None) -> bool:
    """Whether a cancellation `reason` means: tell the client to come back."""
    return reason in RESTART_REASONS


def restart_failure(reason: str) -> Failure:
    """What a format that has no restart record sends instead: the stream cannot resume there,
    so the client is told to send its request again."""
    return Failure(reason, "the server ended this stream (restart or maximum age); "
                           "send the request again")


class Lease:
    """One open stream's registration; `release()` when the stream ends (idempotent)."""

    __slots__ = ("_cancellation", "_lifetimes", "_timer")

    def __init__(self, lifetimes: Lifetimes, cancellation: Cancellation,
                 max_age: float | None) -> None:
        self._lifetimes = lifetimes
        self._cancellation = cancellation
        self._timer = None
        if max_age is not None:
            self._timer = get_hub().loop.timer(max_age)
            self._timer.start(cancellation.cancel, MAX_AGE)

    def release(self) -> None:
        if self._timer is not None:
            self._timer.close()
            self._timer = None
        self._lifetimes.forget(self._cancellation)


class Lifetimes:
    """The open streams of this worker, ended with a restart notice on stop or at their age.

    Shared by every greenlet of a worker; `track` and `Lease.release` never block.
    """

    MAX_WINDOW = 2.0
    """Seconds over which a stopping worker spreads the ends of its streams, at most."""
    JITTER = 0.1
    POLL_SECONDS = 0.1

    def __init__(self, max_age: float | None = None, *, rng: random.Random | None = None) -> None:
        if max_age is not None and max_age <= 0:
            raise ValueError(f"max_age must be > 0 seconds or None, got {max_age!r}")
        self.max_age = max_age
        self._rng = rng or random.Random()
        self._open: set[Cancellation] = set()
        self._work: set[Cancellation] = set()
        self.stopping = False

    @property
    def open(self) -> int:
        """How many streams are open now."""
        return len(self._open)

    def forget(self, cancellation: Cancellation) -> None:
        """Drop a stream that ended (what `Lease.release` calls)."""
        self._open.discard(cancellation)
        self._work.discard(cancellation)

    def track(self, cancellation: Cancellation, *, aged: bool = True) -> Lease:
        """Register a stream that starts now; cancelled at once if the worker is stopping.

        `aged` false: work that is not a connection (a generation's run) and so has no
        maximum age; a stop ends it at once, before the connections, whose clients it may
        still have to tell how it ended."""
        age = None
        if self.max_age is not None and aged:
            age = self.max_age * (1 - self.JITTER * self._rng.random())
        (self._open if aged else self._work).add(cancellation)
        lease = Lease(self, cancellation, age)
        if self.stopping:
            cancellation.cancel(SERVER_RESTART)
        return lease

    def stop_all(self, window: float = MAX_WINDOW) -> gevent.Greenlet | None:
        """End every open stream with SERVER_RESTART, spread over `window` seconds."""
        if self.stopping:
            return None
        self.stopping = True
        for work in list(self._work):
            work.cancel(SERVER_RESTART)
        streams = list(self._open)
        self._rng.shuffle(streams)
        return gevent.spawn(self._stagger, streams, window)

    @staticmethod
    def _stagger(streams: list[Cancellation], window: float) -> None:
        began = time.monotonic()
        step = window / len(streams) if streams else 0.0
        for index, cancellation in enumerate(streams):
            wait = began + index * step - time.monotonic()
            if wait > 0:  # when behind, every stream that is due goes at once
                gevent.sleep(wait)
            cancellation.cancel(SERVER_RESTART)

    def follow(self, alive: Callable[[], bool], graceful_timeout: float) -> gevent.Greenlet:
        """Call `stop_all` as soon as `alive()` turns False (gunicorn's `worker.alive`).

        The window leaves a second of `graceful_timeout` over: gunicorn's worker checks once a
        second whether its connections are done, and cuts what is left at the timeout.
        """
        window = max(0.0, min(self.MAX_WINDOW, graceful_timeout - 1.0))

        def watch() -> None:
            while alive():
                gevent.sleep(self.POLL_SECONDS)
            self.stop_all(window)

        return gevent.spawn(watch)
