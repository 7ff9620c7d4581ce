"""Broadcast channels: named topics anyone may subscribe to and the application publishes to.

`Channels` is bound to a broker by `create_app`; `publish()` is what application code calls,
the way Flask-SSE's `sse.publish` is: in the app it uses the app's broker, elsewhere (an RQ or
Celery job, a cron script) the Redis broker of REDIS_URL, so its events reach every instance
(`broker.current_broker`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any

from broker import Attendance, Broker, BrokerUnavailable, Headcount, Subscription, current_broker
from http_policy.validation import InvalidParameter
from streaming.encoding import compact_json

NAME_CHARACTERS = "[A-Za-z0-9_.:-]"
CHANNEL_NAME_MAX, EVENT_NAME_MAX = 128, 64
MAX_DATA_BYTES = 64 * 1024
"""The largest event data, as compact JSON in UTF-8."""
MAX_BATCH_EVENTS = 1000
"""The most events one `publish_many` takes."""


class DataTooLarge(ValueError):
    """An event's data is over MAX_DATA_BYTES; `param` names it (`data`, `events[3].data`)."""

    def __init__(self, message: str, param: str = "data") -> None:
        super().__init__(message)
        self.param = param


@functools.lru_cache(maxsize=1024)
def _valid(value: str, longest: int) -> bool:
    # Cached: a batch repeats its event names; a miss costs a regex match.
    return re.fullmatch(f"{NAME_CHARACTERS}{{1,{longest}}}", value) is not None


def _name(param: str, value: object, longest: int) -> str:
    if not isinstance(value, str) or not _valid(value, longest):
        raise InvalidParameter(param, f"{param} must be 1 to {longest} characters of A-Z a-z "
                                      f"0-9 _ . : -, got {str(value)[:80]!r}")
    return value


def channel_name(value: object) -> str:
    """`value` if it is a valid channel name, else InvalidParameter."""
    return _name("channel", value, CHANNEL_NAME_MAX)


def event_name(value: object) -> str:
    """`value` if it is a valid event name, else InvalidParameter."""
    return _name("event", value, EVENT_NAME_MAX)


class Channels:
    """Publish to and subscribe to channels through one broker."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    @staticmethod
    def topic(channel: str) -> str:
        return f"channel/{channel}"

    def publish(self, channel: str, event: str, data: Any) -> str:
        """Send `data` (any JSON value) as `event` to every subscriber of `channel`; its id.

        Raises InvalidParameter for a bad name, DataTooLarge, BrokerUnavailable.
        """
        channel_name(channel)
        return self.broker.publish(self.topic(channel), event_name(event), _data_text(data))

    def publish_many(self, channel: str, events: Sequence[Mapping[str, Any]]) -> list[str]:
        """Publish `events`, each `{"data": <any JSON>, "event": <name>}` (event defaults to
        `message`), to `channel` at once: atomically, in that order, in one round trip to
        Redis. Returns their ids, in order.

        Every event is checked before any is published: InvalidParameter naming the bad one
        (`events[3].event`) for a bad name, a missing `data`, or not 1 to MAX_BATCH_EVENTS
        events; DataTooLarge; BrokerUnavailable.
        """
        channel_name(channel)
        if not isinstance(events, Sequence) or isinstance(events, str) \
                or not 1 <= len(events) <= MAX_BATCH_EVENTS:
            raise InvalidParameter("events", f"events must be a list of 1 to {MAX_BATCH_EVENTS} "
                                             "events")
        checked = []
        for i, item in enumerate(events):
            if not isinstance(item, Mapping) or "data" not in item:
                raise InvalidParameter(f"events[{i}].data",
                                       'each event is an object with "data" (any JSON value)')
            try:
                name = event_name(item.get("event", "message"))
            except InvalidParameter as exc:
                raise InvalidParameter(f"events[{i}].event", exc.message) from None
            checked.append((name, _data_text(item["data"], f"events[{i}].data")))
        return self.broker.publish_many(self.topic(channel), checked)

    def subscribe(self, channel: str, last_id: str | None, *, subject: str | None = None,
                  presence_events: bool = False) -> Subscription:
        """The channel's events after `last_id` (a Last-Event-ID), then live ones; without one,
        those published from now on. Raises InvalidParameter for a bad name or id.

        While it streams it counts in the channel's presence, under `subject` if it has one;
        with `presence_events` it also gets `event: join` / `leave` (see `presence`)."""
        channel_name(channel)
        subscription = self.broker.subscribe(self.topic(channel), last_id,
                                             attendance=Attendance(subject, presence_events))
        # Before the response starts: what is published once its headers arrive reaches it.
        # If the broker is unreachable the subscription says so in band (`event: error`).
        with suppress(BrokerUnavailable):
            subscription.pin()
        return subscription

    def presence(self, channel: str) -> Headcount:
        """Open subscriptions to `channel` on every worker and instance the broker reaches, and
        the distinct subjects among them. Raises InvalidParameter, BrokerUnavailable."""
        channel_name(channel)
        return self.broker.presence.headcount(self.topic(channel))


def _data_text(data: Any, param: str = "data") -> str:
    """`data` as compact JSON text, or DataTooLarge past MAX_DATA_BYTES."""
    text = compact_json(data)
    # A character is at most 4 bytes in UTF-8: short texts need no encoding to be sure.
    if len(text) > MAX_DATA_BYTES // 4 and len(text.encode()) > MAX_DATA_BYTES:
        raise DataTooLarge(f"event data is limited to {MAX_DATA_BYTES} bytes of JSON", param)
    return text


def publish(channel: str, event: str, data: Any) -> str:
    """Publish `data` (any JSON value) as `event` on `channel`, from any view or process.

    In the app it goes through the app's broker; in any other Python process (a job, a
    script) through Redis, which needs REDIS_URL. Returns the event's id.
    """
    return Channels(current_broker()).publish(channel, event, data)


def publish_many(channel: str, events: Sequence[Mapping[str, Any]]) -> list[str]:
    """Publish `events` (each `{"event": ..., "data": ...}`) on `channel` atomically, in order,
    from any view or process, as `publish()` does; returns their ids."""
    return Channels(current_broker()).publish_many(channel, events)
