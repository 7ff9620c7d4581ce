"""generation/schedule.py: each event of a generation with the time it is due."""

from __future__ import annotations

import pytest

from generation import demo_model
from generation.events import End, Start, Token
from generation.params import GenerationParams
from generation.schedule import schedule


def expected(params: GenerationParams, after: int | None) -> list:
    """The schedule as the rule says: token i after (i - first + 1) delays, end with the last."""
    delay, first = params.delay_ms / 1000, 0 if after is None else after + 1
    texts = list(demo_model.generate(params.prompt, params.tokens))
    events = [] if after is not None else [(0.0, Start("demo", params.tokens))]
    events += [((i - first + 1) * delay, Token(i, texts[i])) for i in range(first, params.tokens)]
    return [*events, ((params.tokens - first) * delay, End("stop", params.tokens))]


@pytest.mark.parametrize(("tokens", "delay_ms", "after"), [
    (1, 0, None), (5, 20, None), (300, 7, None), (5, 20, 0), (5, 20, 3), (5, 20, 4),
])
def test_every_event_is_due_as_the_rule_says(tokens, delay_ms, after):
    params = GenerationParams("a prompt", tokens, delay_ms)
    assert list(schedule(params, after)) == expected(params, after)


def test_an_idle_stream_holds_no_generator_frame():
    events = schedule(GenerationParams("idle", 10_000, 10_000))
    next(events)
    assert not hasattr(events, "gi_frame")
    assert not hasattr(events, "__dict__")  # a few numbers in slots
