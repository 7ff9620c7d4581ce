"""The proxy's metrics, registered on the registry it is given (the app's, `/metrics`).

`upstream_requests_total{upstream, status}` counts the requests sent to each upstream (its
configured name) by its status (or `cancelled`, `timeout`, `unreachable`), every attempt of a
request that fell back included; `upstream_fallbacks_total{from_upstream, reason}` counts the
requests sent on to the next upstream after `from_upstream` failed (`connect`, `timeout`,
`status_<code>`); `upstream_first_byte_seconds` is the wait for an upstream's headers. The
OpenAI-compatible routes' streams are counted by the core's stream metrics under the
transports listed here.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

TRANSPORTS = ("proxy", "mock")
"""The `transport` label of the streams the proxy and the mock upstream serve."""

FIRST_BYTE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ProxyMetrics:
    """The upstream's counters; shared by every greenlet of a worker, as prometheus_client's
    values are."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.upstream_requests = Counter("upstream_requests",
                                         "Requests sent upstream by upstream and status.",
                                         ["upstream", "status"], registry=registry)
        self.upstream_fallbacks = Counter("upstream_fallbacks",
                                          "Requests sent on to the next upstream, by the one "
                                          "that failed and how.", ["from_upstream", "reason"],
                                          registry=registry)
        self.upstream_first_byte = Histogram("upstream_first_byte_seconds",
                                             "Time from sending upstream to its first byte.",
                                             buckets=FIRST_BYTE_BUCKETS, registry=registry)
