"""The one place that chooses the broker: Redis Streams when a URL is given, else in memory."""

from __future__ import annotations

import functools

import config

from .base import Broker
from .presence import HEARTBEAT_SECONDS


def make_broker(redis_url: str, history: int, queue_size: int,
                flush_ms: int | None = None, heartbeat: float = HEARTBEAT_SECONDS) -> Broker:
    """A `RedisBroker` for `redis_url`, or the embedded `MemoryBroker` when it is empty.

    `flush_ms` (FANOUT_FLUSH_MS): None hands each delivery to subscribers at once; otherwise
    deliveries are held that many milliseconds and handed over together (`fanout.py`).
    `heartbeat` (HEARTBEAT_SECONDS) paces how Redis presence is refreshed and how soon a dead
    process's subscriptions leave it (`redis_presence.py`).
    """
    flush_delay = None if flush_ms is None else flush_ms / 1000
    if redis_url:
        from .redis_streams import RedisBroker  # redis-py is imported only when used

        return RedisBroker(redis_url, history, queue_size, flush_delay=flush_delay,
                           heartbeat=heartbeat)
    from .memory import MemoryBroker

    return MemoryBroker(history, queue_size, flush_delay=flush_delay)


@functools.cache
def environment_broker() -> Broker:
    """This process's broker outside the app (a job, a script), from the same settings.

    Only Redis can reach the server's subscribers from another process, so without REDIS_URL
    this raises RuntimeError rather than publish into a memory nobody reads. One per process:
    redis-py's pool notices a fork and opens new connections in the child.
    """
    settings = config.load()
    if not settings["REDIS_URL"]:
        raise RuntimeError("REDIS_URL is not set: outside the server, events can only reach "
                           "its subscribers through Redis")
    return make_broker(settings["REDIS_URL"], settings["CHANNEL_HISTORY"],
                       settings["SUBSCRIBER_QUEUE"], heartbeat=settings["HEARTBEAT_SECONDS"])


def current_broker() -> Broker:
    """The app's broker in an app context (a view, a CLI command), else `environment_broker()`.

    For code that publishes outside a view: `channels.publish()`, `TaskReporter`.
    """
    import flask  # only where a broker is looked up, never on a subscriber's path

    if flask.has_app_context():
        # The app's `services.Services`, which a feature may not import (it is built above us).
        return flask.current_app.extensions["services"].broker
    return environment_broker()
