"""The upstream backend against a fake upstream that refuses, stalls, cuts and reports usage,
behind the real server: our JSON errors before a stream starts, in-band errors after, the
upstream's own finish reasons and usage, heartbeats while it thinks, and its connection cut
when nobody waits for the answer any more.

One fake answers every request; the prompt names the script that answers it.
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from testbed.live_server import free_port
from tests.support.clients import Stream, wait_until
from tests.support.fake_upstream import CHAT_TOKENS, CHAT_USAGE, SSE_HEAD, FakeUpstream
from tests.support.generation_clients import start_generation, state, view
from tests.support.ws_clients import connect, receive, send

READ_TIMEOUT = 1.5
HEARTBEAT = 0.3
TARGET = "/v1/by_prompt/chat/completions"


class PromptScripted(FakeUpstream):
    """Answers with the script the request's last message names; remembers when the server
    cut each script's connection."""

    def _by_prompt(self, sock, target: str) -> bool:
        body = json.loads(self.received[target]["body"])
        self.last_body = body
        script = body["messages"][-1]["content"]
        self.cut_at.pop(script, None)
        answered = getattr(self, "_" + script)(sock, target)
        if target in self.closed:
            self.cut_at[script] = self.closed.pop(target)
        return answered

    def _thinking(self, sock, target: str) -> bool:
        # Headers at once, then nothing: a reasoning model before its first token.
        sock.sendall(SSE_HEAD)
        return self._wait_for_close(sock, target)


@pytest.fixture(scope="module")
def fake():
    upstream = PromptScripted()
    upstream.cut_at = {}
    with upstream:
        yield upstream


@pytest.fixture(scope="module")
def server(start_server, fake):
    return start_server(env={
        "CHAT_BACKEND": "upstream", "CHAT_MODEL": "gpt-test",
        "UPSTREAM_BASE_URL": f"{fake.url}/v1/by_prompt", "UPSTREAM_API_KEY": "sk-server-secret",
        "PROXY_API_KEYS": "client-key", "UPSTREAM_READ_TIMEOUT": str(READ_TIMEOUT),
        "HEARTBEAT_SECONDS": str(HEARTBEAT), "GENERATION_GRACE_SECONDS": "0"})


def sse(server, script: str, **params) -> requests.Response:
    query = {"prompt": script, "tokens": 20, **params}
    return requests.get(f"{server.url}/sse/chat", params=query, timeout=10)


@pytest.mark.parametrize(("script", "status", "kind", "upstream_status"), [
    ("unauthorized", 502, "upstream_error", 401),
    ("ratelimit", 429, "upstream_rate_limited", 429),
    ("broken", 502, "upstream_error", 500),
    ("not_a_stream", 502, "upstream_error", 200),
    ("hang", 504, "upstream_timeout", None),
])
def test_a_refusal_before_the_stream_is_our_json_error(server, script, status, kind,
                                                       upstream_status):
    for response in (sse(server, script),
                     requests.post(f"{server.url}/api/chat", timeout=10,
                                   json={"prompt": script, "tokens": 20},
                                   headers={"Accept": "application/x-ndjson"})):
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["type"] == kind and error.get("upstream_status") == upstream_status
        # Neither our key nor the part of it the upstream echoed, nor any internal detail.
        for secret in ("sk-server-secret", "sk-abc", "Traceback", "127.0.0.1"):
            assert secret not in response.text


def test_the_upstreams_own_message_and_retry_after_reach_the_client(server):
    unauthorized = sse(server, "unauthorized").json()["error"]
    assert "Incorrect API key" in unauthorized["message"]
    limited = sse(server, "ratelimit")
    assert limited.headers["Retry-After"] == "7" and "slow down" in limited.json()["error"][
        "message"]


def test_the_request_is_what_an_openai_api_expects(server, fake):
    viewed = view(server.url, "/sse/chat?prompt=chat_stream&tokens=7&delay_ms=5")
    assert viewed.status == 200
    body = fake.last_body
    assert body == {"model": "gpt-test", "messages": [{"role": "user", "content": "chat_stream"}],
                    "max_tokens": 7, "stream": True, "stream_options": {"include_usage": True}}
    headers = {name.lower(): value for name, value in fake.received[TARGET]["headers"]}
    assert headers["authorization"] == "Bearer sk-server-secret"
    assert headers["accept"] == "text/event-stream"


def test_tokens_usage_and_finish_reason_are_the_upstreams(server):
    viewed = view(server.url, "/sse/chat?prompt=chat_stream&tokens=20")
    assert viewed.tokens == CHAT_TOKENS
    assert viewed.of("end") == [{"finish_reason": "stop", "tokens": 4, "usage": CHAT_USAGE}]
    filtered = view(server.url, "/sse/chat?prompt=filtered&tokens=20")
    assert filtered.of("end")[0]["finish_reason"] == "content_filter"
    assert "usage" not in filtered.of("end")[0]


@pytest.mark.parametrize("script", ["die", "in_band_error", "garbled", "done_without_finish"])
def test_a_failure_midway_is_the_in_band_error_of_every_transport(server, script):
    viewed = view(server.url, f"/sse/chat?prompt={script}&tokens=20")
    [error] = viewed.of("error")
    assert error["type"] == "stream_error" and viewed.of("end") == []
    with Stream(server.url, "/api/chat", method="POST", body={"prompt": script},
                headers={"Accept": "application/x-ndjson"}) as stream:
        records = [json.loads(line) for line in stream.read_all().splitlines() if line]
    assert records[-1]["type"] == "error" and records[-1]["error"]["type"] == "stream_error"
    with connect(server) as ws:
        send(ws, type="prompt", prompt=script)
        messages = [receive(ws)]
        while messages[-1]["type"] not in ("end", "error"):
            messages.append(receive(ws))
    assert messages[-1]["type"] == "error" and messages[-1]["error"]["type"] == "stream_error"


def test_a_stall_midway_ends_with_an_error_after_the_read_timeout(server):
    began = time.monotonic()
    viewed = view(server.url, "/sse/chat?prompt=stall&tokens=20")
    assert viewed.tokens == ["Hi"] and viewed.of("error")[0]["type"] == "stream_error"
    assert READ_TIMEOUT * 0.9 <= time.monotonic() - began < READ_TIMEOUT + 5


def test_heartbeats_flow_while_the_model_thinks(server):
    with Stream(server.url, "/sse/chat?prompt=thinking&tokens=20") as stream:
        assert stream.status == 200
        received = b""
        deadline = time.monotonic() + READ_TIMEOUT * 0.9
        for _, chunk in stream.chunks():
            received += chunk
            if time.monotonic() > deadline:
                break
    assert b"event: start" in received and received.count(b": ping") >= 2


def test_a_client_leaving_cuts_the_upstream_at_once(server, fake):
    with Stream(server.url, "/sse/chat?prompt=thinking&tokens=20") as stream:
        assert stream.status == 200
        next(stream.chunks())
    left = time.monotonic()
    wait_until(lambda: "thinking" in fake.cut_at, timeout=5)
    assert fake.cut_at["thinking"] - left < 1.0


def test_a_delete_cuts_the_upstream(server, fake):
    created = start_generation(server.url, prompt="thinking")
    wait_until(lambda: state(server.url, created["id"])["status"] == "running", timeout=5)
    time.sleep(0.2)
    deleted = time.monotonic()
    assert requests.delete(server.url + created["status_url"], timeout=10).status_code == 200
    wait_until(lambda: "thinking" in fake.cut_at, timeout=5)
    assert fake.cut_at["thinking"] - deleted < 1.0


def test_a_websocket_cancel_cuts_the_upstream(server, fake):
    with connect(server) as ws:
        send(ws, type="prompt", prompt="thinking")
        assert receive(ws)["type"] == "start"
        cancelled = time.monotonic()
        send(ws, type="cancel")
        assert receive(ws)["finish_reason"] == "cancelled"
    wait_until(lambda: "thinking" in fake.cut_at, timeout=5)
    assert fake.cut_at["thinking"] - cancelled < 1.0


def test_a_generations_refusal_ends_it_failed_with_that_error(server):
    created = start_generation(server.url, prompt="ratelimit")
    viewed = view(server.url, created["events_url"])
    [error] = viewed.of("error")
    assert error["type"] == "upstream_rate_limited"
    failed = state(server.url, created["id"])
    assert failed["status"] == "failed" and failed["error"]["type"] == "upstream_rate_limited"


def test_an_unreachable_upstream_is_502(start_server):
    closed_port = free_port()
    lonely = start_server(env={"CHAT_BACKEND": "upstream",
                               "UPSTREAM_BASE_URL": f"http://127.0.0.1:{closed_port}/v1"})
    response = requests.get(f"{lonely.url}/sse/chat?prompt=x", timeout=10)
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "upstream_unreachable"


def test_a_plain_text_reader_leaving_cuts_the_upstream_whatever_the_grace(start_server, fake):
    patient = start_server(env={"CHAT_BACKEND": "upstream",
                                "UPSTREAM_BASE_URL": f"{fake.url}/v1/by_prompt",
                                "GENERATION_GRACE_SECONDS": "30"})
    with Stream(patient.url, "/api/chat", method="POST", body={"prompt": "stall"},
                headers={"Accept": "text/plain"}) as stream:
        assert stream.status == 200 and next(stream.chunks())[1] == b"Hi"
    left = time.monotonic()
    wait_until(lambda: "stall" in fake.cut_at, timeout=5)
    assert fake.cut_at["stall"] - left < 1.0


def test_the_grace_running_out_cuts_the_upstream(start_server, fake):
    grace = 0.4
    patient = start_server(env={"CHAT_BACKEND": "upstream",
                                "UPSTREAM_BASE_URL": f"{fake.url}/v1/by_prompt",
                                "GENERATION_GRACE_SECONDS": str(grace)})
    with Stream(patient.url, "/sse/chat?prompt=thinking") as stream:
        assert stream.status == 200
        next(stream.chunks())
    left = time.monotonic()
    wait_until(lambda: "thinking" in fake.cut_at, timeout=5)
    assert grace * 0.9 <= fake.cut_at["thinking"] - left < grace + 1.0
