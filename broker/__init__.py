"""The broker under channels and tasks: topics of events, published once, delivered to every
subscriber of every worker (see README.md beside this file)."""

from .auto import current_broker, environment_broker, make_broker
from .base import AT_END, Append, Broker, Lease
from .events import Event, EventFormat, InvalidEventId, Notice, format_id, parse_id
from .presence import Attendance, Headcount, Presence
from .subscription import BrokerUnavailable, Subscription

__all__ = [
           "AT_END",
           "Append",
           "Attendance",
           "Broker",
           "BrokerUnavailable",
           "Event",
           "EventFormat",
           "Headcount",
           "InvalidEventId",
           "Lease",
           "Notice",
           "Presence",
           "Subscription",
           "current_broker",
           "environment_broker",
           "format_id",
           "make_broker",
           "parse_id",
]
