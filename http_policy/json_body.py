"""Strict JSON for request bodies and messages: RFC 8259 text, finite numbers, bounded nesting.

Python's `json` accepts more than RFC 8259, and what it accepts would go back out:

1. `NaN`, `Infinity` and `-Infinity`, and literals such as `1e400` that overflow to `inf`:
   written back out (`data: NaN`) they make every JavaScript `JSON.parse` throw. Refused.
2. Any nesting depth, until the C parser runs out of recursion (`RecursionError`, not a
   `ValueError`, about a thousand levels in, fewer the deeper the caller's stack). Refused past
   MAX_DEPTH, counted before parsing, so the parser never gets that deep.

Integers are left as Python reads them: exact, written back as sent, and each parameter that is
one checks its range. `parse_json` is one C pass of `json.loads` plus a few C passes over the
bytes (`str.count`, `bytes.translate`, one regular expression): a 64 KiB body costs about a
millisecond whatever its shape, so it may run on the event loop.
"""

from __future__ import annotations

import json
import math
import re
import sys

MAX_DEPTH = 64
"""Arrays and objects nested in one another, at most (`[]` is one level, `{"a": []}` two).

Our own bodies nest four levels at most (a chat completion's content parts); a channel's `data`
is the publisher's, and 64 leaves it room. The limit is .NET System.Text.Json's default
`MaxDepth`, and far below the depth at which Python's parser or encoder raises RecursionError
from wherever a request's greenlet stands."""


class InvalidJSON(ValueError):
    """Text this policy refuses; `str(exc)` says why, to be shown to the client."""


def parse_json(data: bytes | str) -> object:
    """The value of the JSON text `data` (bytes as `json.loads` decodes them: UTF-8, or UTF-16
    or UTF-32 by its first bytes); InvalidJSON if it is not RFC 8259 JSON, holds a number no
    float can carry, or nests deeper than MAX_DEPTH."""
    _check_depth(_utf8(data))
    try:
        return json.loads(data, parse_constant=_refuse_constant, parse_float=_finite_float)
    except InvalidJSON:
        raise
    except json.JSONDecodeError as exc:
        raise InvalidJSON(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError as exc:
        raise InvalidJSON(f"it is not valid {exc.encoding}") from None
    except ValueError:  # the only other one: PyLong's limit on the digits of an integer
        raise InvalidJSON(
            f"an integer has more than {sys.get_int_max_str_digits()} digits") from None


def _refuse_constant(name: str) -> float:
    raise InvalidJSON(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidJSON(f"the number {text[:40]} is out of range")
    return value


def _utf8(data: bytes | str) -> bytes:
    """`data` as UTF-8 bytes, for the depth count; undecodable bytes are left for json.loads
    to refuse."""
    if isinstance(data, str):
        return data.encode("utf-8", "surrogatepass")
    encoding = json.detect_encoding(data)
    if encoding == "utf-8":
        return data
    try:
        return data.decode(encoding, "surrogatepass").encode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return b""


# --- the depth count -------------------------------------------------------------------------

_STRUCTURE = b'[]{}"'
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(_STRUCTURE)))


def _within(depth: int) -> re.Pattern[bytes]:
    """Bracket sequences of complete groups nested at most `depth` deep. Possessive repeats:
    the grammar has one way to match, so nothing is ever tried twice (linear time)."""
    group = rb"[\[{][\]}]"
    for _ in range(depth - 1):
        group = rb"[\[{](?:" + group + rb")*+[\]}]"
    return re.compile(rb"(?:" + group + rb")*+")


_SHALLOW = _within(MAX_DEPTH)


def _check_depth(text: bytes) -> None:
    """InvalidJSON if `text`'s brackets nest deeper than MAX_DEPTH, or do not balance where the
    parser would follow them that deep. Brackets of any kind count alike: which closes which is
    the parser's to check."""
    if text.count(b"[") + text.count(b"{") <= MAX_DEPTH:
        return  # no deeper than it has openers
    brackets = _brackets(text)
    end = _SHALLOW.match(brackets).end()
    if end == len(brackets) or brackets[end] in b"]}":
        # Balanced and shallow; or a closer with nothing open after complete shallow groups,
        # where the parser stops without going deeper.
        return
    opened = brackets.count(b"[") + brackets.count(b"{")
    if opened * 2 == len(brackets):
        raise InvalidJSON(f"it nests deeper than {MAX_DEPTH} levels")
    raise InvalidJSON("its brackets do not balance")


def _brackets(text: bytes) -> bytes:
    """The brackets of `text` that are outside its strings.

    A run of backslashes pairs up from its left, as JSON reads escapes; an odd one left over
    escapes the next character, which matters only when it is a quote. UTF-8 puts no ASCII
    byte inside a multi-byte character, so every byte matched here is the character it looks
    like. Text that is not JSON may be cut up wrongly, but only past the point where the
    parser finds it is not.
    """
    unescaped = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    pieces = unescaped.translate(None, _NOT_STRUCTURE).split(b'"')
    return b"".join(pieces[::2])  # the odd pieces are inside strings
