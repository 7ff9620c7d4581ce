"""The one failure value every stream can end with, whatever produced it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Failure:
    """A failure after the stream started: sent to the client instead of a silent cut.

    `message` is meant for the client, so it never carries a traceback or internal detail.
    """

    type: str
    message: str
