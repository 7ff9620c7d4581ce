"""Validation of a generation request, shared by every transport (query string, JSON, WebSocket).

Errors are `InvalidParameter`s naming the parameter and saying what is allowed, raised before
anything is streamed.

A JSON body gives either a `prompt` or OpenAI chat `messages`. From messages the prompt is the
last user message's text, exactly as the mock upstream derives it (`llm/mock.py`), so the demo
model answers a conversation as the mock would; the messages themselves go to an upstream model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from http_policy.validation import (
    InvalidParameter,
    ascii_integer,
    integer,
    is_unicode,
    required_text,
)

TEXT_MAX_CHARS = 4000
"""The longest text a client sends: a prompt, or a text to speak (`tts.py`)."""
TOKENS_DEFAULT, TOKENS_MAX = 50, 10_000
DELAY_MS_DEFAULT, DELAY_MS_MAX = 50, 10_000
MESSAGES_MAX = 100
ROLES = ("system", "user", "assistant", "developer", "tool")


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """`messages`, when the client sent a conversation, are its OpenAI chat messages (each a
    plain dict of `role` and `content`); `prompt` is then the last user message's text."""

    prompt: str
    tokens: int = TOKENS_DEFAULT
    delay_ms: int = DELAY_MS_DEFAULT
    messages: tuple[dict, ...] | None = field(default=None, hash=False)


def parse_generation(values: Mapping[str, Any], *, from_text: bool = False) -> GenerationParams:
    """`prompt` (1..TEXT_MAX_CHARS characters) or, in JSON only, `messages` (see
    `parse_messages`); `tokens` (1..10000), `delay_ms` (0..10000).

    `from_text` accepts integers spelled as strings, as a query string carries them; JSON
    must carry real numbers.
    """
    prompt, messages = _prompt_or_messages(values, from_text)
    tokens = integer(values, "tokens", TOKENS_DEFAULT, 1, TOKENS_MAX, from_text=from_text)
    delay_ms = integer(values, "delay_ms", DELAY_MS_DEFAULT, 0, DELAY_MS_MAX,
                       from_text=from_text)
    return GenerationParams(prompt, tokens, delay_ms, messages)


def _prompt_or_messages(values: Mapping[str, Any],
                        from_text: bool) -> tuple[str, tuple[dict, ...] | None]:
    if values.get("messages") is None:
        if not from_text and values.get("prompt") is None:
            raise InvalidParameter("prompt", "prompt (or messages) is required")
        return required_text(values, "prompt", TEXT_MAX_CHARS), None
    if from_text:
        raise InvalidParameter("messages", "messages can only be sent in a JSON body; "
                                           "a query string carries a prompt")
    if values.get("prompt") is not None:
        raise InvalidParameter("messages", "give either prompt or messages, not both")
    messages = parse_messages(values["messages"])
    return last_user_text(messages), messages


def parse_messages(raw: Any) -> tuple[dict, ...]:
    """OpenAI chat messages: 1..MESSAGES_MAX objects `{role, content}` (content a string or a
    list of text parts), at least one from the user, whose last user message has text, and
    at most TEXT_MAX_CHARS characters of text in all, as one prompt may have.

    Each comes back as a new dict of `role` and `content` only; other keys are dropped.
    """
    if not isinstance(raw, list) or not raw:
        raise InvalidParameter("messages", "messages must be a non-empty array of message "
                                           "objects")
    if len(raw) > MESSAGES_MAX:
        raise InvalidParameter("messages", f"messages must hold at most {MESSAGES_MAX} "
                                           f"messages, got {len(raw)}")
    messages = tuple(_message(item, at) for at, item in enumerate(raw))
    total = sum(len(message_text(message)) for message in messages)
    if total > TEXT_MAX_CHARS:
        raise InvalidParameter("messages", f"messages must hold at most {TEXT_MAX_CHARS} "
                                           f"characters of text in all, got {total}")
    if not any(message["role"] == "user" for message in messages):
        raise InvalidParameter("messages", "messages must contain a user message")
    if not last_user_text(messages):
        raise InvalidParameter("messages", "the last user message must have some text")
    return messages


def message_text(message: Mapping[str, Any]) -> str:
    """A validated message's text: its content, or its text parts joined."""
    content = message["content"]
    return content if isinstance(content, str) else "".join(part["text"] for part in content)


def last_user_text(messages: tuple[dict, ...]) -> str:
    """The prompt of a conversation: its last user message's text."""
    return message_text(next(m for m in reversed(messages) if m["role"] == "user"))


def _message(item: Any, at: int) -> dict:
    where = f"messages[{at}]"
    if not isinstance(item, dict):
        raise InvalidParameter("messages", f"{where} must be an object with role and content")
    if item.get("role") not in ROLES:
        raise InvalidParameter("messages", f"{where}.role must be one of {', '.join(ROLES)}")
    content = item.get("content")
    if isinstance(content, str):
        _check_unicode(content, f"{where}.content")
    elif isinstance(content, list):
        content = [_text_part(part, f"{where}.content[{index}]")
                   for index, part in enumerate(content)]
    else:
        raise InvalidParameter("messages", f"{where}.content must be a string or an array "
                                           f"of text parts")
    return {"role": item["role"], "content": content}


def _text_part(part: Any, where: str) -> dict:
    if (not isinstance(part, dict) or part.get("type") != "text"
            or not isinstance(part.get("text"), str)):
        raise InvalidParameter("messages", f'{where} must be a text part '
                                           f'{{"type": "text", "text": "..."}}')
    _check_unicode(part["text"], where)
    return {"type": "text", "text": part["text"]}


def _check_unicode(text: str, where: str) -> None:
    if not is_unicode(text):
        raise InvalidParameter("messages", f"{where} must be valid Unicode (it has a lone "
                                           f"surrogate)")


def parse_resume(values: Mapping[str, Any], tokens: int) -> int | None:
    """A JSON message's `last_event_id` (a token index, as a number or digits), as
    `parse_last_event_id` reads the header: where a reconnecting WebSocket client resumes."""
    raw = values.get("last_event_id")
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if raw is not None and not isinstance(raw, str):
        raise InvalidParameter("last_event_id", "last_event_id must be a token index")
    return parse_last_event_id(raw, tokens)


def parse_token_index(raw: str | None) -> int | None:
    """A Last-Event-ID that is a token index (ASCII digits); None for a new stream."""
    if raw is None or raw == "":
        return None
    value = ascii_integer(raw)
    if value is None or raw.startswith("-"):
        raise InvalidParameter("last_event_id",
                               f"Last-Event-ID must be a token index, got {raw[:40]!r}")
    return value


def parse_last_event_id(raw: str | None, tokens: int) -> int | None:
    """The index of the last token the client has, from a Last-Event-ID; None for a new stream.

    Ids are token indexes 0 .. tokens-1, so anything else cannot come from this stream.
    """
    value = parse_token_index(raw)
    if value is None:
        return None
    if value >= tokens:
        raise InvalidParameter("last_event_id",
                               f"Last-Event-ID {value} is past this stream's last token "
                               f"({tokens - 1})")
    return value
