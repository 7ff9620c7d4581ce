"""Where the proxy's per-key counts live: this process's memory, or Redis (`llm/limits.py`).

With REDIS_URL the counts are shared by every worker and instance: one hash per key and window,
`sse:limit:<name>:<window>` with fields `r` (requests) and `t` (tokens), expiring two windows
after its last write. Checking and counting a request is one round trip (a Lua script, so two
workers cannot both take the last request of a window); adding tokens is one more, at the end of
a stream (HINCRBY and PEXPIRE in one pipeline).

The Redis client is this module's own, not the broker's: a pool of at most
`COMMAND_CONNECTIONS` per process, created with the app in each worker (so after the fork),
with short timeouts and no retry. Limits fail open: a request must not wait for, or be refused
by, a Redis that does not answer. Its failures are logged at most once a minute.
"""

from __future__ import annotations

import logging
import os
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from broker.redis_cluster import LazyCluster, cluster_client, is_cluster

from .limits import WINDOW_SECONDS, Counter, Counts

log = logging.getLogger(__name__)

PREFIX = "sse:limit:"
TTL_MS = 2 * WINDOW_SECONDS * 1000
COMMAND_CONNECTIONS = 8
POOL_WAIT_SECONDS = 0.5
CONNECT_TIMEOUT, COMMAND_TIMEOUT = 0.5, 0.5
WARN_EVERY_SECONDS = 60.0

# KEYS[1]: the window's hash. ARGV: rpm, tpm ("0": no limit), ttl ms.
# Returns {1 if counted else 0, requests, tokens}.
ADMIT = """
local counts = redis.call('HMGET', KEYS[1], 'r', 't')
local requests, tokens = tonumber(counts[1] or 0), tonumber(counts[2] or 0)
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
if (rpm > 0 and requests >= rpm) or (tpm > 0 and tokens >= tpm) then
  return {0, requests, tokens}
end
requests = redis.call('HINCRBY', KEYS[1], 'r', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, requests, tokens}
"""


def _full(limit: int | None, used: int) -> bool:
    return limit is not None and used >= limit


class MemoryCounter:
    """Counts in this process only: each worker counts alone. Windows before the current one
    are dropped as soon as a later window is counted in."""

    def __init__(self) -> None:
        self._window = 0
        self._counts: dict[str, list[int]] = {}

    def _current(self, name: str, window: int) -> list[int]:
        if window != self._window:
            self._window, self._counts = window, {}
        return self._counts.setdefault(name, [0, 0])

    def admit(self, name: str, window: int, rpm: int | None,
              tpm: int | None) -> tuple[bool, Counts] | None:
        counts = self._current(name, window)
        admitted = not (_full(rpm, counts[0]) or _full(tpm, counts[1]))
        if admitted:
            counts[0] += 1
        return admitted, Counts(*counts)

    def add_tokens(self, name: str, window: int, tokens: int) -> None:
        self._current(name, window)[1] += tokens


class RedisCounter:
    """Counts in Redis, shared by every process that reaches it; one per process."""

    def __init__(self, url: str) -> None:
        self._redis: redis.Redis | LazyCluster
        if is_cluster(url):  # one key per script and pipeline: any slot will do
            self._redis = cluster_client(url, retries=0, socket_timeout=COMMAND_TIMEOUT,
                                         socket_connect_timeout=CONNECT_TIMEOUT,
                                         client_name=f"sse:{os.getpid()}:limits")
        else:
            pool = redis.BlockingConnectionPool.from_url(
                url, max_connections=COMMAND_CONNECTIONS, timeout=POOL_WAIT_SECONDS,
                socket_timeout=COMMAND_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT,
                retry=Retry(NoBackoff(), 0), client_name=f"sse:{os.getpid()}:limits")
            self._redis = redis.Redis(connection_pool=pool)
        self._admit = self._redis.register_script(ADMIT)
        self._warned_at: float | None = None

    def admit(self, name: str, window: int, rpm: int | None,
              tpm: int | None) -> tuple[bool, Counts] | None:
        try:
            counted, requests, tokens = self._admit(
                keys=[f"{PREFIX}{name}:{window}"], args=[rpm or 0, tpm or 0, TTL_MS])
        except redis.RedisError as exc:
            self._unreachable(exc)
            return None
        return bool(counted), Counts(int(requests), int(tokens))

    def add_tokens(self, name: str, window: int, tokens: int) -> None:
        key = f"{PREFIX}{name}:{window}"
        try:
            self._redis.pipeline(transaction=False).hincrby(key, "t", tokens).pexpire(
                key, TTL_MS).execute()
        except redis.RedisError as exc:
            self._unreachable(exc)

    def _unreachable(self, exc: redis.RedisError) -> None:
        now = time.monotonic()
        if self._warned_at is None or now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning("per-key limits are not enforced: Redis does not answer (%s)", exc)


def make_counter(redis_url: str) -> Counter:
    """Redis's counter with REDIS_URL, else this process's."""
    return RedisCounter(redis_url) if redis_url else MemoryCounter()
