"""What a generation emits, independent of the transport that carries it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Start:
    model: str
    tokens: int


@dataclass(frozen=True, slots=True)
class Token:
    index: int
    text: str


@dataclass(frozen=True, slots=True)
class End:
    finish_reason: str
    tokens: int


@dataclass(frozen=True, slots=True)
class Failure:
    """A failure after the stream started: sent to the client instead of a silent cut.

    `message` is meant for the client, so it never carries a traceback or internal detail.
    """

    type: str
    message: str


GenerationEvent = Start | Token | End | Failure
