"""Several upstreams in order: which to try, when to fall back to the next, what a 429 skips.

`Upstream.send` asks `RateLimits.order` for the upstreams to try, sends to the first, and moves
on when `fallback_reason` names the failure and `may_fall_back` allows it. Choices made where
the issue is silent:

1. Each upstream is tried at most once per request (so PROXY_ATTEMPTS above the number of
   upstreams changes nothing, and a single upstream is never asked twice).
2. A connect timeout counts as a connect failure (`connect`): nothing was sent, so even a
   request that must not be repeated may go elsewhere. A connection the upstream dropped after
   the request went out, without answering, is not a reason to fall back (it may have been
   acted on); its 502 is the client's.
3. A 429's Retry-After skips that upstream in this worker only (each worker learns it from its
   own 429s); a 429 without one skips nothing. With every upstream skipped, the one whose skip
   ends first is asked anyway: its own 429, Retry-After included, is then the client's answer.
4. Whether a request streams is read from its body without parsing it (`asks_for_stream`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError

DEFAULT_UPSTREAM = "default"
"""The name of the one upstream UPSTREAM_BASE_URL and UPSTREAM_API_KEY configure."""

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
"""RFC 9110 9.2.2: methods a client may repeat; the rest are sent twice only if they stream."""

FALLBACK_STATUSES = frozenset({429, 500, 502, 503, 504})

MAX_SKIP_SECONDS = 3600.0
"""The longest a Retry-After skips an upstream: a larger one reads as an hour."""

STREAM_KEY_LOOKS = 16
"""How many `"stream"` a body is searched for before it is taken for a non-stream."""

_STREAM_TRUE = re.compile(rb'\s*:\s*true\b')


@dataclass(frozen=True)
class Endpoint:
    """One configured upstream: its name (sent to clients as X-Upstream), base URL (empty:
    this server's own mock) and key (empty: none; the client's Authorization is not sent
    either if any upstream has one)."""

    name: str
    base_url: str
    api_key: str = ""

    def url(self, target: str, local_base_url: str) -> str:
        return (self.base_url.rstrip("/") or local_base_url.rstrip("/")) + target


def asks_for_stream(body: bytes) -> bool:
    """Whether a JSON body says `"stream": true`, found without parsing it.

    In valid JSON a string followed by `:` is a key, so `"stream"` then `: true` is the member
    (a nested one too: such a body is then taken for a stream). `bytes.find` scans the body at
    memchr speed, and at most STREAM_KEY_LOOKS places are checked, so even PROXY_MAX_BODY
    costs a few milliseconds of the loop; json.loads would hold it for the whole parse.
    """
    start = 0
    for _ in range(STREAM_KEY_LOOKS):
        found = body.find(b'"stream"', start)
        if found < 0:
            return False
        start = found + len(b'"stream"')
        if _STREAM_TRUE.match(body, start):
            return True
    return False


def repeatable(method: str, body: bytes) -> bool:
    """Whether a request may be sent again after its upstream failed without a word of body:
    an idempotent method, or a request for a stream (nothing of it reached the client yet)."""
    return method.upper() in IDEMPOTENT or asks_for_stream(body)


def fallback_reason(outcome: requests.Response | Exception) -> str | None:
    """Why the next upstream should be asked (`connect`, `timeout`, `status_<code>`), or None
    for an outcome that is the client's answer."""
    if isinstance(outcome, requests.Response):
        code = outcome.status_code
        return f"status_{code}" if code in FALLBACK_STATUSES else None
    if isinstance(outcome, requests.ConnectTimeout) or _could_not_connect(outcome):
        return "connect"
    if isinstance(outcome, requests.Timeout):
        return "timeout"
    return None


def _could_not_connect(exc: Exception) -> bool:
    # requests wraps urllib3's failure to open a connection (refused, unreachable, no such
    # host) in a ConnectionError around a MaxRetryError.
    cause = exc.args[0] if isinstance(exc, requests.ConnectionError) and exc.args else None
    return isinstance(cause, MaxRetryError) and isinstance(cause.reason, NewConnectionError)


def may_fall_back(reason: str, repeatable_request: bool) -> bool:
    """A request that must not be repeated goes elsewhere only when it was never sent."""
    return reason == "connect" or repeatable_request


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After (RFC 9110 10.2.3: seconds, or an HTTP date) as seconds from now, at most
    MAX_SKIP_SECONDS; None if absent or unreadable. `now` is the wall clock (time.time())."""
    value = (value or "").strip()
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_SKIP_SECONDS)
    try:
        date = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    when = (date if date.tzinfo else date.replace(tzinfo=UTC)).timestamp()  # HTTP dates are GMT
    wall = time.time() if now is None else now
    return min(max(when - wall, 0.0), MAX_SKIP_SECONDS)


class RateLimits:
    """The upstreams a 429 asked to wait, and until when (time.monotonic()).

    One per `Upstream`, so one per worker; shared by its greenlets, which never yield inside
    a method (plain dict operations), so no lock is needed.
    """

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def skip(self, name: str, seconds: float, now: float | None = None) -> None:
        self._until[name] = (time.monotonic() if now is None else now) + seconds

    def order(self, endpoints: Sequence[Endpoint], now: float | None = None) -> list[Endpoint]:
        """The upstreams to try, in order: those not skipped; if all are, the one free first."""
        now = time.monotonic() if now is None else now
        free = [endpoint for endpoint in endpoints if self._until.get(endpoint.name, 0.0) <= now]
        if free:
            return free
        return [min(endpoints, key=lambda endpoint: self._until[endpoint.name])]
