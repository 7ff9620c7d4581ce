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


def ascii_integer(text: str) -> int | None:
    """`text` as an integer if it is ASCII digits after an optional minus sign, else None.

    `int()` takes more: any Unicode digit (a full-width "\uff13"), spaces around, "+", "1_000",
    none of which a client means as a number in a query string or a header.
    """
    digits = text.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()):
        return None
    try:
        return int(text)
    except ValueError:  # more digits than int() reads (sys.get_int_max_str_digits)
        return None


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
        number = ascii_integer(raw)
        if number is None:
            raise InvalidParameter(name, f"{name} must be an integer, got {raw[:40]!r}")
        raw = number
    # bool is an int in Python, never in a client's intent
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise InvalidParameter(name, f"{name} must be an integer")
    if not low <= raw <= high:
        raise InvalidParameter(name, f"{name} must be between {low} and {high}, got {raw}")
    return raw


FLAGS = {"1": True, "true": True, "0": False, "false": False}


def flag(values: Mapping[str, Any], name: str, default: bool = False) -> bool:
    """The query flag `values[name]`: `1`/`true` or `0`/`false`, `default` when absent."""
    raw = values.get(name)
    if raw is None:
        return default
    if raw not in FLAGS:
        raise InvalidParameter(name, f"{name} must be 1, 0, true or false, got {str(raw)[:40]!r}")
    return FLAGS[raw]
