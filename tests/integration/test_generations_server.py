"""Generations against the real server with the upstream backend (the built-in mock as the
upstream): every transport's tokens, late and resuming viewers, cancel, grace and expiry, on
the memory broker and on Redis."""

from __future__ import annotations

import json
import time

import httpx
import pytest
import requests
from httpx_sse import connect_sse

from generation import demo_model
from tests.support.clients import Stream, wait_until
from tests.support.generation_clients import mock_answer, start_generation, state, view
from tests.support.ws_clients import connect, receive, send, until_end

PROMPT = "Tell me about streaming"
QUERY_PROMPT = PROMPT.replace(" ", "+")
GRACE = 1.5


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(request, start_server):
    env = {"CHAT_BACKEND": "upstream", "GENERATION_GRACE_SECONDS": str(GRACE),
           "HEARTBEAT_SECONDS": "1"}
    if request.param == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    return start_server(env=env)


def test_the_demo_backend_answers_generations_too(start_server):
    demo = start_server()
    created = start_generation(demo.url, prompt=PROMPT, tokens=6, delay_ms=5)
    viewed = view(demo.url, created["events_url"])
    assert "".join(viewed.tokens) == demo_model.complete(PROMPT, 6)
    assert viewed.of("start")[0] == {"model": "demo", "tokens": 6, "backend": "demo",
                                     "generation": created["id"]}
    assert viewed.of("end") == [{"finish_reason": "stop", "tokens": 6}]


def test_a_generation_streams_the_models_answer_and_its_state_follows(server):
    created = start_generation(server.url, prompt=PROMPT, tokens=8)
    assert created["events_url"] == f"/sse/generations/{created['id']}"
    viewed = view(server.url, created["events_url"])
    assert viewed.status == 200 and viewed.ids == [str(i) for i in range(8)]
    assert "".join(viewed.tokens) == mock_answer(server.url, PROMPT, 8)
    assert viewed.of("start") == [{"model": "demo", "tokens": 8, "backend": "upstream",
                                   "generation": created["id"]}]
    [end] = viewed.of("end")
    assert end["finish_reason"] == "length" and end["tokens"] == 8
    assert end["usage"]["completion_tokens"] == 8
    assert state(server.url, created["id"]) == {
        "id": created["id"], "status": "done", "tokens": 8, "finish_reason": "length",
        "usage": end["usage"], "text": "".join(viewed.tokens)}


def test_a_late_viewer_gets_every_token_from_the_first_then_follows(server):
    created = start_generation(server.url, prompt=PROMPT, tokens=12)
    first = view(server.url, created["events_url"], stop_after=5)
    late = view(server.url, created["events_url"])
    assert late.tokens[:5] == first.tokens and len(late.tokens) == 12
    assert late.of("end")[0]["tokens"] == 12


def test_a_viewer_resumes_after_its_last_token_and_one_that_had_the_end_gets_204(server):
    created = start_generation(server.url, prompt=PROMPT, tokens=10)
    first = view(server.url, created["events_url"], stop_after=4)
    rest = view(server.url, created["events_url"], last_id=first.ids[-1])
    assert rest.ids == [str(i) for i in range(4, 10)] and rest.of("start") == []
    whole = mock_answer(server.url, PROMPT, 10)
    assert "".join(first.tokens + rest.tokens) == whole
    end_id = rest.events[-1].last_event_id
    assert end_id == "10"
    assert view(server.url, created["events_url"], last_id=end_id).status == 204
    assert view(server.url, created["events_url"], last_id="11").status == 204


def test_ndjson_viewers_get_the_same_answer(server):
    created = start_generation(server.url, prompt=PROMPT, tokens=6)
    view(server.url, created["events_url"], stop_after=2)  # a viewer's last id must exist
    with Stream(server.url, created["events_url"],
                headers={"Accept": "application/x-ndjson", "Last-Event-ID": "1"}) as stream:
        assert stream.response.getheader("Content-Type") == "application/x-ndjson"
        records = [json.loads(line) for line in stream.read_all().splitlines() if line]
    assert [r["index"] for r in records if r["type"] == "token"] == [2, 3, 4, 5]
    assert records[-1]["type"] == "end"


def test_delete_ends_it_for_every_viewer_with_cancelled(server):
    created = start_generation(server.url, prompt=PROMPT, tokens=200)
    viewers = [Stream(server.url, created["events_url"]) for _ in range(2)]
    time.sleep(0.3)
    response = requests.delete(f"{server.url}{created['status_url']}", timeout=10)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    for stream in viewers:
        with stream:
            ends = [json.loads(e.data) for _, e in stream.events() if e.type == "end"]
        assert ends[0]["finish_reason"] == "cancelled" and 0 < ends[0]["tokens"] < 200
    again = requests.delete(f"{server.url}{created['status_url']}", timeout=10)
    assert again.status_code == 200 and again.json() == response.json() | {
        "tokens": ends[0]["tokens"], "text": again.json()["text"]}
    done = start_generation(server.url, prompt=PROMPT, tokens=2)
    view(server.url, done["events_url"])
    assert requests.delete(server.url + done["status_url"], timeout=10).status_code == 409


def test_unknown_and_malformed_ids_are_404_and_bad_bodies_400(server):
    for path in ("/api/generations/" + "0" * 32, "/sse/generations/nope"):
        response = requests.get(server.url + path, timeout=10)
        assert response.status_code == 404 and response.json()["error"]["type"] == "not_found"
    for body in ({}, {"prompt": ""}, {"prompt": "a", "messages": [{"role": "user",
                                                                   "content": "b"}]},
                 {"messages": [{"role": "robot", "content": "x"}]}, {"messages": "hi"}):
        response = requests.post(f"{server.url}/api/generations", json=body, timeout=10)
        assert response.status_code == 400, body
        assert response.json()["error"]["type"] == "invalid_request"


def test_messages_are_answered_like_the_last_user_message(server):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": PROMPT}]
    created = start_generation(server.url, messages=messages, tokens=5)
    viewed = view(server.url, created["events_url"])
    assert "".join(viewed.tokens) == mock_answer(server.url, PROMPT, 5)


def test_sse_chat_resumes_the_same_answer_after_a_dropped_connection(server):
    path = f"/sse/chat?prompt={QUERY_PROMPT}&tokens=12"
    first = view(server.url, path, stop_after=5)
    [start] = first.of("start")
    generation = start["generation"]
    assert first.ids == [f"{generation}:{i}" for i in range(5)]
    assert first.events[0].last_event_id == generation
    rest = view(server.url, path, last_id=first.ids[-1])
    assert rest.ids == [f"{generation}:{i}" for i in range(5, 12)] and rest.of("start") == []
    assert "".join(first.tokens + rest.tokens) == mock_answer(server.url, PROMPT, 12)
    assert view(server.url, path, last_id=rest.events[-1].last_event_id).status == 204
    # Dropped after the start only: the same answer from its first token, not a new one.
    again = view(server.url, path, last_id=generation)
    assert again.tokens == first.tokens + rest.tokens


def test_api_chat_streams_the_same_tokens_as_ndjson_and_as_text(server):
    body = {"prompt": PROMPT, "tokens": 6}
    whole = mock_answer(server.url, PROMPT, 6)
    with Stream(server.url, "/api/chat", method="POST", body=body,
                headers={"Accept": "application/x-ndjson"}) as stream:
        records = [json.loads(line) for line in stream.read_all().splitlines() if line]
    assert records[0]["type"] == "start" and records[0]["backend"] == "upstream"
    assert "".join(r["text"] for r in records if r["type"] == "token") == whole
    assert records[-1]["finish_reason"] == "length"
    with Stream(server.url, "/api/chat", method="POST", body=body,
                headers={"Accept": "text/plain"}) as stream:
        assert stream.read_all().decode() == whole


def test_a_resume_of_an_unknown_generation_is_a_reset_never_a_new_answer(server):
    viewed = view(server.url, f"/sse/chat?prompt={QUERY_PROMPT}&tokens=5",
                  last_id="f" * 32 + ":3")
    assert viewed.of("reset") == [{"reason": "generation_expired"}] and viewed.tokens == []
    for bad in ("3", "x:1", "f" * 32 + ":-1"):
        assert view(server.url, f"/sse/chat?prompt={QUERY_PROMPT}", last_id=bad).status == 400


def test_websocket_start_carries_the_generation_and_resume_continues_it(server):
    with connect(server) as ws:
        send(ws, type="prompt", prompt=PROMPT, tokens=10)
        start = receive(ws)
        assert start["type"] == "start" and start["backend"] == "upstream"
        seen = [receive(ws) for _ in range(3)]
    with connect(server) as ws:
        send(ws, type="resume", generation=start["generation"], after=seen[-1]["index"])
        rest = until_end(ws)
    tokens = seen + rest[:-1]
    assert [m["index"] for m in tokens] == list(range(10))
    assert "".join(m["text"] for m in tokens) == mock_answer(server.url, PROMPT, 10)
    assert rest[-1]["finish_reason"] == "length"


def test_a_websocket_cancel_ends_the_generation_on_the_server(server):
    with connect(server) as ws:
        send(ws, type="prompt", prompt=PROMPT, tokens=200)
        start = receive(ws)
        receive(ws)
        send(ws, type="cancel")
        messages = until_end(ws)
    assert messages[-1]["finish_reason"] == "cancelled"
    assert state(server.url, start["generation"])["status"] == "cancelled"


def test_a_direct_streams_generation_is_cancelled_once_unwatched_for_its_grace(server):
    first = view(server.url, f"/sse/chat?prompt={QUERY_PROMPT}&tokens=200", stop_after=2)
    generation = first.of("start")[0]["generation"]
    assert state(server.url, generation)["status"] == "running"
    took = wait_until(lambda: state(server.url, generation)["status"] == "cancelled",
                      timeout=GRACE + 5)
    assert took >= GRACE * 0.5
    # Reconnecting now gets the tokens it missed, then the cancelled end.
    rest = view(server.url, f"/sse/chat?prompt={QUERY_PROMPT}&tokens=200", last_id=first.ids[-1])
    assert rest.of("end")[0]["finish_reason"] == "cancelled"
    assert rest.ids[0] == f"{generation}:2"


def test_a_reconnect_within_the_grace_keeps_the_answer_running(server):
    path = f"/sse/chat?prompt={QUERY_PROMPT}&tokens=40"
    first = view(server.url, path, stop_after=2)
    time.sleep(GRACE / 5)  # well within it, even on a loaded machine
    rest = view(server.url, path, last_id=first.ids[-1])
    assert rest.of("end")[0]["finish_reason"] == "length"
    assert len(first.tokens + rest.tokens) == 40


def test_httpx_sse_reads_a_generation_and_resumes_it(server):
    created = start_generation(server.url, prompt=PROMPT, tokens=8)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with connect_sse(client, "GET", created["events_url"]) as source:
            first = []
            for event in source.iter_sse():
                if event.event == "message":
                    first.append(event)
                if len(first) == 3:
                    break
        with connect_sse(client, "GET", created["events_url"],
                         headers={"Last-Event-ID": first[-1].id}) as source:
            rest = [event for event in source.iter_sse()]
    tokens = [e.data for e in first] + [e.data for e in rest if e.event == "message"]
    assert "".join(tokens) == mock_answer(server.url, PROMPT, 8)
    assert rest[-1].event == "end" and json.loads(rest[-1].data)["tokens"] == 8


@pytest.fixture(scope="module", params=["memory", "redis"])
def brief(request, start_server):
    env = {"CHAT_BACKEND": "upstream", "GENERATION_TTL_SECONDS": "1"}
    if request.param == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    return start_server(env=env)


def test_a_generation_past_its_ttl_is_404_and_its_resume_a_reset(brief):
    path = f"/sse/chat?prompt={QUERY_PROMPT}&tokens=3"
    whole = view(brief.url, path)
    generation = whole.of("start")[0]["generation"]
    assert requests.get(f"{brief.url}/api/generations/{generation}", timeout=10).ok
    time.sleep(1.5)
    expired = requests.get(f"{brief.url}/api/generations/{generation}", timeout=10)
    assert expired.status_code == 404
    resumed = view(brief.url, path, last_id=f"{generation}:1")
    assert resumed.of("reset") == [{"reason": "generation_expired"}] and resumed.tokens == []
