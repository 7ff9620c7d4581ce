"""`demo` as a model backend: the demo model's tokens, paced by `delay_ms` from the start."""

from __future__ import annotations

import time
from collections.abc import Iterator

from streaming.cancellation import Cancellation

from . import demo_model
from .events import End, Token
from .params import GenerationParams


class DemoAnswer:
    def __init__(self, params: GenerationParams, cancellation: Cancellation) -> None:
        self.model = demo_model.MODEL_NAME
        self._params = params
        self._cancellation = cancellation
        self._closed = False

    def __iter__(self) -> Iterator[Token | End]:
        delay = self._params.delay_ms / 1000
        seed = demo_model.seed(self._params.prompt)
        started = time.monotonic()
        for index in range(self._params.tokens):
            # Due from the start, as a schedule is, so the pace never drifts.
            wait = started + (index + 1) * delay - time.monotonic()
            if self._cancellation.wait(max(wait, 0.0)) or self._closed:
                return
            yield Token(index, demo_model.token(seed, index))
        yield End("stop", self._params.tokens)

    def close(self) -> None:
        self._closed = True


class DemoBackend:
    name = "demo"
    model = demo_model.MODEL_NAME

    def open(self, params: GenerationParams, cancellation: Cancellation,
             base_url: str) -> DemoAnswer:
        return DemoAnswer(params, cancellation)
