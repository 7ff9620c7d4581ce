"""Tests for generation.ws_chat: what a generation writes."""

from __future__ import annotations

from generation import demo_model
from generation.events import End, Start, Token
from generation.formats import json_message
from generation.params import GenerationParams
from generation.ws_chat import ChatGeneration
from streaming.websocket import text_frames


def test_frames_are_the_json_messages_of_the_events():
    generation = ChatGeneration(GenerationParams("frames", 2, 0))
    batch = [item for _, item in generation.items()]
    assert batch == [Start("demo", 2), *(Token(i, t) for i, t in
                     enumerate(demo_model.generate("frames", 2))), End("stop", 2)]
    assert generation.frames(batch) == text_frames(json_message(item) for item in batch)


def test_a_generation_counts_what_it_wrote_for_its_cancelled_end():
    generation = ChatGeneration(GenerationParams("count", 3, 0))
    items = [item for _, item in generation.items()]
    generation.frames(items[:2])  # start and one token
    assert generation.tokens == 1 and not generation.done
    assert generation.finish() == text_frames(
        ['{"type":"end","finish_reason":"cancelled","tokens":1}'])
    generation.frames(items[2:])
    assert generation.tokens == 3 and generation.done
    assert generation.finish() == b""  # the stop end went out: a late cancel adds nothing
