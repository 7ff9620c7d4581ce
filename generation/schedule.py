"""A demo-model generation as a schedule: each event paired with when it is due.

Token i of a stream is due `(i + 1) * delay` after the stream starts, measured from the start
rather than from the previous token, so per-token overhead never accumulates into drift.
"""

from __future__ import annotations

from collections.abc import Iterator

from . import demo_model
from .events import End, Start, Token
from .params import GenerationParams


def schedule(params: GenerationParams, after: int | None = None
             ) -> Iterator[tuple[float, Start | Token | End]]:
    """The events of `params`' generation; with `after`, only the tokens past that index.

    A resumed stream (`after` given) has no start event: the client has seen it.
    """
    delay = params.delay_ms / 1000
    first = 0 if after is None else after + 1
    if after is None:
        yield 0.0, Start(demo_model.MODEL_NAME, params.tokens)
    step = 0
    for step, text in enumerate(demo_model.generate(params.prompt, params.tokens, first), 1):
        yield step * delay, Token(first + step - 1, text)
    yield step * delay, End("stop", params.tokens)
