"""The proxy's metrics, registered on the registry it is given (the app's, `/metrics`).

`upstream_requests_total{status}` counts proxied requests by the upstream's status (or
`cancelled`, `timeout`, `unreachable`); `upstream_first_byte_seconds` is the wait for the
upstream's first byte. The OpenAI-compatible routes' streams are counted by the core's stream
metrics under the transports listed here.
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
                                         "Proxied requests by upstream status.", ["status"],
                                         registry=registry)
        self.upstream_first_byte = Histogram("upstream_first_byte_seconds",
                                             "Time from sending upstream to its first byte.",
                                             buckets=FIRST_BYTE_BUCKETS, registry=registry)
