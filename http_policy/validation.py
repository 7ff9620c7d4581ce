"""The error every validator raises: which parameter, and what is allowed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class InvalidParameter(ValueError):
    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


def is_unicode(text: str) -> bool:
    """Whether `text` is valid Unicode: JSON's `\\ud800` escapes can make a str holding a lone
    surrogate, which no UTF-8 output (a response, a hash of the prompt) can carry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def required_text(values: Mapping[str, Any], name: str, max_chars: int) -> str:
    """The string `values[name]`, 1 to `max_chars` characters of valid Unicode."""
    text = values.get(name)
    if text is None:
        raise InvalidParameter(name, f"{name} is required")
    if not isinstance(text, str):
        raise InvalidParameter(name, f"{name} must be a string")
    if not 1 <= len(text) <= max_chars:
        raise InvalidParameter(name, f"{name} must be 1 to {max_chars} characters long")
    if not is_unicode(text):
        raise InvalidParameter(name, f"{name} must be valid Unicode (it has a lone surrogate)")
    return text


def integer(values: Mapping[str, Any], name: str, default: int, low: int, high: int, *,
            from_text: bool = False) -> int:
    """The integer `values[name]` in `low..high`, `default` when absent.

    `from_text` accepts integers spelled as strings, as a query string carries them; JSON
    must carry real numbers.
    """
    raw = values.get(name)
    if raw is None:
        return default
    if from_text and isinstance(raw, str):
        try:
            raw = int(raw, 10)
        except ValueError:
            raise InvalidParameter(name, f"{name} must be an integer, got {raw!r}") from None
    # bool is an int in Python, never in a client's intent
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise InvalidParameter(name, f"{name} must be an integer")
    if not low <= raw <= high:
        raise InvalidParameter(name, f"{name} must be between {low} and {high}, got {raw}")
    return raw
