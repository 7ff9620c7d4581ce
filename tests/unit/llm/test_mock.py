"""Tests for llm.mock: chat requests mapped onto the demo model, chunks as bytes."""

from __future__ import annotations

import json

import pytest

from generation import demo_model
from generation.events import Token
from generation.params import DELAY_MS_DEFAULT, TOKENS_DEFAULT
from generation.schedule import schedule
from llm.mock import ChatChunkFormat, completion, models, parse_chat_request
from llm.wire import DONE, OpenAIError, error_event
from streaming.failure import Failure

USER = {"role": "user", "content": "first question"}
CHAT = {"model": "gpt-4o", "messages": [USER]}


def test_defaults():
    chat = parse_chat_request(CHAT)
    assert chat.model == "gpt-4o"  # any model is accepted and echoed
    assert (chat.params.prompt, chat.params.tokens, chat.params.delay_ms) == (
        "first question", TOKENS_DEFAULT, DELAY_MS_DEFAULT)
    assert (chat.stream, chat.include_usage, chat.finish_reason) == (False, False, "stop")


def test_the_prompt_is_the_last_user_message_and_every_message_counts_as_prompt_tokens():
    messages = [USER, {"role": "assistant", "content": "an answer"},
                {"role": "user", "content": [{"type": "text", "text": "second "},
                                             {"type": "image_url", "image_url": {}},
                                             {"type": "text", "text": "question"}]},
                {"role": "assistant", "content": None}]
    chat = parse_chat_request({"model": "demo", "messages": messages})
    assert chat.params.prompt == "second question"
    assert chat.prompt_tokens == 6


def test_max_completion_tokens_wins_over_max_tokens_and_means_length():
    chat = parse_chat_request({**CHAT, "max_tokens": 9, "max_completion_tokens": 3})
    assert (chat.params.tokens, chat.finish_reason) == (3, "length")


def test_delay_from_the_body_or_else_the_header():
    assert parse_chat_request({**CHAT, "delay_ms": 0}, "900").params.delay_ms == 0
    assert parse_chat_request(CHAT, "900").params.delay_ms == 900


def test_include_usage_needs_stream():
    chat = parse_chat_request({**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert chat.include_usage
    with pytest.raises(OpenAIError) as caught:
        parse_chat_request({**CHAT, "stream_options": {"include_usage": True}})
    assert caught.value.param == "stream_options"


@pytest.mark.parametrize(("body", "header", "param"), [
    ({"messages": [USER]}, None, "model"),
    ({"model": "", "messages": [USER]}, None, "model"),
    ({"model": "demo"}, None, "messages"),
    ({"model": "demo", "messages": ["hi"]}, None, "messages"),
    ({**CHAT, "max_tokens": True}, None, "max_tokens"),
    ({**CHAT, "max_tokens": 10_001}, None, "max_tokens"),
    ({**CHAT, "delay_ms": -1}, None, "delay_ms"),
    (CHAT, "1.5", "delay_ms"),
    ({**CHAT, "stream": 1}, None, "stream"),
])
def test_invalid_values_name_their_parameter(body, header, param):
    with pytest.raises(OpenAIError) as caught:
        parse_chat_request(body, header)
    assert (caught.value.status, caught.value.param) == (400, param)


def _stream(body: dict) -> bytes:
    fmt = ChatChunkFormat(parse_chat_request(body))
    fmt.id, fmt.created = "chatcmpl-x", 7
    return fmt.chunk([item for _, item in schedule(fmt.chat.params)])


def test_chunks_byte_for_byte():
    head = b'data: {"id":"chatcmpl-x","object":"chat.completion.chunk","created":7,"model":"m",'
    text = next(demo_model.generate("q", 1))
    assert _stream({"model": "m", "messages": [{"role": "user", "content": "q"}],
                    "max_tokens": 1, "stream": True}) == (
        head + b'"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
        b'"logprobs":null,"finish_reason":null}]}\n\n'
        + head + b'"choices":[{"index":0,"delta":{"content":' + json.dumps(
            text, ensure_ascii=False).encode() + b'},"logprobs":null,"finish_reason":null}]}\n\n'
        + head + b'"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"length"}]}'
        b"\n\n" + DONE)


def test_usage_chunk_and_null_usage_on_every_other_chunk():
    body = _stream({**CHAT, "max_tokens": 2, "stream": True,
                    "stream_options": {"include_usage": True}})
    chunks = [json.loads(line[6:]) for line in body.split(b"\n\n")[:-2]]
    assert [chunk["usage"] for chunk in chunks[:-1]] == [None] * 4
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}


def test_tokens_with_newlines_and_non_ascii_stay_one_data_line():
    fmt = ChatChunkFormat(parse_chat_request(CHAT))
    for text in ("\n\n", " 流式", " 🚀", 'say "hi"'):
        event = fmt.chunk([Token(0, text)])
        assert event.count(b"\n") == 2 and event.endswith(b"\n\n")
        assert json.loads(event[6:])["choices"][0]["delta"]["content"] == text


def test_failure_record_and_no_heartbeat():
    fmt = ChatChunkFormat(parse_chat_request(CHAT))
    assert fmt.heartbeat is None
    assert fmt.failure(Failure("stream_error", "x")) == error_event(Failure("stream_error", "x"))


def test_completion_and_models():
    answer = completion(parse_chat_request({**CHAT, "max_tokens": 4}))
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == demo_model.complete("first question", 4)
    assert answer["choices"][0]["finish_reason"] == "length"
    assert answer["usage"] == {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}
    assert [model["id"] for model in models()["data"]] == [demo_model.MODEL_NAME]
