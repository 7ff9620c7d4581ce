"""The proxy on real servers: the OpenAI SDK through it, a mock upstream on another server, and a
scripted raw-TCP upstream (tests/support/fake_upstream.py) for the bytes, pauses and failures a
mock cannot make.

All traffic stays on 127.0.0.1. Instances: `server` (the shared one, proxying to its own mock),
`upstream` + `proxy` (two servers), and proxies in front of the fake upstream in the modes the
tests need (plain, keyed with a short read timeout, unreachable, connect timeout).
"""

from __future__ import annotations

import itertools
import json
import socket
import time
from collections.abc import Callable, Iterator

import pytest
import requests
from openai import APIError, BadRequestError, OpenAI

from generation import demo_model
from llm.relay import BROKEN, STALLED
from llm.wire import DONE, error_event
from streaming.sse import parse
from testbed.live_server import free_port
from tests.support.clients import Stream, metric, wait_until
from tests.support.fake_upstream import FIRST_EVENT, REPLAY, FakeUpstream

CHAT = {"model": "demo", "messages": [{"role": "user", "content": "hello proxy"}]}
PROMPT = "hello proxy"
@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def upstream(start_server):
    return start_server()


@pytest.fixture(scope="module")
def proxy(start_server, upstream):
    return start_server(env={"UPSTREAM_BASE_URL": upstream.url + "/mock/v1"})


@pytest.fixture(scope="module")
def plain(start_server, fake):
    return start_server(env={"UPSTREAM_BASE_URL": fake.url + "/v1", "PROXY_MAX_BODY": "4096"})


@pytest.fixture(scope="module")
def keyed(start_server, fake):
    return start_server(env={"UPSTREAM_BASE_URL": fake.url + "/v1",
                             "UPSTREAM_API_KEY": "sk-upstream-secret",
                             "PROXY_API_KEYS": "client-a,client-b",
                             "UPSTREAM_READ_TIMEOUT": "0.5"})


def _raw_request(url: str, path: str, body: dict) -> socket.socket:
    """A request on a raw socket, so the test decides exactly when the client goes away."""
    payload = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    sock.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(payload), payload))
    return sock


def _read_until(sock: socket.socket, predicate: Callable[[bytes], bool]) -> bytes:
    received = b""
    while not predicate(received):
        data = sock.recv(65536)
        assert data, f"connection closed early after {received!r}"
        received += data
    return received


# --- the OpenAI SDK through the proxy, to this server's own mock -------------------------------


def test_sdk_streams_the_demo_models_text(server):
    with OpenAI(base_url=server.url + "/v1", api_key="anything", max_retries=0) as client:
        stream = client.chat.completions.create(**CHAT, max_tokens=40, stream=True,
                                                extra_body={"delay_ms": 0})
        chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == demo_model.complete(PROMPT, 40)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_sdk_non_streaming_and_usage_chunk(server):
    with OpenAI(base_url=server.url + "/v1", api_key="anything", max_retries=0) as client:
        whole = client.chat.completions.create(**CHAT, max_tokens=25, extra_body={"delay_ms": 0})
        chunks = list(client.chat.completions.create(
            **CHAT, max_tokens=25, stream=True, stream_options={"include_usage": True},
            extra_body={"delay_ms": 0}))
    assert whole.choices[0].message.content == demo_model.complete(PROMPT, 25)
    assert whole.usage.completion_tokens == 25
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 25
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_sdk_sees_upstream_errors_with_their_status(server):
    with (OpenAI(base_url=server.url + "/v1", api_key="anything", max_retries=0) as client,
          pytest.raises(BadRequestError) as caught):
        client.chat.completions.create(model="demo", messages=[], max_tokens=5)
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == "messages"


# --- two servers: the proxy in front of another server's mock ---------------------------------


def test_chunks_arrive_as_the_upstream_paces_them(proxy):
    body = {**CHAT, "max_tokens": 4, "delay_ms": 300, "stream": True}
    with Stream(proxy.url, "/v1/chat/completions", method="POST", body=body) as stream:
        events = [(at, event.data) for at, event in stream.events()]
    assert events[-1][1] == "[DONE]"
    tokens = [at for at, data in events if '"content":"' in data and '"role"' not in data]
    assert len(tokens) == 4
    assert events[0][0] < tokens[0] - 0.15  # the role chunk comes at once, not with the tokens
    gaps = [later - earlier for earlier, later in itertools.pairwise(tokens)]
    assert all(gap > 0.15 for gap in gaps), gaps


@pytest.mark.parametrize(("phase", "body"), [
    ("non-streaming call (waiting for headers)", {"delay_ms": 100}),
    ("before the first chunk", {"delay_ms": 5000, "stream": True}),
    ("mid-stream", {"delay_ms": 50, "stream": True}),
])
def test_client_disconnect_cuts_the_upstream(proxy, upstream, phase, body):
    def cuts() -> float:
        return metric(upstream.url, "stream_disconnects_total", transport="mock")

    before = cuts()
    sock = _raw_request(proxy.url, "/v1/chat/completions", {**CHAT, "max_tokens": 50, **body})
    with sock:
        wait_until(lambda: metric(upstream.url, "streams_active", transport="mock") == 1, 5)
        if phase == "mid-stream":
            _read_until(sock, lambda got: got.count(b"data: ") >= 3)
        elif body.get("stream"):  # the proxy has the upstream's headers and passed them on
            _read_until(sock, lambda got: b"\r\n\r\n" in got)
        time.sleep(0.2)
    took = wait_until(lambda: cuts() == before + 1, 5, interval=0.01)
    assert took < 1.0, phase
    wait_until(lambda: metric(upstream.url, "streams_active", transport="mock") == 0, 2)
    wait_until(lambda: metric(proxy.url, "streams_active", transport="proxy") == 0, 2)


def test_proxy_metrics_count_upstream_requests(proxy):
    before = metric(proxy.url, "upstream_requests_total", status="200")
    with requests.get(proxy.url + "/v1/models", timeout=10) as response:
        assert response.json()["data"][0]["id"] == "demo"
    assert metric(proxy.url, "upstream_requests_total", status="200") == before + 1
    assert metric(proxy.url, "upstream_first_byte_seconds_count") >= 1


# --- the scripted upstream: bytes, headers, keys, failures -------------------------------------


@pytest.mark.parametrize("framing", ["chunked", "length", "close"])
def test_bytes_through_the_proxy_equal_the_upstreams(plain, fake, framing):
    def body(url: str) -> bytes:
        with requests.get(url, stream=True, timeout=10) as response:
            return response.raw.read(decode_content=False)

    direct = body(f"{fake.url}/v1/replay/{framing}")
    relayed = body(f"{plain.url}/v1/replay/{framing}")
    assert direct == b"".join(REPLAY)
    assert relayed == direct


def test_event_streams_get_no_cache_and_no_buffering_headers(plain):
    with requests.get(f"{plain.url}/v1/replay/length", stream=True, timeout=10) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Accel-Buffering"] == "no"
        assert "Content-Length" not in response.headers
        response.raw.read()


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
def test_any_method_is_forwarded_and_the_connection_reused(plain, fake, method):
    with requests.request(method, f"{plain.url}/v1/echo?{method}", timeout=10) as response:
        assert response.status_code == 200
    with requests.get(f"{plain.url}/v1/echo?after-{method}", timeout=10) as response:
        assert response.status_code == 200
    assert fake.received[f"/v1/echo?{method}"]["method"] == method
    assert (fake.received[f"/v1/echo?{method}"]["connection"]
            == fake.received[f"/v1/echo?after-{method}"]["connection"])


def test_hop_by_hop_headers_are_dropped_both_ways(plain, fake):
    headers = {"Connection": "keep-alive, X-Hop-Req", "X-Hop-Req": "1", "Keep-Alive": "300",
               "TE": "trailers", "Trailer": "X-Sum", "Proxy-Authorization": "Basic eDp5",
               "Proxy-Connection": "keep-alive", "X-Custom": "kept",
               "Authorization": "Bearer sk-client-own", "Accept-Encoding": "gzip"}
    with requests.post(plain.url + "/v1/echo/a%2Fb?b=2&a=1&x=%2F%20", headers=headers,
                       data=b'{"b": 1,  "a": [1,2]}', timeout=10) as response:
        sent = {name.lower(): value for name, value in response.json()}
        raw = response.raw.headers
    target = "/v1/echo/a%2Fb?b=2&a=1&x=%2F%20"
    assert fake.received[target]["body"] == b'{"b": 1,  "a": [1,2]}'
    for name in ("connection", "x-hop-req", "keep-alive", "te", "trailer", "proxy-authorization",
                 "proxy-connection"):
        assert name not in sent, name
    assert sent["x-custom"] == "kept"
    assert sent["authorization"] == "Bearer sk-client-own"  # no upstream key: passed through
    assert sent["accept-encoding"] == "identity"
    assert sent["host"] == fake.url.removeprefix("http://")
    for name in ("X-Hop-Resp", "Keep-Alive", "Proxy-Authenticate", "Proxy-Connection",
                 "Trailer", "Content-Length"):
        assert name not in raw, name
    assert raw["Transfer-Encoding"] == "chunked"
    assert raw.getlist("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert raw["X-Request-Id"] == "req-42"
    assert raw["OpenAI-Processing-Ms"] == "7"
    assert raw["X-RateLimit-Remaining-Requests"] == "99"


def test_pooled_connection_carries_no_cookies_between_clients(plain, fake):
    for user in ("first", "second"):
        with requests.get(f"{plain.url}/v1/echo?user={user}", timeout=10) as response:
            assert response.status_code == 200
    first, second = fake.received["/v1/echo?user=first"], fake.received["/v1/echo?user=second"]
    assert first["connection"] == second["connection"]  # the same pooled connection
    assert "cookie" not in {name.lower() for name, _ in second["headers"]}


def test_a_pooled_connection_the_upstream_just_closed_is_retried_once(plain, fake):
    with requests.post(plain.url + "/v1/closing?first", json={}, timeout=10) as response:
        assert response.text == "ok"
    first = fake.received["/v1/closing?first"]["connection"]
    with requests.post(plain.url + "/v1/closing?second", json={}, timeout=10) as response:
        assert response.text == "ok"
    assert fake.received["/v1/closing?second"]["connection"] != first


def test_chunked_request_body_is_forwarded_with_a_length(plain, fake):
    with requests.post(plain.url + "/v1/echo?chunked", data=iter([b'{"a":', b" 1}"]),
                       headers={"Content-Type": "application/json"}, timeout=10) as response:
        sent = {name.lower(): value for name, value in response.json()}
    assert sent["content-length"] == "8"
    assert "transfer-encoding" not in sent
    assert fake.received["/v1/echo?chunked"]["body"] == b'{"a": 1}'


def test_upstream_429_is_forwarded_with_retry_after(plain):
    with requests.post(plain.url + "/v1/ratelimit", json={}, timeout=10) as response:
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "7"
        assert response.json()["error"]["message"] == "slow down"


@pytest.mark.parametrize("chunked", [False, True])
def test_oversize_body_gets_413(plain, fake, chunked):
    payload = json.dumps({"pad": "x" * 5000}).encode()
    data = iter([payload]) if chunked else payload
    with requests.post(plain.url + f"/v1/echo?big={chunked}", data=data, timeout=10,
                       headers={"Content-Type": "application/json"}) as response:
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
    assert f"/v1/echo?big={chunked}" not in fake.received


def test_non_json_body_is_the_upstreams_to_refuse(proxy, plain, fake):
    # Not parsed by the proxy (it would hold the loop for up to PROXY_MAX_BODY): forwarded...
    with requests.post(plain.url + "/v1/echo?bad", data=b"{not json", timeout=10,
                       headers={"Content-Type": "application/json"}) as response:
        assert response.status_code == 200
    assert fake.received["/v1/echo?bad"]["body"] == b"{not json"
    # ...and an OpenAI-compatible upstream (the mock) answers its 400 in OpenAI's shape.
    with requests.post(proxy.url + "/v1/chat/completions", data=b"{not json", timeout=10,
                       headers={"Content-Type": "application/json"}) as response:
        assert response.status_code == 400
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_disconnect_while_waiting_for_headers_closes_the_upstream(plain, fake):
    with _raw_request(plain.url, "/v1/hang?waiting", {}):
        assert fake.arrived["/v1/hang?waiting"].wait(5)
        time.sleep(0.1)
    left = time.monotonic()
    wait_until(lambda: "/v1/hang?waiting" in fake.closed, 5, interval=0.01)
    assert fake.closed["/v1/hang?waiting"] - left < 1.0


@pytest.mark.parametrize(("script", "failure", "partial"), [
    ("stall", STALLED, b""),
    ("die", BROKEN, b'data: {"choi\n\n'),
])
def test_mid_stream_failure_ends_with_an_error_event_and_done(keyed, script, failure, partial):
    began = time.monotonic()
    with requests.get(f"{keyed.url}/v1/{script}", stream=True, timeout=10,
                      headers={"Authorization": "Bearer client-b"}) as response:
        body = response.raw.read(decode_content=False)
    assert body == FIRST_EVENT + partial + error_event(failure)
    assert body.endswith(DONE)
    assert b"finish_reason" not in body[len(FIRST_EVENT):]
    error = json.loads(parse(body)[-2].data)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if script == "stall":
        assert 0.4 < time.monotonic() - began < 5


def test_sdk_raises_the_mid_stream_error(keyed):
    with (OpenAI(base_url=keyed.url + "/v1", api_key="client-a", max_retries=0) as client,
          pytest.raises(APIError, match="stopped sending")):
        for _ in client.chat.completions.create(model="demo", messages=[], stream=True):
            pass


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "client-a", "Basic Y2xpZW50LWE="])
def test_key_mode_refuses_other_keys_with_401(keyed, fake, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    with requests.get(keyed.url + "/v1/echo?refused", headers=headers, timeout=10) as response:
        assert response.status_code == 401
        assert response.json() == {"error": {
            "message": "Incorrect API key provided.", "type": "invalid_request_error",
            "param": None, "code": "invalid_api_key"}}
    assert "/v1/echo?refused" not in fake.received


def test_key_mode_sends_the_upstream_key_and_never_the_clients(keyed, fake):
    headers = {"Authorization": "Bearer client-b", "api-key": "client-b", "X-Api-Key": "client-b"}
    with requests.get(keyed.url + "/v1/echo?keyed", headers=headers, timeout=10) as response:
        assert response.status_code == 200
    sent = fake.received["/v1/echo?keyed"]["headers"]
    assert ("Authorization", "Bearer sk-upstream-secret") in sent
    assert "client-b" not in json.dumps(sent)


def test_unreachable_upstream_gives_502(start_server):
    server = start_server(env={"UPSTREAM_BASE_URL": f"http://127.0.0.1:{free_port()}/v1"})
    with requests.get(server.url + "/v1/models", timeout=10) as response:
        assert response.status_code == 502
        error = response.json()["error"]
    assert error == {"message": "the upstream API could not be reached", "type": "upstream_error",
                     "param": None, "code": "upstream_unreachable"}


def test_connect_timeout_gives_504(start_server):
    # A listener whose accept queue is full: Linux drops further SYNs, so connecting hangs.
    fillers: list[socket.socket] = []
    with socket.create_server(("127.0.0.1", 0), backlog=0) as listener:
        try:
            with pytest.raises(TimeoutError):  # connects succeed until the queue is full
                for _ in range(16):
                    fillers.append(socket.socket())
                    fillers[-1].settimeout(0.3)
                    fillers[-1].connect(listener.getsockname())
            url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
            server = start_server(env={"UPSTREAM_BASE_URL": url,
                                       "UPSTREAM_CONNECT_TIMEOUT": "0.5"})
            began = time.monotonic()
            with requests.get(server.url + "/v1/models", timeout=10) as response:
                assert response.status_code == 504
                assert response.json()["error"]["code"] == "upstream_timeout"
            assert time.monotonic() - began < 5
        finally:
            for filler in fillers:
                filler.close()
