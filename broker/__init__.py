"""The broker under channels and tasks: topics of events, published once, delivered to every
subscriber of every worker (see README.md beside this file)."""

from .auto import current_broker, environment_broker, make_broker
from .base import Broker
from .events import Event, EventFormat, InvalidEventId, Notice, parse_id
from .subscription import BrokerUnavailable, Subscription

__all__ = ["Broker", "BrokerUnavailable", "Event", "EventFormat", "InvalidEventId", "Notice",
           "Subscription", "current_broker", "environment_broker", "make_broker", "parse_id"]
