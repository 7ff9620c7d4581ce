"""Per-key limits of the proxy on real servers: PROXY_KEYS_FILE, the 429, OpenAI's x-ratelimit
headers, counting shared by workers and instances through Redis, and a bad file at start.

Windows are fixed minutes, so each test uses keys of its own and starts well inside a window
(`_inside_a_window`): a window ending mid-test would reset the counts it asserts.
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from llm.limits import window_at
from testbed.live_server import LiveServer
from tests.support.clients import wait_until

CHAT = {"model": "demo", "messages": [{"role": "user", "content": "hello limits"}],
        "max_tokens": 3, "delay_ms": 0}
KEYS = [
    {"name": "rpm-3", "key": "sk-limits-rpm-3-secret", "rpm": 3},
    {"name": "rpm-stream", "key": "sk-limits-rpm-stream-secret", "rpm": 100, "tpm": 100000},
    {"name": "unlimited", "key": "sk-limits-unlimited-secret"},
    {"name": "tpm-100", "key": "sk-limits-tpm-100-secret", "tpm": 100},
    {"name": "shared-workers", "key": "sk-limits-shared-workers-secret", "rpm": 4},
    {"name": "shared-instances", "key": "sk-limits-shared-instances-secret", "rpm": 5},
]
SECRET = {entry["name"]: entry["key"] for entry in KEYS}
RATE_HEADERS = {f"x-ratelimit-{part}-{kind}" for part in ("limit", "remaining", "reset")
                for kind in ("requests", "tokens")}


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("keys") / "keys.json"
    path.write_text(json.dumps({"keys": KEYS}))
    return str(path)


@pytest.fixture(scope="module")
def limited(start_server, keys_file):
    return start_server(env={"PROXY_KEYS_FILE": keys_file})


def _inside_a_window(margin: float = 8.0) -> None:
    resets_in = window_at(time.time()).resets_in
    if resets_in < margin:
        time.sleep(resets_in + 0.1)


def _call(url: str, name: str | None, path: str = "/v1/models", **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {SECRET[name]}"} if name else {}
    headers.update(kwargs.pop("headers", {}))
    if "json" in kwargs:
        return requests.post(url + path, headers=headers, timeout=10, **kwargs)
    return requests.get(url + path, headers=headers, timeout=10, **kwargs)


def test_requests_past_rpm_are_refused_with_openais_error_and_headers(limited):
    _inside_a_window()
    answers = [_call(limited.url, "rpm-3") for _ in range(4)]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert [answer.headers["x-ratelimit-remaining-requests"] for answer in answers] == [
        "2", "1", "0", "0"]
    for answer in answers:
        assert answer.headers["x-ratelimit-limit-requests"] == "3"
        assert answer.headers["x-ratelimit-reset-requests"].endswith("s")
        assert "x-ratelimit-limit-tokens" not in answer.headers  # rpm-3 has no tpm
    refused = answers[-1]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "Retry-After" not in answers[0].headers
    assert refused.json() == {"error": {
        "message": refused.json()["error"]["message"], "type": "requests", "param": None,
        "code": "rate_limit_exceeded"}}
    assert "rpm-3" in refused.json()["error"]["message"]


def test_a_stream_carries_the_headers_on_its_head(limited):
    _inside_a_window()
    with requests.post(limited.url + "/v1/chat/completions", json={**CHAT, "stream": True},
                       headers={"Authorization": f"Bearer {SECRET['rpm-stream']}"},
                       stream=True, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert {name.lower() for name in response.headers} >= RATE_HEADERS
        assert response.headers["x-ratelimit-remaining-requests"] == "99"
        assert response.content.endswith(b"data: [DONE]\n\n")


def test_keys_without_limits_get_no_ratelimit_headers(limited):
    answer = _call(limited.url, "unlimited")
    assert answer.status_code == 200
    assert not RATE_HEADERS & {name.lower() for name in answer.headers}


def test_a_keys_file_alone_requires_a_key(limited):
    for authorization in ({}, {"Authorization": "Bearer sk-limits-wrong"}):
        answer = requests.get(limited.url + "/v1/models", headers=authorization, timeout=10)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "invalid_api_key"


def test_tokens_of_a_finished_stream_count_against_the_next_requests(limited):
    _inside_a_window()
    # The mock's usage says more than tpm: the stream is not cut for it, the next are refused.
    streamed = _call(limited.url, "tpm-100", "/v1/chat/completions",
                     json={**CHAT, "stream": True, "max_tokens": 150})
    assert streamed.status_code == 200
    assert streamed.headers["x-ratelimit-remaining-tokens"] == "100"
    assert streamed.content.endswith(b"data: [DONE]\n\n")
    wait_until(lambda: _call(limited.url, "tpm-100").status_code == 429, 5, interval=0.1)
    refused = _call(limited.url, "tpm-100")
    assert refused.json()["error"]["type"] == "tokens"
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_no_key_appears_in_the_log_or_the_metrics(limited):
    for name in SECRET:
        _call(limited.url, name)
    _call(limited.url, None, headers={"Authorization": "Bearer sk-limits-wrong"})
    metrics = requests.get(limited.url + "/metrics", timeout=10).text
    for key in [*SECRET.values(), "sk-limits-wrong"]:
        assert key not in limited.log()
        assert key not in metrics


def _admitted(urls: list[str], name: str, tries: int) -> int:
    """How many of `tries` requests, spread over `urls`, each on a new connection, got in."""
    codes = [_call(urls[attempt % len(urls)], name).status_code for attempt in range(tries)]
    assert set(codes) <= {200, 429}, codes
    return codes.count(200)


def test_two_workers_count_together_through_redis(start_server, keys_file, redis_url):
    server = start_server(env={"PROXY_KEYS_FILE": keys_file, "REDIS_URL": redis_url,
                               "WEB_CONCURRENCY": "2"})
    _inside_a_window()
    assert _admitted([server.url], "shared-workers", 12) == 4


def test_two_instances_count_together_through_redis(start_server, keys_file, redis_url):
    env = {"PROXY_KEYS_FILE": keys_file, "REDIS_URL": redis_url}
    first, second = start_server(env=env), start_server(env=env)
    _inside_a_window()
    assert _admitted([first.url, second.url], "shared-instances", 12) == 5


@pytest.mark.parametrize(("content", "says"), [
    (None, "cannot be read"),
    ("{not json", "is not JSON"),
    (json.dumps({"keys": [{"name": "a", "key": "sk-bad-member", "rps": 1}]}),
     "unknown members"),
])
def test_a_bad_keys_file_stops_the_server_naming_the_setting(tmp_path, content, says):
    path = tmp_path / "keys.json"
    if content is not None:
        path.write_text(content)
    server = LiveServer(env={"PROXY_KEYS_FILE": str(path)})
    try:
        wait_until(lambda: server.process.poll() is not None, timeout=20)
        log = server.log()
        assert server.process.returncode != 0
        assert "PROXY_KEYS_FILE" in log and says in log
        assert "sk-bad-member" not in log
    finally:
        server.stop()
