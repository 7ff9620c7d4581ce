"""Stream slots (MAX_STREAMS, MAX_STREAMS_PER_CLIENT) and the body size limit on a real server.

A server with small limits and clients on distinct loopback addresses (all of 127.0.0.0/8
reaches a server bound to 127.0.0.1), over SSE, fetch, WebSocket and the proxy. The unit tests
of `streaming.limits` are in tests/unit/streaming/test_limits.py.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests
import websocket

from services import TRANSPORTS
from testbed.live_server import LiveServer
from tests.support.clients import metric, wait_until

PER_CLIENT, TOTAL = 2, 4
LONG = "/sse/chat?prompt=slot&tokens=2&delay_ms=10000"  # one token every 10 s: stays open


@pytest.fixture(scope="module")
def limited_server(start_server) -> LiveServer:
    return start_server(env={"MAX_STREAMS": str(TOTAL), "MAX_STREAMS_PER_CLIENT": str(PER_CLIENT),
                             "MAX_BODY_BYTES": "1024", "PROXY_MAX_BODY": "16384"})


@pytest.fixture
def limited(limited_server) -> LiveServer:
    """The limited server once the streams of the test before have all closed."""
    def quiet() -> bool:
        return sum(metric(limited_server.url, "streams_active", transport=t)
                   for t in TRANSPORTS) == 0

    wait_until(quiet, 10, interval=0.05)
    return limited_server


@contextmanager
def _stream(server: LiveServer, source: str, path: str = LONG, method: str = "GET",
            body: dict | None = None) -> Iterator[http.client.HTTPResponse]:
    """A request from `source` (a loopback address), its response open while the block runs."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10,
                                            source_address=(source, 0))
    try:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        if response.status == 200:
            response.read1(100)  # the stream started: its slot is taken
        yield response
    finally:
        connection.close()


def _refusal(response: http.client.HTTPResponse, status: int, kind: str) -> None:
    assert response.status == status
    assert 5 <= int(response.headers["Retry-After"]) <= 10
    error = json.loads(response.read())["error"]
    assert error["type"] == kind, error
    assert "Traceback" not in error["message"]


def _ws(server: LiveServer, source: str) -> websocket.WebSocket:
    return websocket.create_connection(
        f"ws://127.0.0.1:{server.port}/ws/chat", timeout=10,
        socket=socket.create_connection(("127.0.0.1", server.port), source_address=(source, 0)))


def test_a_client_past_its_share_gets_429_on_every_transport(limited):
    with _stream(limited, "127.0.0.2") as first, _stream(limited, "127.0.0.2") as second:
        assert first.status == second.status == 200
        with _stream(limited, "127.0.0.2") as third:
            _refusal(third, 429, "too_many_streams")
        body = {"prompt": "p", "tokens": 2, "delay_ms": 10}
        with _stream(limited, "127.0.0.2", "/api/chat", "POST", body) as fetch:
            _refusal(fetch, 429, "too_many_streams")
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            _ws(limited, "127.0.0.2")
        assert refused.value.status_code == 429
        assert json.loads(refused.value.resp_body)["error"]["type"] == "too_many_streams"
        proxied = {"model": "demo", "messages": [{"role": "user", "content": "p"}],
                   "stream": True}
        with _stream(limited, "127.0.0.2", "/v1/chat/completions", "POST", proxied) as proxy:
            assert proxy.status == 429
            assert json.loads(proxy.read())["error"]["message"]  # OpenAI's shape
        with _stream(limited, "127.0.0.3") as other:  # another address still gets in
            assert other.status == 200


def test_a_full_server_answers_503_and_a_closed_stream_frees_its_slot_at_once(limited):
    with (_stream(limited, "127.0.0.4") as a, _stream(limited, "127.0.0.5") as b,
          _stream(limited, "127.0.0.6") as c):
        ws = _ws(limited, "127.0.0.7")  # a WebSocket connection holds a slot too
        try:
            assert a.status == b.status == c.status == 200
            with _stream(limited, "127.0.0.8") as refused:
                _refusal(refused, 503, "server_busy")
        finally:
            ws.close()

        def admitted() -> bool:
            with _stream(limited, "127.0.0.8") as again:
                return again.status == 200

        assert wait_until(admitted, 2, interval=0.05) < 1.0


def test_a_finished_stream_gives_its_slot_back_before_the_client_asks_again(limited):
    for _ in range(PER_CLIENT + 3):  # more streams in a row than the client's share
        with _stream(limited, "127.0.0.9", "/sse/chat?prompt=q&tokens=3&delay_ms=0") as done:
            assert done.status == 200
            done.read()


def test_refused_bad_and_head_requests_keep_no_slot(limited):
    for _ in range(PER_CLIENT + 2):
        with _stream(limited, "127.0.0.10", "/sse/chat?tokens=0") as bad:
            assert bad.status == 400
        with _stream(limited, "127.0.0.10", LONG, "HEAD") as head:  # a body never sent
            assert head.status == 200
    with _stream(limited, "127.0.0.10") as first, _stream(limited, "127.0.0.10") as second:
        assert first.status == second.status == 200


# --- request bodies ----------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_whether_its_length_is_declared_or_not(limited):
    big = json.dumps({"prompt": "x" * 2000}).encode()
    declared = requests.post(limited.url + "/api/chat", data=big, timeout=10,
                             headers={"Content-Type": "application/json"})
    chunked = requests.post(limited.url + "/api/chat", data=iter([big[:1000], big[1000:]]),
                            headers={"Content-Type": "application/json"}, timeout=10)
    for response in (declared, chunked):
        assert response.status_code == 413
        assert response.json() == {"error": {
            "type": "request_too_large", "message": "the request body is larger than 1024 bytes"}}


def test_the_mock_parses_no_more_than_max_body_bytes_and_the_relay_passes_its_413(limited):
    # The relay forwards up to PROXY_MAX_BODY without parsing; the mock parses, so it takes no
    # more than the other JSON routes (a parse of megabytes would hold the event loop).
    small = {"model": "demo", "messages": [{"role": "user", "content": "y" * 500}],
             "max_tokens": 3, "delay_ms": 0}
    big = {"model": "demo", "messages": [{"role": "user", "content": "y" * 5000}]}
    for path in ("/mock/v1/chat/completions", "/v1/chat/completions"):
        assert requests.post(limited.url + path, json=small, timeout=10).status_code == 200
        response = requests.post(limited.url + path, json=big, timeout=10)
        assert response.status_code == 413, response.text
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
        assert "1024 bytes" in response.json()["error"]["message"]


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_share(start_server):
    # 127.0.0.1 is in FORWARDED_ALLOW_IPS by default, as nginx on the same host would be.
    proxied = start_server(env={"MAX_STREAMS_PER_CLIENT": "1"})

    def stream(client: str) -> http.client.HTTPConnection:
        connection = http.client.HTTPConnection("127.0.0.1", proxied.port, timeout=10)
        connection.request("GET", LONG, headers={"X-Forwarded-For": client})
        return connection

    first, second, again = stream("10.0.0.1"), stream("10.0.0.2"), None
    try:
        assert first.getresponse().status == 200
        assert second.getresponse().status == 200
        again = stream("10.0.0.1")
        assert again.getresponse().status == 429
    finally:
        for connection in (first, second, again):
            if connection is not None:
                connection.close()
