"""Validation of a generation request, shared by every transport (query string, JSON, WebSocket).

Errors are `InvalidParameter`s naming the parameter and saying what is allowed, raised before
anything is streamed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from http_policy.validation import InvalidParameter, ascii_integer, integer, required_text

TEXT_MAX_CHARS = 4000
"""The longest text a client sends: a prompt, or a text to speak (`tts.py`)."""
TOKENS_DEFAULT, TOKENS_MAX = 50, 10_000
DELAY_MS_DEFAULT, DELAY_MS_MAX = 50, 10_000


@dataclass(frozen=True, slots=True)
class GenerationParams:
    prompt: str
    tokens: int = TOKENS_DEFAULT
    delay_ms: int = DELAY_MS_DEFAULT


def parse_generation(values: Mapping[str, Any], *, from_text: bool = False) -> GenerationParams:
    """`prompt` (1..TEXT_MAX_CHARS characters), `tokens` (1..10000), `delay_ms` (0..10000).

    `from_text` accepts integers spelled as strings, as a query string carries them; JSON
    must carry real numbers.
    """
    prompt = required_text(values, "prompt", TEXT_MAX_CHARS)
    tokens = integer(values, "tokens", TOKENS_DEFAULT, 1, TOKENS_MAX, from_text=from_text)
    delay_ms = integer(values, "delay_ms", DELAY_MS_DEFAULT, 0, DELAY_MS_MAX,
                       from_text=from_text)
    return GenerationParams(prompt, tokens, delay_ms)


def parse_resume(values: Mapping[str, Any], tokens: int) -> int | None:
    """A JSON message's `last_event_id` (a token index, as a number or digits), as
    `parse_last_event_id` reads the header: where a reconnecting WebSocket client resumes."""
    raw = values.get("last_event_id")
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if raw is not None and not isinstance(raw, str):
        raise InvalidParameter("last_event_id", "last_event_id must be a token index")
    return parse_last_event_id(raw, tokens)


def parse_last_event_id(raw: str | None, tokens: int) -> int | None:
    """The index of the last token the client has, from a Last-Event-ID; None for a new stream.

    Ids are token indexes 0 .. tokens-1, so anything else cannot come from this stream.
    """
    if raw is None or raw == "":
        return None
    value = ascii_integer(raw)
    if value is None or raw.startswith("-"):
        raise InvalidParameter("last_event_id",
                               f"Last-Event-ID must be a token index, got {raw[:40]!r}")
    if value >= tokens:
        raise InvalidParameter("last_event_id",
                               f"Last-Event-ID {value} is past this stream's last token "
                               f"({tokens - 1})")
    return value
