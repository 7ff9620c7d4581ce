"""The mock upstream's answers: chat-completion requests mapped onto the demo model.

References: OpenAI's API reference, "Chat Completions" (`chat.completion`, `chat.completion.chunk`,
`stream_options.include_usage`); the errors and `[DONE]` are the proxy's too (`wire.py`). This
module does no I/O, and is the only one of `llm` that uses the demo model (`generation`).

Mapping the demo model onto the chat API (deliberate choices where OpenAI has no equivalent):

1. The prompt is the last user message's content (text parts joined); earlier messages only
   count towards `usage.prompt_tokens`, which is the number of whitespace-separated words.
2. `max_completion_tokens` (or the older `max_tokens`) is the answer's length, since the demo
   model never stops by itself; the finish reason is then `length`, otherwise `stop` after
   `TOKENS_DEFAULT` tokens.
3. Any model name is accepted and echoed back, so a client configured for a real model works.
4. `delay_ms`, the pause before each token, is an extra body field (or the `X-Mock-Delay-Ms`
   header); a real API has no such thing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from generation import demo_model
from generation.events import End, GenerationEvent, Start, Token
from generation.params import (
    DELAY_MS_DEFAULT,
    DELAY_MS_MAX,
    TOKENS_DEFAULT,
    TOKENS_MAX,
    GenerationParams,
)
from http_policy.validation import ascii_integer
from streaming.encoding import compact_json
from streaming.failure import Failure
from streaming.sse import ServerSentEvent

from .wire import DONE, OpenAIError, error_event


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated `POST /chat/completions` body, mapped onto the demo model."""

    model: str
    params: GenerationParams
    stream: bool
    include_usage: bool
    finish_reason: str
    prompt_tokens: int


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts; only text parts carry text
        return "".join(part.get("text", "") for part in content
                       if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""


def _bounded(body: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise OpenAIError(400, f"{name} must be an integer between {low} and {high}",
                          param=name, code="invalid_value")
    return value


def _delay(body: Mapping[str, Any], header: str | None) -> int:
    raw = body.get("delay_ms")
    if raw is None and header is not None:
        raw = ascii_integer(header)
        if raw is None:
            raise OpenAIError(400, "X-Mock-Delay-Ms must be an integer",
                              param="delay_ms", code="invalid_value")
    delay = _bounded({"delay_ms": raw}, "delay_ms", 0, DELAY_MS_MAX)
    return DELAY_MS_DEFAULT if delay is None else delay


def _messages(body: Mapping[str, Any]) -> list[dict]:
    messages = body.get("messages")
    if (not isinstance(messages, list) or not messages
            or not all(isinstance(m, dict) for m in messages)):
        raise OpenAIError(400, "messages must be a non-empty array of message objects",
                          param="messages")
    if not any(m.get("role") == "user" for m in messages):
        raise OpenAIError(400, "messages must contain a user message", param="messages")
    return messages


def parse_chat_request(body: Mapping[str, Any], delay_header: str | None = None) -> ChatRequest:
    """Validate a chat-completions body; raises OpenAIError (400) naming the bad parameter."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise OpenAIError(400, "you must provide a model parameter", param="model")
    messages = _messages(body)
    prompt = _text(next(m for m in reversed(messages) if m.get("role") == "user").get("content"))
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise OpenAIError(400, "stream must be a boolean", param="stream")
    options = body.get("stream_options")
    if options is not None and (not stream or not isinstance(options, dict)):
        raise OpenAIError(400, "stream_options is only allowed when stream is true",
                          param="stream_options")
    # Both are checked, though max_completion_tokens wins: a bad value is never ignored.
    limit = _bounded(body, "max_completion_tokens", 1, TOKENS_MAX)
    legacy_limit = _bounded(body, "max_tokens", 1, TOKENS_MAX)
    if limit is None:
        limit = legacy_limit
    params = GenerationParams(prompt, limit or TOKENS_DEFAULT, _delay(body, delay_header))
    words = sum(len(_text(m.get("content")).split()) for m in messages)
    return ChatRequest(model, params, stream, bool((options or {}).get("include_usage")),
                       "stop" if limit is None else "length", words)


class _Completion:
    """What the streamed and the whole answer share: id, creation time, usage."""

    def __init__(self, chat: ChatRequest) -> None:
        self.chat = chat
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())

    def usage(self, completion_tokens: int) -> dict:
        prompt = self.chat.prompt_tokens
        return {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
                "total_tokens": prompt + completion_tokens}


def completion(chat: ChatRequest) -> dict:
    """The `chat.completion` object of a non-streaming call."""
    answer = _Completion(chat)
    text = demo_model.complete(chat.params.prompt, chat.params.tokens)
    choice = {"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
              "logprobs": None, "finish_reason": chat.finish_reason}
    return {"id": answer.id, "object": "chat.completion", "created": answer.created,
            "model": chat.model, "choices": [choice], "usage": answer.usage(chat.params.tokens)}


class ChatChunkFormat(_Completion):
    """`chat.completion.chunk` events in OpenAI's framing: `data: {json}\\n\\n` each.

    A generation's Start becomes the chunk whose delta carries the role, each Token a content
    delta, End the chunk with `finish_reason`, then (with `include_usage`) the usage chunk with
    no choices, then `data: [DONE]`. No heartbeat: OpenAI sends no comments. A token's event is
    encoded once per stream and text (the vocabulary is small), so a fast stream costs a dict
    lookup per token.
    """

    media_type = "text/event-stream"
    heartbeat: bytes | None = None

    def __init__(self, chat: ChatRequest) -> None:
        super().__init__(chat)
        self._tokens: dict[str, str] = {}

    def _event(self, choices: list, **usage: Any) -> str:
        chunk = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                 "model": self.chat.model, "choices": choices}
        if self.chat.include_usage:  # OpenAI then writes `usage` on every chunk, null but last
            chunk["usage"] = usage.get("usage")
        return ServerSentEvent(compact_json(chunk)).text()

    def _delta(self, delta: dict, finish_reason: str | None = None) -> str:
        return self._event([{"index": 0, "delta": delta, "logprobs": None,
                             "finish_reason": finish_reason}])

    def encode(self, item: GenerationEvent) -> str:
        if type(item) is Token:
            text = self._tokens.get(item.text)
            if text is None:
                text = self._tokens[item.text] = self._delta({"content": item.text})
            return text
        if type(item) is Start:
            return self._delta({"role": "assistant", "content": "", "refusal": None})
        if type(item) is End:
            end = self._delta({}, self.chat.finish_reason)
            if self.chat.include_usage:
                end += self._event([], usage=self.usage(item.tokens))
            return end + DONE.decode()
        return ""

    def preamble(self) -> bytes:
        return b""

    def chunk(self, batch: list) -> bytes:
        return "".join(map(self.encode, batch)).encode()

    def failure(self, failure: Failure) -> bytes | None:
        return error_event(failure)


def models() -> dict:
    """The `GET /models` list: the demo model only."""
    model = {"id": demo_model.MODEL_NAME, "object": "model", "created": 0, "owned_by": "demo"}
    return {"object": "list", "data": [model]}
