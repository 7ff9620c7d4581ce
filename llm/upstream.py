"""The upstream APIs the proxy forwards to: one pooled HTTP session per worker, keys, requests.

`create_app` builds one `Upstream` from plain settings (UPSTREAMS, or the one-entry form
UPSTREAM_BASE_URL/UPSTREAM_API_KEY named `default`) and the app's metrics registry; its
`requests.Session` is created on first use in each process, so after gunicorn forked the worker
and gevent patched it, and never shared between processes. Sharing it between a worker's
greenlets is safe: urllib3's pool is a queue under gevent-patched locks, and the session keeps
no per-user state (its cookie jar refuses every cookie, environment proxies and .netrc
credentials are ignored). Which upstream is asked, and when the next one is, is
`llm/upstreams.py`'s.

Choices made where the issue is silent:

1. An upstream without a base URL is this very server's mock (`/mock/v1`), at the address the
   client's connection reached, so `make run` needs no key and no network.
2. With any upstream's key set but no client keys, every client is refused (fail closed).
3. Client keys (`llm/keys.py`) are read from `Authorization: Bearer`; in key mode (an
   upstream's key or PROXY_KEYS_FILE set) `Authorization`, `api-key` and `x-api-key` are all
   withheld from every upstream, and each upstream with a key gets its own (one without a key
   gets none).
4. A read timeout while waiting for the upstream's headers is a 504, like a connect timeout.
5. A request that meets a pooled connection the upstream closed at that very moment is sent
   again once, on a new connection (`_RetryClosedIdle`); nothing else is sent twice to the
   same upstream.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import quote

import gevent
import requests
from prometheus_client import CollectorRegistry
from urllib3.exceptions import ProtocolError
from urllib3.util.retry import Retry

from streaming.cancellation import Cancellation

from .keys import ClientKey, ClientKeys
from .metrics import ProxyMetrics
from .pool import PooledAdapter
from .relay import end_to_end
from .upstreams import (
    Endpoint,
    RateLimits,
    fallback_reason,
    may_fall_back,
    repeatable,
    retry_after_seconds,
)
from .wire import OpenAIError

log = logging.getLogger(__name__)

REQUEST_DROP = frozenset({"host", "content-length", "accept-encoding", "expect"})
"""Client headers not forwarded besides hop-by-hop ones: requests sets Host and Content-Length
for the upstream, and we ask for `Accept-Encoding: identity` so the bytes need no decoding."""

CLIENT_KEYS = frozenset({"authorization", "api-key", "x-api-key"})


class _RetryClosedIdle(Retry):
    """One retry for a request that met a pooled connection the upstream had just closed.

    An upstream closes idle keep-alive connections (gunicorn after 5 s); a request sent at that
    moment meets a reset or a close with no answer at all, which urllib3's check for dropped
    connections cannot see coming. Only that (no byte of an answer) is retried, once and on a
    new connection, whatever the method; everything else, timeouts included, fails at once as
    with requests' default `Retry(0, read=False)`. A 429 or 503 with Retry-After is never
    waited out here: the next upstream is asked, or the client gets it (`llm/upstreams.py`).
    """

    def increment(self, method: str | None = None, url: str | None = None,
                  *args: Any, error: Exception | None = None, **kwargs: Any) -> Retry:
        if (isinstance(error, ProtocolError) and len(error.args) > 1
                and isinstance(error.args[1], (ConnectionResetError, BrokenPipeError))):
            return super().increment(method, url, *args, error=error, **kwargs)
        return Retry(0, read=False).increment(method, url, *args, error=error, **kwargs)


def upstream_target(environ: Mapping[str, Any], prefix: str) -> str:
    """The request's path after `prefix` and its query string, as the client wrote them."""
    raw = environ.get("RAW_URI") or ""
    if raw.startswith(prefix + "/"):
        return raw[len(prefix):]
    path = quote(environ.get("PATH_INFO", "").encode("latin-1"))[len(prefix):]
    query = environ.get("QUERY_STRING")
    return f"{path}?{query}" if query else path


def _prepare(method: str, url: str, headers: Mapping[str, str],
             body: bytes) -> requests.PreparedRequest:
    prepared = requests.PreparedRequest()
    prepared.prepare_method(method)
    prepared.url = url  # not prepare_url(): it would re-quote the client's path and query
    prepared.prepare_headers(headers)
    prepared.prepare_body(body or None, None)
    return prepared


@dataclass(frozen=True)
class Answer:
    """The response whose headers arrived (a failure of the last attempt included), and the
    upstream that sent it."""

    response: requests.Response
    endpoint: Endpoint


class Upstream:
    """The upstreams in order (`llm/upstreams.py`): addresses, keys, timeouts, this worker's
    pooled session, and which of them a 429 asked to wait."""

    def __init__(self, *, endpoints: Sequence[Endpoint], client_keys: ClientKeys,
                 timeout: tuple[float, float], pool_size: int, attempts: int,
                 registry: CollectorRegistry) -> None:
        """`endpoints` (checked by config.py) are tried in order, at most `attempts` of them
        for one request; `client_keys` are the keys clients present; `timeout` is (connect,
        read) in seconds, as requests takes it."""
        if not endpoints or attempts < 1:
            raise ValueError(f"Upstream needs an endpoint and an attempt at least, got "
                             f"{len(endpoints)} and {attempts}")
        self.endpoints = tuple(endpoints)
        self._client_keys = client_keys
        self.timeout = timeout
        self.pool_size = pool_size
        self.attempts = attempts
        self.rate_limits = RateLimits()
        self._metrics = ProxyMetrics(registry)
        self._session: requests.Session | None = None
        self._pid = 0

    @property
    def session(self) -> requests.Session:
        """This process's session, created on first use (so never before the fork)."""
        if self._pid != os.getpid():
            session = requests.Session()
            session.trust_env = False
            session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=()))
            adapter = PooledAdapter(pool_maxsize=self.pool_size, max_retries=_RetryClosedIdle(
                total=1, connect=0, read=1, redirect=0, status=0, other=0,
                allowed_methods=None, respect_retry_after_header=False))
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._session, self._pid = session, os.getpid()
        assert self._session is not None
        return self._session

    def client_key(self, authorization: str | None) -> ClientKey | None:
        """Who calls, from their `Authorization: Bearer` key; None if refused. Anyone may call
        (as `keys.ANONYMOUS`) unless an upstream's key or PROXY_KEYS_FILE is set."""
        return self._client_keys.lookup(authorization)

    def request_headers(self, incoming: Iterable[tuple[str, str]]) -> dict[str, str]:
        """The client's end-to-end headers with identity encoding; in key mode without the
        client's key (`send` adds each upstream's own)."""
        drop = REQUEST_DROP | CLIENT_KEYS if self._client_keys.required else REQUEST_DROP
        headers = dict(end_to_end(incoming, drop))
        headers["Accept-Encoding"] = "identity"
        return headers

    def send(self, method: str, target: str, headers: Mapping[str, str], body: bytes,
             cancellation: Cancellation, mock_base_url: str = "") -> Answer | None:
        """Send `target` (the path and query after the base URL) to the upstreams in turn;
        return once one's headers arrived, None if cancelled first.

        The next upstream is asked after a failure `fallback_reason` names, if `may_fall_back`
        allows it, at most `attempts` in all; the last attempt's outcome is the answer (an
        HTTP response relayed as it is, or OpenAIError's 502/504). `mock_base_url` stands for
        an upstream without a base URL.
        """
        repeat = repeatable(method, body)
        *earlier, final = self.rate_limits.order(self.endpoints)[:self.attempts]
        for endpoint in earlier:
            outcome = self._attempt(endpoint, method, endpoint.url(target, mock_base_url),
                                    headers, body, cancellation)
            if outcome is None:
                return None
            reason = fallback_reason(outcome)
            if reason is None or not may_fall_back(reason, repeat):
                return self._answer(endpoint, outcome)
            self._fall_back(endpoint, outcome, reason)
        outcome = self._attempt(final, method, final.url(target, mock_base_url), headers, body,
                                cancellation)
        return None if outcome is None else self._answer(final, outcome)

    def _attempt(self, endpoint: Endpoint, method: str, url: str, headers: Mapping[str, str],
                 body: bytes, cancellation: Cancellation) -> requests.Response | Exception | None:
        """One upstream asked; None if cancelled meanwhile.

        The request runs in a greenlet of its own so that a cancellation (the client left) can
        kill it wherever it blocks: connecting, sending or waiting. urllib3 then closes the
        connection, and the upstream sees the request cut.
        """
        if endpoint.api_key:
            headers = {**headers, "Authorization": f"Bearer {endpoint.api_key}"}
        prepared = _prepare(method, url, headers, body)
        began = time.monotonic()
        call = gevent.spawn(self._send, prepared)
        cancellation.on_cancel(lambda: call.kill(block=False))
        try:
            outcome = call.get()
        finally:  # a no-op once the call is done; if this greenlet is killed, the call goes too
            call.kill(block=False)
        prepared.body = None  # the response refers to its request: not the body for a stream's life
        if cancellation.cancelled:
            if isinstance(outcome, requests.Response):
                outcome.close()
            self._count(endpoint, "cancelled")
            return None
        if isinstance(outcome, requests.Response):
            self._metrics.upstream_first_byte.observe(time.monotonic() - began)
            self._count(endpoint, str(outcome.status_code))
            self._note_retry_after(endpoint, outcome)
        else:
            self._failed(endpoint, outcome)
        return outcome

    def _send(self, prepared: requests.PreparedRequest) -> requests.Response | Exception:
        # Failures are returned, not raised: gevent would print each one's traceback.
        try:
            return self.session.send(prepared, stream=True, timeout=self.timeout,
                                     allow_redirects=False)
        except Exception as exc:
            return exc

    def _note_retry_after(self, endpoint: Endpoint, response: requests.Response) -> None:
        if response.status_code != 429:
            return
        seconds = retry_after_seconds(response.headers.get("Retry-After"))
        if seconds:
            self.rate_limits.skip(endpoint.name, seconds)
            log.info("upstream %s asked to wait %.0f s: skipped meanwhile", endpoint.name,
                     seconds)

    def _fall_back(self, endpoint: Endpoint, outcome: requests.Response | Exception,
                   reason: str) -> None:
        if isinstance(outcome, requests.Response):
            outcome.close()  # unread: its connection is closed rather than reused
        self._metrics.upstream_fallbacks.labels(endpoint.name, reason).inc()
        log.info("upstream %s failed (%s): asking the next", endpoint.name, reason)

    def _answer(self, endpoint: Endpoint, outcome: requests.Response | Exception) -> Answer:
        if isinstance(outcome, requests.Response):
            return Answer(outcome, endpoint)
        raise _failure(outcome)

    def _failed(self, endpoint: Endpoint, exc: Exception) -> None:
        # The detail goes to the log (never a key: those travel in headers, which it omits).
        if isinstance(exc, requests.RequestException):
            log.warning("upstream %s request failed: %r", endpoint.name, exc)
        else:
            log.error("upstream %s request failed", endpoint.name, exc_info=exc)
        self._count(endpoint, "timeout" if isinstance(exc, requests.Timeout) else "unreachable")

    def _count(self, endpoint: Endpoint, status: str) -> None:
        self._metrics.upstream_requests.labels(endpoint.name, status).inc()


def _failure(exc: Exception) -> OpenAIError:
    """What the client learns of a failure: its kind, never the detail."""
    if isinstance(exc, requests.Timeout):
        return OpenAIError(504, "the upstream API did not answer in time", "upstream_error",
                           code="upstream_timeout")
    return OpenAIError(502, "the upstream API could not be reached", "upstream_error",
                       code="upstream_unreachable")
