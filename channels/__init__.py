"""Broadcast channels over the broker: `publish()` and `publish_many()` from any view or
process, SSE to read."""

from .service import (
    MAX_BATCH_EVENTS,
    MAX_DATA_BYTES,
    Channels,
    DataTooLarge,
    channel_name,
    event_name,
    publish,
    publish_many,
)

__all__ = ["MAX_BATCH_EVENTS", "MAX_DATA_BYTES", "Channels", "DataTooLarge", "channel_name",
           "event_name", "publish", "publish_many"]
