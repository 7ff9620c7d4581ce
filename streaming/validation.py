"""The error every validator raises: which parameter, and what is allowed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class InvalidParameter(ValueError):
    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


def required_text(values: Mapping[str, Any], name: str, max_chars: int) -> str:
    """The string `values[name]`, 1 to `max_chars` characters long."""
    text = values.get(name)
    if text is None:
        raise InvalidParameter(name, f"{name} is required")
    if not isinstance(text, str):
        raise InvalidParameter(name, f"{name} must be a string")
    if not 1 <= len(text) <= max_chars:
        raise InvalidParameter(name, f"{name} must be 1 to {max_chars} characters long")
    return text
