"""Tests for llm.upstreams: what streams, what may be repeated, why to fall back, Retry-After,
and which upstreams a 429 skips."""

from __future__ import annotations

import socket
import threading
import time
from email.utils import formatdate

import pytest
import requests

from llm.upstreams import (
    MAX_SKIP_SECONDS,
    STREAM_KEY_LOOKS,
    Endpoint,
    RateLimits,
    asks_for_stream,
    fallback_reason,
    may_fall_back,
    repeatable,
    retry_after_seconds,
)
from testbed.live_server import free_port


@pytest.mark.parametrize(("body", "streams"), [
    (b'{"model": "m", "stream": true}', True),
    (b'{"stream":true,"model":"m"}', True),
    (b'{"stream" :\n\t true}', True),
    (b'{"stream": false}', False),
    (b'{"stream": "true"}', False),
    (b'{"model": "m"}', False),
    (b'{"messages": [{"content": "say \\"stream\\": true"}]}', False),  # inside a string
    (b'{"streams": true}', False),
    (b'{"stream_options": {}, "stream": true}', True),
    (b"", False),
    (b'{"stream": true' + b" " * (10 * 1024 * 1024), True),
])
def test_a_stream_is_asked_for_by_the_stream_member(body, streams):
    assert asks_for_stream(body) is streams


def test_the_search_for_the_stream_member_is_bounded():
    many = b'{"a": ["stream", ' + b'"stream", ' * STREAM_KEY_LOOKS + b'0], "stream": true}'
    assert not asks_for_stream(many)  # taken for a non-stream: the side that never repeats
    assert asks_for_stream(many[STREAM_KEY_LOOKS * len(b'"stream", '):])


def test_looking_at_the_largest_body_is_cheap():
    body = b'{"messages": [{"content": "' + b"x" * (10 * 1024 * 1024) + b'"}], "stream": true}'
    began = time.thread_time()  # CPU time: what holds the loop, whatever else the machine runs
    assert asks_for_stream(body)
    assert time.thread_time() - began < 0.02  # the blocking monitor's limit on the loop


@pytest.mark.parametrize(("method", "body", "may"), [
    ("GET", b"", True), ("HEAD", b"", True), ("OPTIONS", b"", True), ("PUT", b"{}", True),
    ("DELETE", b"", True), ("get", b"", True),
    ("POST", b'{"stream": true}', True), ("POST", b'{"stream": false}', False),
    ("POST", b"{}", False), ("PATCH", b"{}", False),
])
def test_what_may_be_sent_again(method, body, may):
    assert repeatable(method, body) is may


def _refused() -> Exception:
    try:
        requests.get(f"http://127.0.0.1:{free_port()}/", timeout=5)
    except requests.RequestException as exc:
        return exc
    raise AssertionError("a closed port answered")


def _silent(read_timeout: float, *, hang_up: bool) -> Exception:
    """What requests raises for a server that reads the request, then hangs up or says nothing."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def serve() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                if not hang_up:
                    time.sleep(read_timeout * 4)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            requests.get(f"http://127.0.0.1:{listener.getsockname()[1]}/",
                         timeout=(5, read_timeout))
        except requests.RequestException as exc:
            return exc
        finally:
            thread.join()
    raise AssertionError("the silent server answered")


def _response(status: int) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    return response


@pytest.mark.parametrize(("outcome", "reason"), [
    (_refused, "connect"),
    (lambda: requests.ConnectTimeout("connect timed out"), "connect"),
    (lambda: _silent(0.2, hang_up=False), "timeout"),
    (lambda: _silent(0.2, hang_up=True), None),  # it may have acted on the request
    (lambda: ValueError("a bug"), None),
    (lambda: _response(429), "status_429"),
    (lambda: _response(500), "status_500"),
    (lambda: _response(502), "status_502"),
    (lambda: _response(503), "status_503"),
    (lambda: _response(504), "status_504"),
    (lambda: _response(200), None),
    (lambda: _response(400), None),
    (lambda: _response(501), None),
])
def test_the_reason_to_ask_the_next_upstream(outcome, reason):
    assert fallback_reason(outcome()) == reason


@pytest.mark.parametrize(("reason", "repeatable_request", "may"), [
    ("connect", False, True), ("connect", True, True),
    ("timeout", False, False), ("timeout", True, True),
    ("status_500", False, False), ("status_429", True, True),
])
def test_a_request_not_to_repeat_falls_back_only_when_never_sent(reason, repeatable_request, may):
    assert may_fall_back(reason, repeatable_request) is may


NOW = 1_800_000_000.0


@pytest.mark.parametrize(("value", "seconds"), [
    ("7", 7.0), (" 0 ", 0.0), (formatdate(NOW + 30, usegmt=True), 30.0),
    (formatdate(NOW - 30, usegmt=True), 0.0), ("99999999", MAX_SKIP_SECONDS),
    (formatdate(NOW + 86400, usegmt=True), MAX_SKIP_SECONDS),
    (None, None), ("", None), ("soon", None), ("-5", None), ("1.5", None), ("٣", None),
])
def test_retry_after_in_seconds_or_as_a_date(value, seconds):
    assert retry_after_seconds(value, now=NOW) == seconds


A, B, C = (Endpoint(name, f"http://{name}/v1") for name in "abc")


def test_a_skipped_upstream_is_left_out_until_its_time():
    limits = RateLimits()
    assert limits.order([A, B, C], now=100) == [A, B, C]
    limits.skip("a", 5, now=100)
    assert limits.order([A, B, C], now=104.9) == [B, C]
    assert limits.order([A, B, C], now=105) == [A, B, C]


def test_with_every_upstream_skipped_the_one_free_first_is_asked():
    limits = RateLimits()
    limits.skip("a", 9, now=100)
    limits.skip("b", 3, now=100)
    assert limits.order([A, B], now=101) == [B]


def test_an_endpoint_without_a_base_url_is_this_servers_mock():
    assert Endpoint("m", "").url("/models?x=1", "http://h:1/mock/v1") == (
        "http://h:1/mock/v1/models?x=1")
    assert Endpoint("u", "http://u/v1/").url("/models", "http://unused") == "http://u/v1/models"
