"""OpenAI's chat-completions event stream read into `Token`s and an `End`, from any pieces.

Reference: OpenAI's API reference, "Chat Completions" streaming: `chat.completion.chunk`
events whose `choices[0].delta.content` carries the text, `finish_reason` on the last choice,
with `stream_options.include_usage` a last chunk with `usage` and no choices, then `data:
[DONE]`; an error mid-stream is an event holding the error object. This module does no I/O,
so the mock's own bytes can be checked against it (`llm/mock.py`).

Every failure is an `AnswerFailed` with type `stream_error`, and never invents an end: the
answer ends only with a finish reason the stream gave.
"""

from __future__ import annotations

import re
from typing import Any

from generation.backends import AnswerFailed
from generation.events import End, Token
from http_policy.json_body import InvalidJSON, parse_json
from streaming.failure import Failure
from streaming.sse import SSEParser

EVENT_MAX_BYTES = 256 * 1024
"""The largest event parsed: one parse must never hold the loop for long."""
MESSAGE_MAX_CHARS = 500
USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")

CUT = Failure("stream_error", "the model's stream was cut before its end")
NO_FINISH = Failure("stream_error", "the model's stream ended without a finish reason")
NOT_JSON = Failure("stream_error", "the model's stream sent an event that is not a JSON object")
TOO_LARGE = Failure("stream_error", f"the model's stream sent an event larger than "
                                    f"{EVENT_MAX_BYTES // 1024} KiB")

_KEY_LIKE = re.compile(r"sk-[\w*.-]{4,}")


def bounded_message(text: str, api_key: str = "") -> str:
    """An upstream's message as the client may see it: without the key (or anything shaped
    like an OpenAI key, which a 401 quotes partly) and at most MESSAGE_MAX_CHARS long."""
    if api_key:
        text = text.replace(api_key, "***")
    text = _KEY_LIKE.sub("sk-***", text)
    return text if len(text) <= MESSAGE_MAX_CHARS else text[:MESSAGE_MAX_CHARS - 1] + "…"


def error_message(value: Any) -> str | None:
    """`error.message` of OpenAI's error shape, if `value` has it."""
    error = value.get("error") if isinstance(value, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) and message else None


class ChatStreamParser:
    """The `Token`s and `End` of a chat-completions event stream, fed its bytes as they arrive.

    `feed` returns the events the bytes completed; after `[DONE]` (then `done`) it returns
    nothing more. At the end of the bytes, `end_of_stream` gives the `End` if the upstream had
    said how it finished. What no answer should carry is an `AnswerFailed`: `feed` returns the
    tokens before it, and `raise_failure()` (or the next `feed`) raises it, so no token that
    arrived in the same read as a failure is lost.
    """

    def __init__(self) -> None:
        self.done = False
        self._sse = SSEParser()
        self._tokens = 0
        self._finish_reason: str | None = None
        self._usage: dict | None = None
        self._unparsed = 0  # bytes fed since the last event completed
        self._failure: AnswerFailed | None = None

    def raise_failure(self) -> None:
        """Raise the failure the last `feed` met, if it met one."""
        if self._failure is not None:
            raise self._failure

    def feed(self, data: bytes) -> list[Token | End]:
        self.raise_failure()
        if self.done:
            return []
        events = self._sse.feed(data)
        self._unparsed = 0 if events else self._unparsed + len(data)
        if self._unparsed > EVENT_MAX_BYTES or any(len(e.data) > EVENT_MAX_BYTES
                                                   for e in events):
            raise AnswerFailed(TOO_LARGE)
        out: list[Token | End] = []
        try:
            for event in events:
                if event.data == "[DONE]":
                    self.done = True
                    out.append(self._end(NO_FINISH))
                    break
                token = self._chunk(event.data)
                if token is not None:
                    out.append(token)
        except AnswerFailed as failed:
            self._failure = failed
        return out

    def end_of_stream(self) -> End:
        """The `End` of a stream whose bytes ended without `[DONE]`."""
        self.raise_failure()
        return self._end(CUT)

    def _end(self, otherwise: Failure) -> End:
        if self._finish_reason is None:
            raise AnswerFailed(otherwise)
        return End(self._finish_reason, self._tokens, self._usage)

    def _chunk(self, data: str) -> Token | None:
        try:
            chunk = parse_json(data)
        except InvalidJSON:
            raise AnswerFailed(NOT_JSON) from None
        if not isinstance(chunk, dict):
            raise AnswerFailed(NOT_JSON)
        if "error" in chunk:
            said = error_message(chunk) or "no reason given"
            raise AnswerFailed(Failure("stream_error",
                                       f"the model's stream failed: {bounded_message(said)}"))
        self._note_usage(chunk.get("usage"))
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, dict):
            return None
        if isinstance(choice.get("finish_reason"), str) and choice["finish_reason"]:
            self._finish_reason = choice["finish_reason"]
        delta = choice.get("delta")
        content = delta.get("content") if isinstance(delta, dict) else None
        if not isinstance(content, str) or not content:
            return None
        self._tokens += 1
        return Token(self._tokens - 1, content)

    def _note_usage(self, usage: Any) -> None:
        if isinstance(usage, dict) and all(
                type(usage.get(key)) is int for key in USAGE_KEYS):
            self._usage = {key: usage[key] for key in USAGE_KEYS}
