"""The proxy's fallback on real servers: UPSTREAMS in front of the scripted upstream.

One FakeUpstream (tests/support/fake_upstream.py) plays every upstream: `primary` is its `/v1`,
where the request's path picks a failure (`hang` answers no headers, `status/<code>` that
status, `die` cuts a stream after its first event); `backup` is its `/v1/echo`, which answers
every request with 200 and the headers it got. So `/v1/status/503?x` reaches the primary as
`/v1/status/503?x` and the backup as `/v1/echo/status/503?x`, and `fake.received` tells which
were asked. `refused` puts a closed port first; `single` allows one attempt.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
import requests

from llm.relay import BROKEN
from llm.wire import error_event
from testbed.live_server import free_port
from tests.support.clients import metric, wait_until
from tests.support.fake_upstream import FIRST_EVENT, FakeUpstream

PRIMARY_KEY, BACKUP_KEY, CLIENT_KEY = "sk-primary-secret", "sk-backup-secret", "client-key"
CLIENT = {"Authorization": f"Bearer {CLIENT_KEY}"}
STREAMING = {"model": "m", "messages": [], "stream": True}
NOT_STREAMING = {"model": "m", "messages": []}
READ_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


def _upstreams(*entries: tuple[str, str, str]) -> str:
    return json.dumps([{"name": name, "base_url": url, **({"api_key": key} if key else {})}
                       for name, url, key in entries])


@pytest.fixture(scope="module")
def fallback(start_server, fake):
    return start_server(env={
        "UPSTREAMS": _upstreams(("primary", fake.url + "/v1", PRIMARY_KEY),
                                ("backup", fake.url + "/v1/echo", BACKUP_KEY)),
        "PROXY_API_KEYS": CLIENT_KEY, "UPSTREAM_READ_TIMEOUT": str(READ_TIMEOUT)})


@pytest.fixture(scope="module")
def refused(start_server, fake):
    closed = f"http://127.0.0.1:{free_port()}/v1"
    return start_server(env={"UPSTREAMS": _upstreams(("primary", closed, ""),
                                                     ("backup", fake.url + "/v1", ""))})


@pytest.fixture(scope="module")
def single(start_server, fake):
    return start_server(env={
        "UPSTREAMS": _upstreams(("primary", fake.url + "/v1", ""),
                                ("backup", fake.url + "/v1/echo", "")),
        "PROXY_ATTEMPTS": "1"})


def _call(server, path: str, body: dict | None = None, **kwargs) -> requests.Response:
    method = "GET" if body is None else "POST"
    with requests.request(method, server.url + path, json=body, timeout=10, **kwargs) as answer:
        answer.content  # noqa: B018 (read before the connection closes)
    return answer


def _fallbacks(server, reason: str) -> float:
    return metric(server.url, "upstream_fallbacks_total", from_upstream="primary", reason=reason)


@pytest.mark.parametrize(("script", "reason"), [
    ("hang", "timeout"), ("status/429", "status_429"), ("status/500", "status_500"),
    ("status/502", "status_502"), ("status/503", "status_503"), ("status/504", "status_504"),
])
@pytest.mark.parametrize("body", [STREAMING, None], ids=["streaming-post", "get"])
def test_a_failure_before_the_body_goes_to_the_next_upstream(fallback, fake, script, reason,
                                                             body):
    target = f"/v1/{script}?{reason}-{body is None}"
    before = _fallbacks(fallback, reason)
    answer = _call(fallback, target, body, headers=CLIENT)
    assert answer.status_code == 200
    assert answer.headers["X-Upstream"] == "backup"
    to_primary = fake.received[target]["headers"]
    to_backup = fake.received["/v1/echo" + target.removeprefix("/v1")]["headers"]
    assert ("Authorization", f"Bearer {PRIMARY_KEY}") in to_primary
    assert ("Authorization", f"Bearer {BACKUP_KEY}") in to_backup
    assert CLIENT_KEY not in json.dumps([to_primary, to_backup])
    assert _fallbacks(fallback, reason) == before + 1


def test_the_answering_upstream_is_counted_by_name(fallback):
    def answered(upstream: str, status: str) -> float:
        return metric(fallback.url, "upstream_requests_total", upstream=upstream, status=status)

    before = answered("primary", "503"), answered("backup", "200")
    _call(fallback, "/v1/status/503?counted", headers=CLIENT)
    assert (answered("primary", "503"), answered("backup", "200")) == (
        before[0] + 1, before[1] + 1)


@pytest.mark.parametrize(("script", "status"), [("status/500", 500), ("hang", 504)])
def test_a_post_without_a_stream_gets_its_upstreams_failure(fallback, fake, script, status):
    target = f"/v1/{script}?not-streaming"
    answer = _call(fallback, target, NOT_STREAMING, headers=CLIENT)
    assert answer.status_code == status
    if status == 500:  # the upstream's answer, relayed
        assert answer.json()["error"]["message"] == "status 500"
        assert answer.headers["X-Upstream"] == "primary"
    else:  # ours: the upstream said nothing
        assert answer.json()["error"]["code"] == "upstream_timeout"
    assert target in fake.received
    assert "/v1/echo" + target.removeprefix("/v1") not in fake.received


def test_a_stream_cut_after_its_first_byte_is_not_sent_again(fallback, fake):
    with requests.post(fallback.url + "/v1/die?once", json=STREAMING, headers=CLIENT,
                       stream=True, timeout=10) as answer:
        body = answer.raw.read(decode_content=False)
        assert answer.headers["X-Upstream"] == "primary"
    assert body == FIRST_EVENT + b'data: {"choi\n\n' + error_event(BROKEN)
    assert "/v1/echo/die?once" not in fake.received


def test_retry_after_skips_the_upstream_until_then(fallback, fake):
    limited = _call(fallback, "/v1/status/429?retry-after=2", STREAMING, headers=CLIENT)
    limited_at = time.monotonic()
    assert limited.headers["X-Upstream"] == "backup"
    during = _call(fallback, "/v1/echo?during-the-skip", headers=CLIENT)
    assert time.monotonic() - limited_at < 1.5, "too slow to test within the skip"
    assert during.headers["X-Upstream"] == "backup"
    assert "/v1/echo?during-the-skip" not in fake.received  # the primary was not asked
    time.sleep(max(0.0, limited_at + 2.3 - time.monotonic()))
    after = _call(fallback, "/v1/echo?after-the-skip", headers=CLIENT)
    assert after.headers["X-Upstream"] == "primary"
    assert "/v1/echo?after-the-skip" in fake.received


def test_a_client_leaving_during_the_first_attempt_asks_no_other(fallback, fake):
    payload = json.dumps(STREAMING).encode()
    port = int(fallback.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /v1/hang?leaving HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                     b"%s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (CLIENT_KEY.encode(), len(payload), payload))
        assert fake.arrived["/v1/hang?leaving"].wait(5)
    left = time.monotonic()
    wait_until(lambda: "/v1/hang?leaving" in fake.closed, 5, interval=0.01)
    assert fake.closed["/v1/hang?leaving"] - left < READ_TIMEOUT
    time.sleep(READ_TIMEOUT)
    assert "/v1/echo/hang?leaving" not in fake.received


def test_no_upstream_key_reaches_the_log(fallback):
    _call(fallback, "/v1/hang?logged", STREAMING, headers=CLIENT)  # logs a failed attempt
    log = fallback.log()
    assert "upstream primary" in log
    assert PRIMARY_KEY not in log
    assert BACKUP_KEY not in log


@pytest.mark.parametrize("body", [None, NOT_STREAMING], ids=["get", "post-without-stream"])
def test_a_refused_connection_goes_to_the_next_upstream(refused, fake, body):
    before = _fallbacks(refused, "connect")
    target = f"/v1/echo?refused-{body is None}"
    answer = _call(refused, target, body)
    assert answer.status_code == 200
    assert answer.headers["X-Upstream"] == "backup"
    assert target in fake.received
    assert _fallbacks(refused, "connect") == before + 1


def test_the_last_attempts_failure_is_relayed(refused):
    answer = _call(refused, "/v1/status/503?last", STREAMING)
    assert answer.status_code == 503
    assert answer.headers["X-Upstream"] == "backup"
    assert answer.json()["error"]["message"] == "status 503"


def test_one_attempt_never_falls_back(single, fake):
    before = _fallbacks(single, "status_503")
    answer = _call(single, "/v1/status/503?single", STREAMING)
    assert answer.status_code == 503
    assert answer.headers["X-Upstream"] == "primary"
    assert "/v1/echo/status/503?single" not in fake.received
    assert _fallbacks(single, "status_503") == before
