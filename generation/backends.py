"""Model backends: what answers a generation, behind one interface for every transport.

`demo` is the built-in model (`demo_model.py`), paced by `delay_ms`; `upstream` is any
OpenAI-compatible chat-completions API (`upstream_model.py`). A backend's `open` blocks until the
model began its answer (for an API, until its response headers came) and returns an `Answer`,
or raises `ModelError` (the model refused or could not be reached: an HTTP error, since nothing
was streamed yet). An `Answer` is an iterator of `Token`s (indexes from 0) and then one `End`;
once it began, a failure raises `AnswerFailed` carrying the `Failure` each transport reports in
band. `close()` cuts the model off (the upstream sees its stream closed) and may be called from
any greenlet, more than once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from streaming.cancellation import Cancellation
from streaming.failure import Failure

from .events import End, Token
from .params import GenerationParams


class ModelError(Exception):
    """The model's refusal or failure before anything streamed, as an HTTP error.

    `type` is one of `upstream_unreachable` (502), `upstream_timeout` (504),
    `upstream_rate_limited` (429, with `retry_after`) and `upstream_error` (502, with the
    upstream's `upstream_status`). `message` goes to the client: never a key or internal detail.
    """

    def __init__(self, status: int, type_: str, message: str, *,
                 upstream_status: int | None = None, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.upstream_status = upstream_status
        self.retry_after = retry_after


class AnswerFailed(Exception):
    """An answer that stopped midway for a reason other than its end or a cancel."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class Answer(Protocol):
    model: str
    """The model name the answer's `start` reports."""

    def __iter__(self) -> Iterator[Token | End]: ...

    def close(self) -> None: ...


class Backend(Protocol):
    name: str
    """`demo` or `upstream`: what `start` reports as `backend`."""
    model: str
    """The model it asks for (CHAT_MODEL), what `start` reports as `model`."""

    def open(self, params: GenerationParams, cancellation: Cancellation,
             base_url: str) -> Answer | None:
        """The model's answer once it began; None if `cancellation` was set first.

        `base_url` is this server's own mock as the request reached it (`llm.mock_address
        .self_base_url`), the upstream when none is configured.
        """
        ...
