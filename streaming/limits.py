"""Stream slots: how many streams this worker holds, in total and per client address.

Every stream (SSE, a fetch stream, a proxied or mock answer, a WebSocket connection for its
whole life) takes a slot before it starts and gives it back the moment it closes. Past
`max_streams` the worker is full: another worker, or the same one a little later, may have room
(HTTP 503). Past `max_per_client` one address holds too many: it must close some first (HTTP
429). Either way the refusal carries a Retry-After, random within `RETRY_AFTER_SECONDS` so
refused clients do not all come back in the same second. `None` means no limit.

Counts are per worker process (each gunicorn worker has its own), like the connections a
worker accepts; with WEB_CONCURRENCY workers the totals are up to that many times larger.
"""

from __future__ import annotations

import random

SERVER = "server"
CLIENT = "client"


class StreamLimitReached(Exception):
    """No slot: `scope` is SERVER (the worker is full) or CLIENT (this address has its share)."""

    def __init__(self, scope: str, limit: int, retry_after: int) -> None:
        whose = "this server" if scope == SERVER else "this client"
        super().__init__(f"{whose} has {limit} open streams, its limit; retry later")
        self.scope = scope
        self.limit = limit
        self.retry_after = retry_after


class Slot:
    """One stream's place; `release()` gives it back (idempotent)."""

    __slots__ = ("_client", "_slots")

    def __init__(self, slots: StreamSlots, client: str) -> None:
        self._slots: StreamSlots | None = slots
        self._client = client

    def release(self) -> None:
        slots, self._slots = self._slots, None
        if slots is not None:
            slots._give_back(self._client)


class StreamSlots:
    """The slot counts of one worker. Shared by its greenlets; nothing here ever blocks."""

    RETRY_AFTER_SECONDS = (5, 10)

    def __init__(self, max_streams: int | None = None, max_per_client: int | None = None,
                 *, rng: random.Random | None = None) -> None:
        for name, value in (("max_streams", max_streams), ("max_per_client", max_per_client)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value!r}")
        self.max_streams = max_streams
        self.max_per_client = max_per_client
        self._rng = rng or random.Random()
        self.open = 0
        self._per_client: dict[str, int] = {}  # only addresses holding a slot: bounded

    def held_by(self, client: str) -> int:
        return self._per_client.get(client, 0)

    def acquire(self, client: str) -> Slot:
        """A slot for a stream from `client` (its address); StreamLimitReached past a limit."""
        if self.max_streams is not None and self.open >= self.max_streams:
            raise StreamLimitReached(SERVER, self.max_streams, self._retry_after())
        held = self._per_client.get(client, 0)
        if self.max_per_client is not None and held >= self.max_per_client:
            raise StreamLimitReached(CLIENT, self.max_per_client, self._retry_after())
        self.open += 1
        self._per_client[client] = held + 1
        return Slot(self, client)

    def _give_back(self, client: str) -> None:
        self.open -= 1
        held = self._per_client[client] - 1
        if held:
            self._per_client[client] = held
        else:
            del self._per_client[client]

    def _retry_after(self) -> int:
        return self._rng.randint(*self.RETRY_AFTER_SECONDS)
