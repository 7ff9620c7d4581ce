"""generation/chat_stream.py: OpenAI's chat-completions event stream as tokens and an end."""

from __future__ import annotations

import json

import pytest

from generation import demo_model
from generation.backends import AnswerFailed
from generation.events import End, Start, Token
from llm.chat_stream import (
    EVENT_MAX_BYTES,
    MESSAGE_MAX_CHARS,
    ChatStreamParser,
    bounded_message,
)
from llm.mock import ChatChunkFormat, parse_chat_request


def _mock_bytes(body: dict) -> tuple[bytes, ChatChunkFormat]:
    chat = parse_chat_request(body)
    fmt = ChatChunkFormat(chat)
    texts = demo_model.generate(chat.params.prompt, chat.params.tokens)
    items = [Start(chat.model, chat.params.tokens), *(Token(i, t) for i, t in enumerate(texts)),
             End("stop", chat.params.tokens)]
    return fmt.chunk(items), fmt


@pytest.mark.parametrize("piece", [1, 7, 1 << 20])
def test_the_mocks_stream_parses_into_the_demo_models_answer(piece):
    body = {"model": "m", "stream": True, "stream_options": {"include_usage": True},
            "max_tokens": 30, "messages": [{"role": "user", "content": "one two three"}]}
    data, fmt = _mock_bytes(body)
    parser = ChatStreamParser()
    events = [e for at in range(0, len(data), piece) for e in parser.feed(data[at:at + piece])]
    assert "".join(e.text for e in events[:-1]) == demo_model.complete("one two three", 30)
    assert [e.index for e in events[:-1]] == list(range(30))
    assert events[-1] == End("length", 30, fmt.usage(30))
    assert parser.done and parser.feed(b"data: [DONE]\n\n") == []


def test_an_upstream_without_usage_ends_without_it():
    data, _ = _mock_bytes({"model": "m", "stream": True, "max_tokens": 2,
                           "messages": [{"role": "user", "content": "x"}]})
    assert ChatStreamParser().feed(data)[-1] == End("length", 2, None)


@pytest.mark.parametrize("usage", [None, {"prompt_tokens": 1}, "3",
                                   {"prompt_tokens": 1, "completion_tokens": True,
                                    "total_tokens": 2}])
def test_usage_that_is_not_three_counts_is_ignored(usage):
    parser = ChatStreamParser()
    chunk = {"choices": [{"delta": {}, "finish_reason": "stop"}], "usage": usage}
    assert parser.feed(b"data: %s\n\ndata: [DONE]\n\n" % json.dumps(chunk).encode()) == [
        End("stop", 0, None)]


@pytest.mark.parametrize("lines", [
    b": comment\nevent: message\nid: 3\nretry: 10\n\n",
    b'data: {"choices":[]}\n\n',
    b'data: {"choices":[{"delta":{"content":null}}]}\n\n',
    b'data: {"choices":[{"delta":{"content":""}}]}\n\n',
    b'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n',
    b'data: {"choices":["x"]}\n\n',
])
def test_what_carries_no_content_gives_no_token(lines):
    assert ChatStreamParser().feed(lines) == []


@pytest.mark.parametrize("data", [b"data: [1, 2]\n\n", b"data: nope\n\n",
                                  b'data: {"a": NaN}\n\n', b"data: " + b"[" * 5000 + b"\n\n"])
def test_events_that_are_not_json_objects_fail(data):
    parser = ChatStreamParser()
    assert parser.feed(data) == []
    with pytest.raises(AnswerFailed, match="not a JSON object"):
        parser.raise_failure()


def test_an_event_larger_than_the_bound_fails_before_it_is_parsed():
    parser = ChatStreamParser()
    parser.feed(b'data: {"x": "')
    with pytest.raises(AnswerFailed, match="larger than"):
        for _ in range(EVENT_MAX_BYTES // 16384 + 2):
            parser.feed(b"y" * 16384)


def test_an_error_event_without_a_message_still_fails():
    parser = ChatStreamParser()
    parser.feed(b'data: {"error": "boom"}\n\n')
    with pytest.raises(AnswerFailed, match="no reason given"):
        parser.raise_failure()


def test_tokens_read_together_with_a_failure_come_out_before_it():
    parser = ChatStreamParser()
    tokens = parser.feed(b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'
                         b'data: {"choices":[{"delta":{"content":"b"}}]}\n\ndata: nope\n\n')
    assert [token.text for token in tokens] == ["a", "b"]
    with pytest.raises(AnswerFailed, match="not a JSON object"):
        parser.feed(b"data: [DONE]\n\n")
    with pytest.raises(AnswerFailed, match="not a JSON object"):
        parser.end_of_stream()


def test_bounded_messages_lose_keys_and_length():
    assert bounded_message("key sk-proj-AbC_12*** and my-secret", "my-secret") == (
        "key sk-*** and ***")
    long = bounded_message("x" * 2000)
    assert len(long) == MESSAGE_MAX_CHARS and long.endswith("…")
