"""The mock OpenAI upstream (`/mock/v1/...`): OpenAI's wire format on a real server, its errors
through the app's test client."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests

from generation import demo_model
from generation.params import TOKENS_DEFAULT
from tests.support.clients import Stream, metric, wait_until

CHAT = {"model": "demo", "messages": [{"role": "system", "content": "be brief"},
                                      {"role": "user", "content": "hello mock"}]}
PATH = "/mock/v1/chat/completions"


def _events(body: bytes) -> list[bytes]:
    """The `data:` payloads of an OpenAI stream, checking its framing on the way."""
    assert body.endswith(b"\n\n")
    records = body[:-2].split(b"\n\n")
    assert all(record.startswith(b"data: ") and b"\n" not in record for record in records)
    return [record[len(b"data: "):] for record in records]


def test_models_lists_the_demo_model(server):
    with requests.get(server.url + "/mock/v1/models", timeout=10) as response:
        assert response.status_code == 200
        assert response.text.startswith('{"object":"list","data":[{"id":"demo"')


def test_stream_is_openai_chunks_then_done(server):
    body = {**CHAT, "max_tokens": 6, "delay_ms": 0, "stream": True}
    with Stream(server.url, PATH, method="POST", body=body) as stream:
        assert stream.response.getheader("Content-Type").startswith("text/event-stream")
        payloads = _events(stream.read_all())
    assert payloads[-1] == b"[DONE]"
    chunks = [json.loads(payload) for payload in payloads[:-1]]
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert all(chunk["object"] == "chat.completion.chunk" and chunk["model"] == "demo"
               and "usage" not in chunk for chunk in chunks)
    first, *tokens, last = (chunk["choices"][0] for chunk in chunks)
    assert first["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert [token["delta"] for token in tokens] == [
        {"content": text} for text in demo_model.generate("hello mock", 6)]
    assert all(choice["finish_reason"] is None for choice in (first, *tokens))
    assert last == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}


def test_include_usage_adds_the_usage_chunk(server):
    body = {**CHAT, "max_tokens": 3, "delay_ms": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    with Stream(server.url, PATH, method="POST", body=body) as stream:
        chunks = [json.loads(p) for p in _events(stream.read_all())[:-1]]
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 4, "completion_tokens": 3,
                                   "total_tokens": 7}


def test_non_streaming_answer_is_a_chat_completion(server):
    with requests.post(server.url + PATH, json={**CHAT, "delay_ms": 0}, timeout=10) as response:
        answer = response.json()
    assert answer["object"] == "chat.completion"
    assert answer["choices"] == [{
        "index": 0, "logprobs": None, "finish_reason": "stop",
        "message": {"role": "assistant", "refusal": None,
                    "content": demo_model.complete("hello mock", TOKENS_DEFAULT)}}]
    assert answer["usage"]["completion_tokens"] == TOKENS_DEFAULT


def test_delay_header_paces_tokens_and_the_body_field_wins(server):
    paced = {**CHAT, "max_tokens": 3, "stream": True}
    with Stream(server.url, PATH, method="POST", body=paced,
                headers={"X-Mock-Delay-Ms": "150"}) as stream:
        times = [at for at, event in stream.events()]
    assert times[-1] - times[0] > 0.3
    began = time.monotonic()
    with requests.post(server.url + PATH, json={**CHAT, "max_tokens": 3, "delay_ms": 0},
                       headers={"X-Mock-Delay-Ms": "5000"}, timeout=10) as response:
        assert response.status_code == 200
    assert time.monotonic() - began < 2


def test_client_leaving_a_non_streaming_call_is_counted_as_a_cut_stream(server):
    before = metric(server.url, "stream_disconnects_total", transport="mock")
    payload = json.dumps({**CHAT, "delay_ms": 200}).encode()  # ten seconds' answer
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (PATH.encode(), len(payload), payload))
        wait_until(lambda: metric(server.url, "streams_active", transport="mock") == 1, 5)
    took = wait_until(lambda: metric(server.url, "stream_disconnects_total",
                                     transport="mock") == before + 1, 5)
    assert took < 1.0


def _post(client, body, **kwargs):
    return client.post(PATH, data=json.dumps(body), content_type="application/json", **kwargs)


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": CHAT["messages"]}, "model"),
    ({"model": "demo", "messages": []}, "messages"),
    ({"model": "demo", "messages": [{"role": "system", "content": "x"}]}, "messages"),
    ({**CHAT, "max_tokens": 0}, "max_tokens"),
    ({**CHAT, "max_completion_tokens": "5"}, "max_completion_tokens"),
    ({**CHAT, "stream": "yes"}, "stream"),
    ({**CHAT, "stream_options": {"include_usage": True}}, "stream_options"),
    ({**CHAT, "delay_ms": 10_001}, "delay_ms"),
])
def test_invalid_requests_get_400_in_openai_shape(client, body, param):
    response = _post(client, body)
    assert response.status_code == 400
    assert list(response.json["error"]) == ["message", "type", "param", "code"]
    assert response.json["error"]["param"] == param
    assert response.json["error"]["type"] == "invalid_request_error"


def test_bad_delay_header_gets_400(client):
    response = _post(client, CHAT, headers={"X-Mock-Delay-Ms": "soon"})
    assert response.status_code == 400
    assert response.json["error"]["param"] == "delay_ms"


@pytest.mark.parametrize(("method", "path", "status"), [
    ("POST", "/mock/v1/models", 404),
    ("GET", "/mock/v1/embeddings", 404),
    ("GET", PATH, 404),
])
def test_unknown_urls_get_404_in_openai_shape(client, method, path, status):
    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.json["error"]["message"] == f"Invalid URL ({method} {path})"


@pytest.mark.parametrize(("data", "content_type", "status"), [
    (b"{not json", "application/json", 400),
    (b"[]", "application/json", 400),
    (b"{}", "text/plain", 415),
])
def test_bodies_that_are_not_json_objects_get_openai_errors(client, data, content_type, status):
    response = client.post(PATH, data=data, content_type=content_type)
    assert response.status_code == status
    assert set(response.json["error"]) == {"message", "type", "param", "code"}
