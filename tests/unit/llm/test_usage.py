import json
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from llm.usage import (
    CLIENT_CLOSED,
    OK,
    PARSE_LIMIT,
    UsageMeter,
    content_chunks,
    plan_usage,
)
from tests.support.fake_upstream import CHAT_DELTAS, CHAT_USAGE, chat_event

DONE = b"data: [DONE]\n\n"
FINISH = chat_event({}, "stop")
USAGE_EVENT = chat_event(usage=CHAT_USAGE)
STREAM = b"".join([*CHAT_DELTAS, FINISH, USAGE_EVENT, DONE])


def plan(body: dict, rewrite: bool = True):
    return plan_usage("POST", "/chat/completions", json.dumps(body).encode(), rewrite=rewrite)


def test_a_stream_that_did_not_ask_gets_usage_asked_for_with_its_bytes_kept():
    original = b'{"model": "gpt", "stream": true, "messages": []}'
    body, request = plan_usage("POST", "/chat/completions", original, rewrite=True)
    assert request.strip and request.model == "gpt"
    assert json.loads(body)["stream_options"] == {"include_usage": True}
    assert body.replace(b'"stream_options":{"include_usage":true},', b"") == original


def test_other_stream_options_are_kept():
    body, request = plan({"stream": True, "stream_options": {"other": 1}})
    assert request.strip
    assert json.loads(body)["stream_options"] == {"other": 1, "include_usage": True}


def test_a_client_that_asked_or_rewriting_off_leaves_the_body_alone():
    for given_body, rewrite in (({"stream": True, "stream_options": {"include_usage": True}},
                                 True), ({"stream": True}, False)):
        raw = json.dumps(given_body).encode()
        body, request = plan_usage("POST", "/chat/completions", raw, rewrite=rewrite)
        assert body == raw and not request.strip


def test_what_is_not_a_readable_chat_completion_is_not_metered():
    big = json.dumps({"stream": True, "x": "y" * PARSE_LIMIT}).encode()
    for method, path, raw in (("GET", "/chat/completions", b""),
                              ("POST", "/embeddings", b'{"stream":true}'),
                              ("POST", "/chat/completions", b"{not json"),
                              ("POST", "/chat/completions", b"[" * 100 + b"]" * 100),
                              ("POST", "/chat/completions", big)):
        assert plan_usage(method, path, raw, rewrite=True) == (raw, None)


def meter(strip: bool, recorded: list, event_stream: bool = True):
    _, request = plan({"model": "gpt", "stream": True,
                       **({} if strip else {"stream_options": {"include_usage": True}})})
    return UsageMeter(request, "team-a", event_stream, recorded.append)


def relay_all(m: UsageMeter, pieces: list[bytes]) -> bytes:
    out = b"".join(m.relay(piece) for piece in pieces)
    return out + m.held()


@given(cuts=st.lists(st.integers(0, len(STREAM)), max_size=12))
def test_the_usage_chunk_the_relay_asked_for_is_removed_however_the_bytes_are_cut(cuts):
    pieces = [STREAM[a:b] for a, b in pairwise([0, *sorted(cuts), len(STREAM)])]
    recorded = []
    m = meter(strip=True, recorded=recorded)
    assert relay_all(m, pieces) == STREAM.replace(USAGE_EVENT, b"")
    m.end(OK)
    (usage,) = recorded
    assert (usage.prompt_tokens, usage.completion_tokens, usage.exact) == (3, 4, True)
    assert (usage.key, usage.model, usage.outcome) == ("team-a", "gpt", OK)


@given(cuts=st.lists(st.integers(0, len(STREAM)), max_size=12))
def test_a_client_that_asked_gets_every_byte_as_it_came(cuts):
    pieces = [STREAM[a:b] for a, b in pairwise([0, *sorted(cuts), len(STREAM)])]
    recorded = []
    m = meter(strip=False, recorded=recorded)
    assert [m.relay(piece) for piece in pieces] == pieces
    m.end(OK)
    assert recorded[0].exact and recorded[0].completion_tokens == 4


def test_a_stream_cut_short_is_estimated_from_its_content_chunks():
    recorded = []
    m = meter(strip=True, recorded=recorded)
    relay_all(m, CHAT_DELTAS[:3])  # the role chunk, then two with content
    m.end(CLIENT_CLOSED)
    (usage,) = recorded
    assert (usage.completion_tokens, usage.exact, usage.outcome) == (2, False, CLIENT_CLOSED)
    assert usage.prompt_tokens > 0


def test_usage_is_recorded_once():
    recorded = []
    m = meter(strip=True, recorded=recorded)
    m.end(OK)
    m.end(CLIENT_CLOSED)
    assert len(recorded) == 1


def test_a_non_streaming_answer_has_its_usage_read_from_its_body():
    recorded = []
    m = meter(strip=False, recorded=recorded, event_stream=False)
    body = json.dumps({"choices": [], "usage": CHAT_USAGE}).encode()
    assert m.relay(body[:10]) + m.relay(body[10:]) == body
    m.end(OK)
    assert recorded[0].exact and recorded[0].prompt_tokens == 3


def test_content_chunks_count_what_has_content_only():
    assert content_chunks(b"".join(CHAT_DELTAS)) == 4  # the role chunk's content is ""
    assert content_chunks(b'data: {"delta": {"content": "a"}}\n\n') == 1
    assert content_chunks(chat_event(usage=CHAT_USAGE)) == 0
