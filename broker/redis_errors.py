"""How a failed Redis call reaches callers: as `BrokerUnavailable`, for every Redis module here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.exceptions import ClusterDownError, SlotNotCoveredError

from .subscription import BrokerUnavailable


@contextmanager
def reaching_redis() -> Iterator[None]:
    try:
        yield
    # A cluster's slot whose node is down answers CLUSTERDOWN, or is covered by no node known.
    except (redis.ConnectionError, redis.TimeoutError, ClusterDownError,
            SlotNotCoveredError) as exc:
        raise BrokerUnavailable("the message broker (Redis) is unreachable") from exc
