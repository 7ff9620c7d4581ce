"""A model backend the tests script: its tokens, pace, refusal, failure and ending."""

from __future__ import annotations

from collections.abc import Iterator

from generation.backends import AnswerFailed, ModelError
from generation.events import End, Token
from streaming.cancellation import Cancellation
from streaming.failure import Failure


class ScriptedAnswer:
    def __init__(self, backend: ScriptedBackend, cancellation: Cancellation) -> None:
        self.model = backend.model
        self._backend = backend
        self._cancellation = cancellation
        self.closed = False

    def __iter__(self) -> Iterator[Token | End]:
        script = self._backend
        for index, text in enumerate(script.tokens):
            if index == script.fail_at:
                raise AnswerFailed(Failure("stream_error", "the model's stream was cut"))
            if (script.delay and self._cancellation.wait(script.delay)) or self.closed:
                return
            yield Token(index, text)
        yield End(script.finish_reason, len(script.tokens), script.usage)

    def close(self) -> None:
        self.closed = True
        self._backend.closed += 1


class ScriptedBackend:
    """Answers with `tokens`, `delay` seconds apart; `refusal` is raised by `open` instead;
    `fail_at` cuts the answer before that token. `opened` and `closed` count answers."""

    name = "upstream"
    model = "scripted"

    def __init__(self, tokens: list[str], *, delay: float = 0.0,
                 refusal: ModelError | None = None, fail_at: int | None = None,
                 finish_reason: str = "stop", usage: dict | None = None) -> None:
        self.tokens = tokens
        self.delay = delay
        self.refusal = refusal
        self.fail_at = fail_at
        self.finish_reason = finish_reason
        self.usage = usage
        self.opened = 0
        self.closed = 0

    def open(self, params, cancellation: Cancellation, base_url: str) -> ScriptedAnswer:
        self.opened += 1
        if self.refusal is not None:
            raise self.refusal
        return ScriptedAnswer(self, cancellation)
