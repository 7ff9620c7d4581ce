"""A generation as a broker topic, and its state read back from it.

The topic `generation/<id>` is positioned (`Broker.publish_open(position=...)`): an event's id
is `<tokens so far>-<n>`, so the event holding token k is found in one read, without scanning,
whichever worker or instance asks. Its events:

- `start` at position 0: `{"model", "tokens", "backend"}` (`tokens`: the length asked for);
- `tokens` at the count after them: `{"from": first index, "text": [token, ...]}`, one event per
  batch the runner published (what the model produced while the last write was under way);
- then one final event: `end` (`{"finish_reason"[, "usage"]}`; `cancelled` when cancelled) or
  `failed` (`{"type", "message"[, "upstream_status"]}`), whose position is the token count.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from broker import Event
from generation.events import End, Start, Token
from http_policy.validation import InvalidParameter, ascii_integer
from streaming.encoding import compact_json
from streaming.failure import Failure

RUNNING, DONE, FAILED, CANCELLED = "running", "done", "failed", "cancelled"
START, TOKENS, END, FAILED_EVENT = "start", "tokens", "end", "failed"

_ID = re.compile(r"[0-9a-f]{32}")


def new_id() -> str:
    return uuid.uuid4().hex


def is_generation_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None


def parse_resume_id(raw: str) -> tuple[str, int]:
    """A direct stream's Last-Event-ID, `<generation>` (the start) or `<generation>:<index>`
    (or the token count, after the end): the generation and the last token index the client
    has (-1 for none)."""
    generation, colon, index = raw.partition(":")
    if is_generation_id(generation):
        if not colon:
            return generation, -1
        value = ascii_integer(index)
        if value is not None and not index.startswith("-"):
            return generation, value
    raise InvalidParameter("last_event_id", "Last-Event-ID must be <generation>:<index>, "
                                            f"got {raw[:80]!r}")


def topic(generation: str) -> str:
    return f"generation/{generation}"


def runner_lease(generation: str) -> str:
    """Held by the worker answering: expired without an end means that worker died."""
    return f"generation/{generation}"


def viewers_lease(generation: str) -> str:
    """Held while a viewer on a worker other than the runner's watches."""
    return f"generation/{generation}/viewers"


def start_data(model: str, tokens: int, backend: str) -> str:
    return compact_json({"model": model, "tokens": tokens, "backend": backend})


def tokens_data(first: int, texts: list[str]) -> str:
    return compact_json({"from": first, "text": texts})


def end_data(finish_reason: str, usage: dict | None = None) -> str:
    body: dict[str, Any] = {"finish_reason": finish_reason}
    if usage is not None:
        body["usage"] = usage
    return compact_json(body)


def failed_data(type_: str, message: str, upstream_status: int | None = None) -> str:
    body: dict[str, Any] = {"type": type_, "message": message}
    if upstream_status is not None:
        body["upstream_status"] = upstream_status
    return compact_json(body)


def decode(event: Event, generation: str) -> list[Start | Token | End | Failure]:
    """The generation events one broker event holds."""
    data = json.loads(event.data)
    if event.event == TOKENS:
        first = data["from"]
        return [Token(first + offset, text) for offset, text in enumerate(data["text"])]
    if event.event == START:
        return [Start(data["model"], data["tokens"], data["backend"], generation)]
    if event.event == END:
        return [End(data["finish_reason"], event.key[0], data.get("usage"))]
    return [Failure(data["type"], data["message"])]


@dataclass
class GenerationState:
    """What `GET /api/generations/<id>` answers."""

    id: str
    status: str = RUNNING
    tokens: int = 0
    finish_reason: str | None = None
    usage: dict | None = None
    text: str = ""
    error: dict | None = None
    _parts: list[str] = field(default_factory=list, repr=False)

    def add(self, event: Event) -> None:
        data = json.loads(event.data)
        if event.event == TOKENS:
            self._parts.extend(data["text"])
            self.tokens = event.key[0]
        elif event.event == END:
            self.finish_reason = data["finish_reason"]
            self.usage = data.get("usage")
            self.status = CANCELLED if self.finish_reason == "cancelled" else DONE
        elif event.event == FAILED_EVENT:
            self.status = FAILED
            self.error = data

    def as_json(self) -> dict:
        body = {"id": self.id, "status": self.status, "tokens": self.tokens,
                "finish_reason": self.finish_reason, "usage": self.usage,
                "text": "".join(self._parts)}
        if self.error is not None:
            body["error"] = self.error
        return body
