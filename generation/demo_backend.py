"""`demo` as a model backend: the built-in model's answer, paced by `delay_ms`.

The pacing is the schedule's (`schedule.py`): token i is due `(i + 1) * delay` after the
answer began, measured from the start so per-token overhead never accumulates into drift.
The answer waits on a cancellation of its own, linked to the caller's, so either a cancel or
`close()` wakes it at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from streaming.cancellation import Cancellation

from . import demo_model
from .events import End, Token
from .params import GenerationParams

YIELD_EVERY = 256
"""Tokens due at once (`delay_ms` 0) given out before the answer lets the loop run others."""


class DemoAnswer:
    """The demo model's tokens for `params`, then `End("stop")`; never fails."""

    model = demo_model.MODEL_NAME

    def __init__(self, params: GenerationParams, cancellation: Cancellation) -> None:
        self._params = params
        self._stop = Cancellation()
        cancellation.on_cancel(self._stop.cancel)
        self._events = self._paced()

    def __iter__(self) -> Iterator[Token | End]:
        return self._events

    def close(self) -> None:
        """Stop the answer, waking it if it waits for its next token."""
        self._stop.cancel("closed")

    def _paced(self) -> Iterator[Token | End]:
        params, stop = self._params, self._stop
        seed = demo_model.seed(params.prompt)
        delay = params.delay_ms / 1000
        began = time.monotonic()
        for index in range(params.tokens):
            wait = began + (index + 1) * delay - time.monotonic()
            if wait > 0 or index % YIELD_EVERY == YIELD_EVERY - 1:
                stop.wait(max(wait, 0.0))
            if stop.cancelled:
                return
            yield Token(index, demo_model.token(seed, index))
        if not stop.cancelled:
            yield End("stop", params.tokens)


class DemoBackend:
    """The built-in model: no I/O, so `open` answers at once and never raises."""

    name = "demo"
    model = demo_model.MODEL_NAME

    def open(self, params: GenerationParams, cancellation: Cancellation,
             base_url: str) -> DemoAnswer:
        return DemoAnswer(params, cancellation)
