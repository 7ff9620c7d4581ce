"""How a failed Redis call reaches callers: as `BrokerUnavailable`, for every Redis module here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

from .subscription import BrokerUnavailable


@contextmanager
def reaching_redis() -> Iterator[None]:
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise BrokerUnavailable("the message broker (Redis) is unreachable") from exc
