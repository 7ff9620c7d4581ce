"""Usage and keepalive of the relay on a real server, in front of an upstream that answers as
OpenAI does (a usage chunk only when asked): the client's bytes, what is recorded for complete,
abandoned and cut streams, and keepalive comments read by three real SDKs."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import requests
from httpx_sse import connect_sse
from openai import OpenAI

from testbed.raw_http import LAST_CHUNK, chunk
from tests.support.clients import Stream, metric, wait_until
from tests.support.fake_upstream import (
    CHAT_DELTAS,
    CHAT_TOKENS,
    CHAT_USAGE,
    SSE_HEAD,
    FakeUpstream,
    chat_event,
)

ROOT = Path(__file__).resolve().parents[2]
DONE = b"data: [DONE]\n\n"
USAGE_EVENT = chat_event(usage=CHAT_USAGE)
ANSWER = "".join(CHAT_TOKENS)
REQUEST = {"model": "gpt-test", "messages": [{"role": "user", "content": "hello"}],
           "stream": True}


class OpenAILikeUpstream(FakeUpstream):
    """`/v1/openai/chat/completions` as OpenAI streams it; `X-Script` picks a variant: `cut`
    (the connection drops after two deltas), `slow` (a delta every 0.2 s), `silent` (3 s of
    nothing between the head and the first event)."""

    def __init__(self) -> None:
        self.sent: dict[str, bytes] = {}
        super().__init__()

    def _openai(self, sock, target: str) -> bool:
        received = self.received[target]
        request = json.loads(received["body"])
        script = next((value for name, value in received["headers"]
                       if name.lower() == "x-script"), "")
        events = [*CHAT_DELTAS, chat_event({}, "stop")]
        if (request.get("stream_options") or {}).get("include_usage"):
            events.append(USAGE_EVENT)
        events.append(DONE)
        sock.sendall(SSE_HEAD)
        if script == "silent":
            time.sleep(3)
        sent = b""
        for index, event in enumerate(events):
            if script == "cut" and index == 3:
                self.sent[script] = sent
                return False  # closed without the last chunk
            if script == "slow":
                time.sleep(0.2)
            sock.sendall(chunk(event))
            sent += event
        sock.sendall(LAST_CHUNK)
        self.sent[script or "whole"] = sent
        return True


@pytest.fixture(scope="module")
def fake():
    with OpenAILikeUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("usage-logs")


@pytest.fixture(scope="module")
def relay(start_server, fake, log_dir):
    return start_server(env={"UPSTREAM_BASE_URL": fake.url + "/v1/openai",
                             "PROXY_KEEPALIVE_SECONDS": "1", "LOG_DIR": str(log_dir)})


@pytest.fixture(scope="module")
def untouched(start_server, fake, tmp_path_factory):
    return start_server(env={"UPSTREAM_BASE_URL": fake.url + "/v1/openai", "PROXY_USAGE": "off",
                             "LOG_DIR": str(tmp_path_factory.mktemp("untouched"))})


def relayed(server, body: dict, script: str = "") -> bytes:
    with requests.post(f"{server.url}/v1/chat/completions", json=body, stream=True, timeout=20,
                       headers={"X-Script": script} if script else {}) as response:
        assert response.status_code == 200
        return response.raw.read(decode_content=False)


def usage_lines(log_dir: Path) -> list[dict]:
    path = log_dir / "usage.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def next_usage(log_dir: Path, before: int) -> dict:
    wait_until(lambda: len(usage_lines(log_dir)) > before, timeout=10)
    return usage_lines(log_dir)[before]


def test_a_client_that_did_not_ask_gets_the_upstreams_bytes_without_the_usage_chunk(
        relay, fake, log_dir):
    before = len(usage_lines(log_dir))
    body = relayed(relay, REQUEST)
    target = "/v1/openai/chat/completions"
    assert json.loads(fake.received[target]["body"])["stream_options"] == {"include_usage": True}
    assert USAGE_EVENT in fake.sent["whole"]
    assert body == fake.sent["whole"].replace(USAGE_EVENT, b"")
    usage = next_usage(log_dir, before)
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["exact"]) == (3, 4, True)
    assert (usage["key"], usage["model"], usage["outcome"]) == ("anonymous", "gpt-test", "ok")
    assert usage["first_chunk_s"] is not None and usage["duration_s"] >= usage["first_chunk_s"]


def test_a_client_that_asked_gets_every_byte(relay, fake, log_dir):
    before = len(usage_lines(log_dir))
    body = relayed(relay, {**REQUEST, "stream_options": {"include_usage": True}})
    assert body == fake.sent["whole"] and USAGE_EVENT in body
    assert next_usage(log_dir, before)["exact"] is True


def test_with_usage_rewriting_off_the_body_goes_up_as_sent_and_usage_is_estimated(
        untouched, fake):
    raw = json.dumps(REQUEST).encode()
    with requests.post(f"{untouched.url}/v1/chat/completions", data=raw, timeout=20,
                       headers={"Content-Type": "application/json"}) as response:
        assert response.content == fake.sent["whole"]
    assert fake.received["/v1/openai/chat/completions"]["body"] == raw
    assert metric(untouched.url, "llm_tokens_total", kind="completion", exact="false") == 4


def test_a_stream_the_client_leaves_is_recorded_with_what_was_relayed(relay, log_dir):
    before = len(usage_lines(log_dir))
    with Stream(relay.url, "/v1/chat/completions", method="POST", body=REQUEST,
                headers={"X-Script": "slow"}) as stream:
        received = b""
        for _, data in stream.chunks():
            received += data
            if received.count(b"\n\n") >= 3:  # the role chunk and two with text
                break
    usage = next_usage(log_dir, before)
    assert usage["outcome"] == "client_closed" and usage["exact"] is False
    assert usage["completion_tokens"] >= 2


def test_a_stream_the_upstream_cuts_is_recorded_as_failed_and_estimated(relay, log_dir):
    before = len(usage_lines(log_dir))
    body = relayed(relay, REQUEST, script="cut")
    assert body.endswith(DONE) and b'"error"' in body
    usage = next_usage(log_dir, before)
    assert (usage["outcome"], usage["exact"], usage["completion_tokens"]) == (
        "upstream_failed", False, 2)


def test_usage_reaches_the_metrics(relay):
    relayed(relay, REQUEST)
    assert metric(relay.url, "llm_tokens_total", key="anonymous", model="gpt-test",
                  kind="completion", exact="true") >= 4
    assert metric(relay.url, "llm_requests_total", key="anonymous", model="gpt-test",
                  outcome="ok") >= 1


# --- keepalive while the upstream is silent: three real clients ---------------------------------


def test_a_silent_upstream_gets_keepalive_comments_between_events(relay, fake):
    body = relayed(relay, REQUEST, script="silent")
    assert body.count(b": keepalive\n\n") >= 2
    assert body.replace(b": keepalive\n\n", b"") == fake.sent["silent"].replace(USAGE_EVENT, b"")


def test_the_openai_python_sdk_reads_through_keepalives(relay):
    client = OpenAI(base_url=f"{relay.url}/v1", api_key="unused", max_retries=0,
                    default_headers={"X-Script": "silent"})
    chunks = list(client.chat.completions.create(model="gpt-test", stream=True,
                                                 messages=REQUEST["messages"]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER


def test_httpx_sse_reads_through_keepalives(relay):
    with httpx.Client(timeout=20) as client, connect_sse(
            client, "POST", f"{relay.url}/v1/chat/completions", json=REQUEST,
            headers={"X-Script": "silent"}) as source:
        data = [event.data for event in source.iter_sse()]
    assert data[-1] == "[DONE]"
    text = "".join(json.loads(d)["choices"][0]["delta"].get("content") or ""
                   for d in data[:-1] if json.loads(d)["choices"])
    assert text == ANSWER


def test_the_openai_npm_package_reads_through_keepalives(relay):
    result = subprocess.run(
        ["node", str(ROOT / "tests/support/openai_npm_client.mjs"), f"{relay.url}/v1", "silent"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["text"] == ANSWER
