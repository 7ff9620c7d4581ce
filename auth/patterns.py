"""Channel patterns as tokens and PUBLIC_CHANNELS spell them: `news`, `orders:*`, `user:{sub}`.

`*` matches one or more characters other than `:`, so `orders:*` covers `orders:42` but never
`orders:42:refunds`: a pattern cannot reach across a level of the name. `{sub}` stands for the
token's own subject, matched literally (a subject holding `*` is no wildcard). Everything else
is matched literally.
"""

from __future__ import annotations

import re
from functools import lru_cache

SUBJECT = "{sub}"


class ChannelPattern:
    """One pattern, compiled once; `matches(channel, subject)` never fails."""

    __slots__ = ("_literal", "_needs_subject", "text")

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or not text:
            raise ValueError(f"a channel pattern is a non-empty string, got {text!r}")
        self.text = text
        self._needs_subject = SUBJECT in text
        self._literal = "*" not in text and not self._needs_subject

    def matches(self, channel: str, subject: str | None) -> bool:
        if self._literal:
            return channel == self.text
        if self._needs_subject and not subject:
            return False  # `user:{sub}` covers nothing for a bearer that has no subject
        return _compiled(self.text, subject if self._needs_subject else None).fullmatch(
            channel) is not None

    def __repr__(self) -> str:
        return f"ChannelPattern({self.text!r})"


@lru_cache(maxsize=4096)
def _compiled(text: str, subject: str | None) -> re.Pattern[str]:
    parts = []
    for piece in re.split(r"(\*|\{sub\})", text):
        if piece == "*":
            parts.append("[^:]+")
        elif piece == SUBJECT:
            parts.append(re.escape(subject or ""))
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts))


def patterns(texts: object, claim: str) -> tuple[ChannelPattern, ...]:
    """The patterns of a claim (a list of strings); ValueError naming `claim` otherwise."""
    if texts is None:
        return ()
    if not isinstance(texts, list) or not all(isinstance(t, str) and t for t in texts):
        raise ValueError(f"{claim} must be a list of channel patterns (non-empty strings)")
    return tuple(ChannelPattern(text) for text in texts)


def any_matches(candidates: tuple[ChannelPattern, ...], channel: str,
                subject: str | None) -> bool:
    return any(pattern.matches(channel, subject) for pattern in candidates)
