"""Per-key limits of the proxy: requests and tokens per minute, counted and decided.

A key of PROXY_KEYS_FILE may have `rpm` (requests per minute) and `tpm` (prompt + completion
tokens per minute). Each is counted in fixed 60-second windows (`window_at`): what OpenAI's
`x-ratelimit-reset-*` headers describe, and one counter per key and window, shared by every
worker and instance through Redis (`limit_counters.RedisCounter`), or per process without it
(`limit_counters.MemoryCounter`: with several workers each counts alone).

A request is checked before the upstream is asked (`Limits.check`): refused when the window
already holds `rpm` requests or `tpm` tokens, else counted. Tokens are known only when a stream
ended, so they are added then (`Limits.record_tokens`): a stream that started is never cut, its
tokens count against the next requests of the window they ended in.

Deliberate choices:

1. A refused request is not counted, so `remaining` never goes below 0 and a client retrying
   too early does not push its own limit further away.
2. Redis down fails open: the request is served without x-ratelimit headers (nothing is known
   to report), and a warning is logged at most once a minute (`limit_counters.py`).
3. Windows follow each instance's clock: instances sharing Redis need clocks kept in step (NTP),
   or a window starts and ends a little apart on each.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .keys import ClientKey, ClientKeys
from .wire import OpenAIError

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Window:
    """One fixed window: its number since the epoch and the seconds until it ends (> 0)."""

    index: int
    resets_in: float


def window_at(now: float, length: int = WINDOW_SECONDS) -> Window:
    """The window holding the instant `now` (seconds since the epoch)."""
    index = math.floor(now / length)
    return Window(index, (index + 1) * length - now)


@dataclass(frozen=True)
class Counts:
    """A key's requests and tokens so far in one window."""

    requests: int
    tokens: int


class Counter(Protocol):
    """Where the counts live: this process's memory, or Redis."""

    def admit(self, name: str, window: int, rpm: int | None,
              tpm: int | None) -> tuple[bool, Counts] | None:
        """Count one request unless the window holds `rpm` requests or `tpm` tokens already;
        whether it was counted, and the counts after. None: the counts are out of reach."""

    def add_tokens(self, name: str, window: int, tokens: int) -> None:
        """Add `tokens` to the window's count (best effort: lost if out of reach)."""


def reset_duration(seconds: float) -> str:
    """Seconds as OpenAI's reset headers write them: `1s`, `59.52s`, `1m0s`."""
    milliseconds = max(1, math.ceil(seconds * 1000))
    minutes, rest = divmod(milliseconds, 60_000)
    return f"{minutes}m{rest / 1000:g}s" if minutes else f"{rest / 1000:g}s"


_LIMIT_LABELS = {"requests": "requests per min (RPM)", "tokens": "tokens per min (TPM)"}


@dataclass(frozen=True)
class Decision:
    """What `Limits.check` decided for one request of a limited key."""

    client: ClientKey
    counts: Counts
    resets_in: float
    refused: str | None
    """None when admitted; else what ran out: "requests" or "tokens"."""

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.resets_in))

    def _limits(self) -> list[tuple[str, int, int]]:
        pairs = (("requests", self.client.rpm, self.counts.requests),
                 ("tokens", self.client.tpm, self.counts.tokens))
        return [(kind, limit, used) for kind, limit, used in pairs if limit is not None]

    def headers(self) -> list[tuple[str, str]]:
        """OpenAI's x-ratelimit-* headers for the limits the key has; Retry-After if refused."""
        headers = []
        for kind, limit, used in self._limits():
            headers += [(f"x-ratelimit-limit-{kind}", str(limit)),
                        (f"x-ratelimit-remaining-{kind}", str(max(0, limit - used))),
                        (f"x-ratelimit-reset-{kind}", reset_duration(self.resets_in))]
        if self.refused:
            headers.append(("Retry-After", str(self.retry_after)))
        return headers

    def error(self) -> OpenAIError:
        """The 429 of a refused request, worded as OpenAI words it; it names the key's name."""
        kind, limit, used = next(item for item in self._limits() if item[0] == self.refused)
        return OpenAIError(
            429, f"Rate limit reached for {self.client.name} on {_LIMIT_LABELS[kind]}: "
                 f"Limit {limit}, Used {used}. Please try again in {self.retry_after}s.",
            kind, code="rate_limit_exceeded")


class Limits:
    """The keys' limits, decided over a Counter; one per app (so per worker)."""

    def __init__(self, keys: ClientKeys, counter: Counter,
                 clock: Callable[[], float] = time.time) -> None:
        self._keys = keys
        self._counter = counter
        self._clock = clock

    def check(self, client: ClientKey) -> Decision | None:
        """Count a request of `client` or refuse it; None for a key without limits, or when
        the counts are out of reach (fail open)."""
        if not client.limited:
            return None
        window = window_at(self._clock())
        counted = self._counter.admit(client.name, window.index, client.rpm, client.tpm)
        if counted is None:
            return None
        admitted, counts = counted
        return Decision(client, counts, window.resets_in,
                        None if admitted else _exhausted(client, counts))

    def record_tokens(self, key_name: str, tokens: int) -> None:
        """Count `tokens` (prompt + completion) of a finished request of key `key_name` in the
        current window. Keys without a tpm, unknown names and counts < 1 are ignored."""
        client = self._keys.by_name(key_name)
        if client is None or client.tpm is None or tokens < 1:
            return
        self._counter.add_tokens(key_name, window_at(self._clock()).index, tokens)


def _exhausted(client: ClientKey, counts: Counts) -> str:
    if client.rpm is not None and counts.requests >= client.rpm:
        return "requests"
    return "tokens"
