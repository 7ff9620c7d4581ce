"""Tests for llm.upstream: keys, request headers, targets, the session, failure mapping."""

from __future__ import annotations

import json
import socket
import time
from http.client import HTTPMessage
from types import SimpleNamespace

import pytest
import requests
from requests.cookies import extract_cookies_to_jar

from app import create_app
from llm.keys import ANONYMOUS
from llm.upstream import Answer, Upstream, upstream_target
from llm.wire import OpenAIError
from services import services
from streaming.cancellation import Cancellation
from testbed.live_server import free_port
from tests.support.fake_upstream import FakeUpstream


def _upstream(**settings) -> Upstream:
    return services(create_app({"TESTING": True, **settings})).upstream


def _counted(upstream: Upstream, status: str) -> float | None:
    """upstream_requests_total{upstream="default", status}, read through the registry of the
    app it belongs to."""
    return upstream._metrics.registry.get_sample_value("upstream_requests_total",
                                                       {"upstream": "default", "status": status})


KEYED = {"UPSTREAM_API_KEY": "sk-up", "PROXY_API_KEYS": ("client-a", "client-b")}


def test_without_an_upstream_key_everyone_may_pass():
    upstream = _upstream()
    assert upstream.client_key(None) is ANONYMOUS
    assert upstream.client_key("Bearer whatever") is ANONYMOUS


@pytest.mark.parametrize(("authorization", "name"), [
    ("Bearer client-a", "key-1"),
    ("bearer  client-b ", "key-2"),
    ("Bearer client-c", None),
    ("Bearer client-", None),
    ("client-a", None),
    ("Basic client-a", None),
    ("Bearer ", None),
    (None, None),
])
def test_key_mode_admits_only_proxy_keys_by_their_position(authorization, name):
    client = _upstream(**KEYED).client_key(authorization)
    assert (client and client.name) == name


def test_key_mode_without_proxy_keys_refuses_everyone():
    upstream = _upstream(UPSTREAM_API_KEY="sk-up", PROXY_API_KEYS=())
    assert upstream.client_key("Bearer ") is None
    assert upstream.client_key("Bearer sk-up") is None


CLIENT_HEADERS = [("Host", "proxy:8000"), ("Content-Length", "12"), ("Content-Type", "a/b"),
                  ("Accept-Encoding", "gzip, br"), ("Connection", "keep-alive, X-Hop"),
                  ("X-Hop", "1"), ("Expect", "100-continue"), ("Proxy-Authorization", "x"),
                  ("Authorization", "Bearer client-a"), ("Api-Key", "client-a"),
                  ("OpenAI-Organization", "org-1"), ("Cookie", "c=1")]


def test_request_headers_pass_the_clients_key_without_an_upstream_key():
    assert _upstream().request_headers(CLIENT_HEADERS) == {
        "Content-Type": "a/b", "Authorization": "Bearer client-a", "Api-Key": "client-a",
        "OpenAI-Organization": "org-1", "Cookie": "c=1", "Accept-Encoding": "identity"}


def test_a_keys_file_without_an_upstream_key_withholds_the_clients_key():
    keys = ({"name": "team-a", "key": "client-a", "rpm": None, "tpm": None},)
    headers = _upstream(PROXY_KEYS_FILE=keys).request_headers(CLIENT_HEADERS)
    assert "Authorization" not in headers and "Api-Key" not in headers
    assert "client-a" not in repr(headers)


def test_request_headers_carry_no_client_key_in_key_mode():
    # Each upstream's own key is added as it is asked (Upstream.send).
    headers = _upstream(**KEYED).request_headers([*CLIENT_HEADERS, ("X-Api-Key", "client-a")])
    assert "Authorization" not in headers
    assert "client-a" not in repr(headers)


@pytest.mark.parametrize(("environ", "target"), [
    ({"RAW_URI": "/v1/chat/completions?b=2&a=%2F"}, "/chat/completions?b=2&a=%2F"),
    ({"RAW_URI": "/v1/files/a%2Fb"}, "/files/a%2Fb"),
    ({"RAW_URI": "http://host/v1/models", "PATH_INFO": "/v1/models", "QUERY_STRING": "x=1"},
     "/models?x=1"),
    ({"PATH_INFO": "/v1/a b", "QUERY_STRING": ""}, "/a%20b"),
])
def test_upstream_target_keeps_the_clients_path_and_query(environ, target):
    assert upstream_target(environ, "/v1") == target


def test_base_url_loses_its_trailing_slash():
    [endpoint] = _upstream(UPSTREAM_BASE_URL="http://u/v1/").endpoints
    assert endpoint.url("/models", "http://unused") == "http://u/v1/models"


def test_one_session_per_process_that_keeps_no_cookies():
    upstream = _upstream(UPSTREAM_POOL_SIZE=7)
    session = upstream.session
    assert upstream.session is session
    assert not session.trust_env  # no proxies or .netrc credentials from the environment
    assert session.get_adapter("http://u")._pool_maxsize == 7
    message = HTTPMessage()
    message["Set-Cookie"] = "session=secret; Path=/"
    request = requests.Request("GET", "http://u/v1/models").prepare()
    extract_cookies_to_jar(session.cookies, request,
                           SimpleNamespace(_original_response=SimpleNamespace(msg=message)))
    assert len(session.cookies) == 0


def _at(port: int, **settings) -> Upstream:
    return _upstream(UPSTREAM_BASE_URL=f"http://127.0.0.1:{port}/v1", **settings)


def _send(upstream: Upstream) -> Answer | None:
    return upstream.send("GET", "/models", {}, b"", Cancellation())


def test_refused_connection_is_a_502():
    upstream = _at(free_port())
    with pytest.raises(OpenAIError) as caught:
        _send(upstream)
    assert (caught.value.status, caught.value.code) == (502, "upstream_unreachable")
    assert _counted(upstream, "unreachable") == 1


def test_no_answer_within_the_read_timeout_is_a_504():
    with socket.create_server(("127.0.0.1", 0)) as silent:
        upstream = _at(silent.getsockname()[1], UPSTREAM_READ_TIMEOUT=0.2)
        began = time.monotonic()
        with pytest.raises(OpenAIError) as caught:
            _send(upstream)
        assert time.monotonic() - began < 2
    assert (caught.value.status, caught.value.code) == (504, "upstream_timeout")
    assert _counted(upstream, "timeout") == 1


def test_a_cancelled_call_returns_none_without_asking():
    cancellation = Cancellation()
    cancellation.cancel("disconnect")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        upstream = _at(listener.getsockname()[1])
        assert upstream.send("GET", "/models", {}, b"", cancellation) is None
    assert _counted(upstream, "cancelled") == 1


@pytest.fixture
def fake():
    with FakeUpstream() as upstream:
        yield upstream


def _chain(fake: FakeUpstream, *paths: str, attempts: int) -> Upstream:
    upstreams = json.dumps([{"name": f"u{number}", "base_url": fake.url + path}
                            for number, path in enumerate(paths)])
    return _upstream(UPSTREAMS=upstreams, PROXY_ATTEMPTS=str(attempts))


def test_at_most_proxy_attempts_upstreams_are_asked_and_the_last_answer_is_the_clients(fake):
    upstream = _chain(fake, "/v1/status/503", "/v1/status/502", "/v1/echo", attempts=2)
    answer = upstream.send("GET", "/models?capped", {}, b"", Cancellation())
    assert answer is not None
    assert (answer.endpoint.name, answer.response.status_code) == ("u1", 502)
    answer.response.close()
    assert "/v1/status/503/models?capped" in fake.received
    assert "/v1/echo/models?capped" not in fake.received


def test_each_upstream_is_asked_once_however_many_attempts(fake):
    upstream = _chain(fake, "/v1/status/503", attempts=5)
    answer = upstream.send("GET", "/models?once", {}, b"", Cancellation())
    assert answer is not None and answer.response.status_code == 503
    answer.response.close()
    assert fake.received["/v1/status/503/models?once"]["request"] == 1
    assert fake.connections == 1


def test_every_upstream_unreachable_is_our_502(fake):
    closed = f"http://127.0.0.1:{free_port()}"
    upstreams = json.dumps([{"name": "a", "base_url": closed}, {"name": "b", "base_url": closed}])
    upstream = _upstream(UPSTREAMS=upstreams)
    with pytest.raises(OpenAIError) as caught:
        upstream.send("POST", "/chat/completions", {}, b"{}", Cancellation())
    assert (caught.value.status, caught.value.code) == (502, "upstream_unreachable")
    for name in "ab":
        assert upstream._metrics.registry.get_sample_value(
            "upstream_requests_total", {"upstream": name, "status": "unreachable"}) == 1
    assert upstream._metrics.registry.get_sample_value(
        "upstream_fallbacks_total", {"from_upstream": "a", "reason": "connect"}) == 1
