"""What a generation emits, independent of the transport that carries it."""

from __future__ import annotations

from dataclasses import dataclass

from streaming.failure import Failure


@dataclass(frozen=True, slots=True)
class Start:
    """`backend` and `generation` are None for the demo model's direct streams, whose bytes
    predate them."""

    model: str
    tokens: int
    backend: str | None = None
    generation: str | None = None


@dataclass(frozen=True, slots=True)
class Token:
    index: int
    text: str


@dataclass(frozen=True, slots=True)
class End:
    """`usage` is the upstream's (`prompt_tokens`, `completion_tokens`, `total_tokens`), when
    it reported it."""

    finish_reason: str
    tokens: int
    usage: dict | None = None


@dataclass(frozen=True, slots=True)
class Reset:
    """The answer a viewer resumes is gone (expired): nothing of it can follow."""

    reason: str


GenerationEvent = Start | Token | End | Failure | Reset
