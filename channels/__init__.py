"""Broadcast channels over the broker: `publish()` from any view or process, SSE to read."""

from .service import (
    MAX_DATA_BYTES,
    Channels,
    DataTooLarge,
    channel_name,
    event_name,
    publish,
)

__all__ = ["MAX_DATA_BYTES", "Channels", "DataTooLarge", "channel_name", "event_name",
           "publish"]
