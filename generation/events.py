"""What a generation emits, independent of the transport that carries it."""

from __future__ import annotations

from dataclasses import dataclass

from streaming.failure import Failure


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



GenerationEvent = Start | Token | End | Failure
