"""generation/upstream_model.py: an OpenAI-compatible API's stream as tokens and an end.

A FakeUpstream on loopback answers (the path segment after /v1/ picks its script), reached
through a real `Upstream` as services.py builds it. The tests run unpatched, like the other
unit tests: a read blocks its thread, so a reader that must block while the test acts runs
in a thread of its own.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from prometheus_client import CollectorRegistry
from requests.adapters import HTTPAdapter

from generation.backends import AnswerFailed, ModelError
from generation.events import End, Token
from generation.params import GenerationParams, parse_generation
from llm.keys import ClientKeys
from llm.upstream import Upstream
from llm.upstream_model import UpstreamBackend
from llm.upstreams import Endpoint
from streaming.cancellation import Cancellation
from testbed.live_server import free_port
from tests.support.fake_upstream import CHAT_TOKENS, CHAT_USAGE, FakeUpstream

PARAMS = GenerationParams("say hi", 20, 35)


@pytest.fixture
def fake():
    with FakeUpstream() as upstream:
        yield upstream


def _backend(base_url: str, *, api_key: str = "", read_timeout: float = 5.0,
             model: str = "gpt-test") -> UpstreamBackend:
    upstream = Upstream(endpoints=[Endpoint("test", base_url, api_key)],
                        client_keys=ClientKeys([], required=bool(api_key)),
                        timeout=(1.0, read_timeout), pool_size=2, attempts=1,
                        registry=CollectorRegistry())
    return UpstreamBackend(upstream, model)


def _open(fake: FakeUpstream, script: str, params: GenerationParams = PARAMS,
          cancellation: Cancellation | None = None, **settings):
    return _backend(f"{fake.url}/v1/{script}", **settings).open(
        params, cancellation or Cancellation(), "http://unused/mock/v1")


def _refused(fake: FakeUpstream, script: str, **settings) -> ModelError:
    with pytest.raises(ModelError) as caught:
        _open(fake, script, **settings)
    return caught.value


def _received(fake: FakeUpstream, script: str) -> dict:
    return fake.received[f"/v1/{script}/chat/completions"]


def _until_failure(answer) -> tuple[list, AnswerFailed]:
    events = []
    with pytest.raises(AnswerFailed) as caught:
        events.extend(answer)
    return events, caught.value


ANSWER = [Token(i, text) for i, text in enumerate(CHAT_TOKENS)]


def test_tokens_then_the_end_with_its_finish_reason_and_usage(fake):
    answer = _open(fake, "chat_stream")
    assert answer.model == "gpt-test"
    assert list(answer) == [*ANSWER, End("stop", 4, CHAT_USAGE)]


def test_the_connection_goes_back_to_the_pool_after_done(fake):
    backend = _backend(f"{fake.url}/v1/chat_stream")
    # urllib3's own check of idle connections: the pool's peek (llm/pool.py) is for gevent's
    # sockets, and on an unpatched socket with a timeout it waits that long and says "closed".
    backend._upstream.session.mount("http://", HTTPAdapter())
    for _ in range(3):
        assert list(backend.open(PARAMS, Cancellation(), ""))[-1] == End("stop", 4, CHAT_USAGE)
    assert fake.connections == 1


def test_a_filtered_answer_ends_as_the_model_said(fake):
    assert list(_open(fake, "filtered")) == [
        ANSWER[0], End("content_filter", 1)]


def test_the_request_asks_for_a_stream_with_usage_and_never_a_delay(fake):
    params = parse_generation({"messages": [{"role": "system", "content": "be brief"},
                                            {"role": "user", "content": "hello"}],
                               "tokens": 9, "delay_ms": 0})
    list(_open(fake, "chat_stream", params, api_key="sk-upstream-key", model="gpt-x"))
    sent = _received(fake, "chat_stream")
    assert sent["method"] == "POST"
    assert json.loads(sent["body"]) == {
        "model": "gpt-x", "messages": [{"role": "system", "content": "be brief"},
                                       {"role": "user", "content": "hello"}],
        "max_tokens": 9, "stream": True, "stream_options": {"include_usage": True}}
    headers = {name.lower(): value for name, value in sent["headers"]}
    assert headers["authorization"] == "Bearer sk-upstream-key"
    assert headers["content-type"] == "application/json"
    assert headers["accept"] == "text/event-stream"
    assert headers["accept-encoding"] == "identity"


def test_a_prompt_is_sent_as_one_user_message_without_a_key(fake):
    list(_open(fake, "chat_stream"))
    sent = _received(fake, "chat_stream")
    assert json.loads(sent["body"])["messages"] == [{"role": "user", "content": "say hi"}]
    assert "authorization" not in {name.lower() for name, _ in sent["headers"]}


def test_without_a_base_url_the_request_goes_to_the_servers_own_mock(fake):
    backend = _backend("")
    list(backend.open(PARAMS, Cancellation(), f"{fake.url}/v1/chat_stream/"))
    assert _received(fake, "chat_stream")["method"] == "POST"


def test_a_refused_key_is_an_upstream_error_with_the_upstreams_message(fake):
    error = _refused(fake, "unauthorized", api_key="sk-abcdefwxyz")
    assert (error.status, error.type, error.upstream_status) == (502, "upstream_error", 401)
    assert "(401)" in error.message and "Incorrect API key provided: sk-***" in error.message
    assert "abc" not in error.message and "127.0.0.1" not in error.message


def test_a_rate_limit_is_relayed_with_its_retry_after(fake):
    error = _refused(fake, "ratelimit")
    assert (error.status, error.type, error.upstream_status, error.retry_after) == (
        429, "upstream_rate_limited", 429, "7")
    assert "slow down" in error.message


def test_a_server_error_that_is_not_openais_shape_gets_a_generic_message(fake):
    error = _refused(fake, "broken")
    assert (error.status, error.type, error.upstream_status) == (502, "upstream_error", 500)
    assert error.message == "the model's API refused the request (500)"


def test_an_error_body_is_read_only_so_far(fake):
    error = _refused(fake, "huge_error")
    assert (error.status, error.upstream_status) == (502, 400)
    assert error.message == "the model's API refused the request (400)"


def test_a_success_that_is_no_event_stream_is_an_upstream_error(fake):
    error = _refused(fake, "not_a_stream")
    assert (error.status, error.type, error.upstream_status) == (502, "upstream_error", 200)
    assert "not an event stream" in error.message


def test_an_unreachable_upstream():
    with pytest.raises(ModelError) as caught:
        _backend(f"http://127.0.0.1:{free_port()}/v1").open(PARAMS, Cancellation(), "")
    assert (caught.value.status, caught.value.type) == (502, "upstream_unreachable")
    assert "127.0.0.1" not in caught.value.message


def test_no_headers_within_the_read_timeout(fake):
    began = time.monotonic()
    error = _refused(fake, "hang", read_timeout=0.2)
    assert (error.status, error.type) == (504, "upstream_timeout")
    assert "127.0.0.1" not in error.message
    assert time.monotonic() - began < 2


def test_a_stream_cut_midway_fails_after_the_tokens_before_the_cut(fake):
    events, failed = _until_failure(_open(fake, "die"))
    assert events == [Token(0, "Hi")]
    assert (failed.failure.type, failed.failure.message) == (
        "stream_error", "the model's stream was cut before its end")


def test_a_stream_stalled_past_the_read_timeout_fails(fake):
    began = time.monotonic()
    events, failed = _until_failure(_open(fake, "stall", read_timeout=0.2))
    assert events == [Token(0, "Hi")]
    assert failed.failure.message == "the model's stream was cut before its end"
    assert time.monotonic() - began < 2


def test_a_stream_cut_after_its_finish_reason_ends_normally(fake):
    assert list(_open(fake, "finished_then_cut")) == [ANSWER[0], End("length", 1)]


def test_done_without_a_finish_reason_invents_none(fake):
    events, failed = _until_failure(_open(fake, "done_without_finish"))
    assert events == [ANSWER[0]]
    assert failed.failure.message == "the model's stream ended without a finish reason"


def test_an_error_event_in_the_stream_fails_with_its_message(fake):
    events, failed = _until_failure(_open(fake, "in_band_error"))
    assert events == [ANSWER[0]]
    assert (failed.failure.type, failed.failure.message) == (
        "stream_error", "the model's stream failed: the model is overloaded")


def test_an_event_that_is_not_json_fails_the_answer(fake):
    events, failed = _until_failure(_open(fake, "garbled"))
    assert events == [ANSWER[0]]
    assert failed.failure.type == "stream_error" and "not a JSON object" in failed.failure.message


def _reading_in_a_thread(answer) -> tuple[list, threading.Thread, list]:
    """Iterate `answer` in a thread; the events, the thread, and what it raised."""
    events: list = []
    raised: list = []

    def read() -> None:
        try:
            events.extend(answer)
        except Exception as exc:  # the test asserts there is none
            raised.append(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return events, thread, raised


def _blocked_after_its_first_token(answer, events: list) -> None:
    """Until the reader has its token and waits for bytes that never come: its read blocks."""
    deadline = time.monotonic() + 5
    while not (events and answer._response._reading) and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.02)


@pytest.mark.parametrize("stop", ["close", "cancel"])
def test_a_blocked_reader_is_cut_off_at_once(fake, stop):
    cancellation = Cancellation()
    answer = _open(fake, "stall", cancellation=cancellation, read_timeout=30)
    events, thread, raised = _reading_in_a_thread(answer)
    _blocked_after_its_first_token(answer, events)
    began = time.monotonic()
    if stop == "close":
        answer.close()
    else:
        cancellation.cancel("gone")
    thread.join(2)
    assert not thread.is_alive() and time.monotonic() - began < 1
    assert (events, raised) == ([Token(0, "Hi")], [])  # stopped, neither ended nor failed
    deadline = time.monotonic() + 2
    while "/v1/stall/chat/completions" not in fake.closed and time.monotonic() < deadline:
        time.sleep(0.005)
    assert fake.closed["/v1/stall/chat/completions"] - began < 1
    answer.close()  # again: nothing happens


def test_close_before_reading_ends_the_answer(fake):
    answer = _open(fake, "chat_stream")
    answer.close()
    assert list(answer) == []


def test_a_cancel_before_the_headers_returns_none(fake):
    cancellation = Cancellation()
    cancellation.cancel()
    assert _open(fake, "chat_stream", cancellation=cancellation) is None


def test_the_model_falls_back_to_the_next_upstream_as_the_relay_does(fake):
    endpoints = [Endpoint("primary", f"{fake.url}/v1/status/503", "sk-primary"),
                 Endpoint("backup", f"{fake.url}/v1/chat_stream", "sk-backup")]
    upstream = Upstream(endpoints=endpoints, client_keys=(), timeout=(1.0, 5.0), pool_size=2,
                        attempts=2, registry=CollectorRegistry())
    answer = UpstreamBackend(upstream, "gpt-test").open(PARAMS, Cancellation(), "http://unused")
    assert list(answer) == [*ANSWER, End("stop", 4, CHAT_USAGE)]
    primary = fake.received["/v1/status/503/chat/completions"]["headers"]
    backup = _received(fake, "chat_stream")["headers"]
    assert ("Authorization", "Bearer sk-primary") in primary
    assert ("Authorization", "Bearer sk-backup") in backup
