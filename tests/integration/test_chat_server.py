"""/sse/chat and /api/chat against the real gunicorn server, with real sockets."""

from __future__ import annotations

import json
import time

import pytest
import requests

from generation import demo_model
from tests.support.clients import Stream, metric, wait_until


def sse_path(prompt: str = "hello", tokens: int = 5, delay_ms: int = 0) -> str:
    return f"/sse/chat?prompt={prompt}&tokens={tokens}&delay_ms={delay_ms}"


def read_events(server, path: str, **kwargs) -> list:
    with Stream(server.url, path, **kwargs) as stream:
        return [event for _, event in stream.events()]


def test_sse_stream_has_exact_headers_and_events(server):
    with Stream(server.url, sse_path("hello", 12), headers={"Accept-Encoding": "gzip"}) as s:
        assert s.status == 200
        headers = s.response.headers
        assert headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert headers["Cache-Control"] == "no-cache"
        assert headers["X-Accel-Buffering"] == "no"
        assert headers["Transfer-Encoding"] == "chunked"
        assert "Content-Length" not in headers
        assert "Content-Encoding" not in headers
        body = s.read_all()
    assert body.startswith(b'retry: 3000\nevent: start\ndata: {"model":"demo","tokens":12}\n\n')
    events = read_events(server, sse_path("hello", 12))
    assert events[0].type == "start"
    assert json.loads(events[0].data) == {"model": "demo", "tokens": 12}
    tokens = events[1:-1]
    assert [t.data for t in tokens] == list(demo_model.generate("hello", 12))
    assert [t.last_event_id for t in tokens] == [str(i) for i in range(12)]
    assert all(t.type == "message" for t in tokens)
    assert events[-1].type == "end"
    assert json.loads(events[-1].data) == {"finish_reason": "stop", "tokens": 12}


def test_tokens_arrive_incrementally(server):
    with Stream(server.url, sse_path("incremental", tokens=10, delay_ms=150)) as s:
        arrivals = [(at, e) for at, e in s.events() if e.type == "message"]
    assert len(arrivals) == 10
    first, last = arrivals[0][0], arrivals[-1][0]
    # Ten tokens 150 ms apart: the first is read about 1.35 s before the last.
    assert last - first > 1.0
    assert first - s.sent_at < 0.8


def test_first_bytes_go_out_before_the_first_token_is_due(server):
    with Stream(server.url, sse_path("slow", tokens=2, delay_ms=3000)) as s:
        at, chunk = next(s.chunks())
        assert chunk.startswith(b"retry: 3000\nevent: start\n")
        assert at - s.sent_at < 1.0
    # A resumed stream has nothing to send until its next token: the headers still leave.
    with Stream(server.url, sse_path("slow", tokens=3, delay_ms=3000),
                headers={"Last-Event-ID": "0"}) as s:
        assert s.status == 200
        assert s.headers_at - s.sent_at < 1.0
    with Stream(server.url, "/api/chat", method="POST",
                body={"prompt": "slow", "tokens": 2, "delay_ms": 3000}) as s:
        assert s.response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert s.headers_at - s.sent_at < 1.0


def test_heartbeat_comment_while_idle(server):
    # The shared server sends a heartbeat after 1 s without an event.
    with Stream(server.url, sse_path("beat", tokens=1, delay_ms=2600)) as s:
        body = s.read_all()
    before_token = body.split(b"id: 0")[0]
    assert before_token.count(b": ping\n") == 2


@pytest.mark.parametrize("how", ["header", "query"])
def test_resume_after_last_event_id(server, how):
    full = read_events(server, sse_path("resume", 30))
    path, headers = sse_path("resume", 30), {}
    if how == "header":
        headers["Last-Event-ID"] = "9"
    else:
        path += "&last_event_id=9"
    resumed = read_events(server, path, headers=headers)
    assert [e.type for e in resumed[:-1]] == ["message"] * 20
    assert [e.data for e in resumed[:-1]] == [e.data for e in full[11:31]]
    assert [e.last_event_id for e in resumed[:-1]] == [str(i) for i in range(10, 30)]
    assert resumed[-1].type == "end"


def test_resume_over_post_event_stream(server):
    events = read_events(server, "/api/chat", method="POST",
                         headers={"Accept": "text/event-stream", "Last-Event-ID": "3"},
                         body={"prompt": "resume", "tokens": 6, "delay_ms": 0})
    assert [e.data for e in events[:-1]] == list(demo_model.generate("resume", 6))[4:]


@pytest.mark.parametrize("last_id", ["abc", "-1", "30", "1.5", "3a", "+3"])
def test_malformed_last_event_id_is_rejected(server, last_id):
    response = requests.get(server.url + sse_path("resume", 30),
                            headers={"Last-Event-ID": last_id}, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request"


@pytest.mark.parametrize(("accept", "content_type"), [
    ("text/event-stream", "text/event-stream; charset=utf-8"),
    ("application/x-ndjson", "application/x-ndjson"),
    ("text/plain", "text/plain; charset=utf-8"),
    ("image/png", "text/plain; charset=utf-8"),
    ("*/*", "text/plain; charset=utf-8"),
    (None, "text/plain; charset=utf-8"),
])
def test_post_chooses_the_format_from_accept(server, accept, content_type):
    headers = {"Accept": accept} if accept else {}
    with Stream(server.url, "/api/chat", method="POST", headers=headers,
                body={"prompt": "流式 fetch", "tokens": 8, "delay_ms": 0}) as s:
        assert s.status == 200
        assert s.response.headers["Content-Type"] == content_type
        assert "Content-Length" not in s.response.headers
        body = s.read_all().decode()
    expected = list(demo_model.generate("流式 fetch", 8))
    if content_type.startswith("text/plain"):
        assert body == "".join(expected)
    elif content_type.startswith("application/x-ndjson"):
        lines = [json.loads(line) for line in body.splitlines()]
        assert lines[0] == {"type": "start", "model": "demo", "tokens": 8}
        assert lines[1:-1] == [{"type": "token", "index": i, "text": t}
                               for i, t in enumerate(expected)]
        assert lines[-1] == {"type": "end", "finish_reason": "stop", "tokens": 8}
    else:
        assert "event: start" in body and "event: end" in body


BAD_QUERIES = [
    ("tokens=5", "prompt"),
    ("prompt=&tokens=5", "prompt"),
    ("prompt=" + "x" * 4001, "prompt"),
    ("prompt=a&tokens=0", "tokens"),
    ("prompt=a&tokens=10001", "tokens"),
    ("prompt=a&tokens=many", "tokens"),
    ("prompt=a&delay_ms=-1", "delay_ms"),
    ("prompt=a&delay_ms=10001", "delay_ms"),
    ("prompt=a&delay_ms=1.5", "delay_ms"),
]


@pytest.mark.parametrize(("query", "param"), BAD_QUERIES)
def test_bad_query_gets_400_json(server, query, param):
    response = requests.get(f"{server.url}/sse/chat?{query}", timeout=5)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert error["param"] == param
    assert param in error["message"]


BAD_BODIES = [
    (None, "application/json", 400, "invalid_json"),
    (b"{not json", "application/json", 400, "invalid_json"),
    (b'{"prompt": "a"}', "text/plain", 415, "unsupported_media_type"),
    (b'{"prompt": "a"}', None, 415, "unsupported_media_type"),
    (b'["prompt"]', "application/json", 400, "invalid_request"),
    (b'{"tokens": 3}', "application/json", 400, "invalid_request"),
    (b'{"prompt": 5}', "application/json", 400, "invalid_request"),
    (b'{"prompt": "a", "tokens": "5"}', "application/json", 400, "invalid_request"),
    (b'{"prompt": "a", "tokens": true}', "application/json", 400, "invalid_request"),
    (b'{"prompt": "a", "delay_ms": 1.5}', "application/json", 400, "invalid_request"),
    (b'{"prompt": "a", "tokens": 10001}', "application/json", 400, "invalid_request"),
    (b'{"prompt": "a", "delay_ms": -5}', "application/json", 400, "invalid_request"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "error_type"), BAD_BODIES)
def test_bad_post_gets_json_error(server, body, content_type, status, error_type):
    headers = {"Accept": "text/event-stream"}
    if content_type:
        headers["Content-Type"] = content_type
    response = requests.post(server.url + "/api/chat", data=body, headers=headers, timeout=5)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["type"] == error_type
    assert response.json()["error"]["message"]


def test_unknown_route_and_method_get_json_errors(server):
    missing = requests.get(server.url + "/nope", timeout=5)
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found"
    wrong = requests.delete(server.url + "/sse/chat", timeout=5)
    assert wrong.status_code == 405
    assert "GET" in wrong.headers["Allow"]
    assert wrong.json()["error"]["type"] == "method_not_allowed"


def test_conditional_and_range_headers_do_not_touch_a_stream(server):
    response = requests.get(server.url + sse_path("cond", 4), timeout=5,
                            headers={"If-None-Match": "*", "Range": "bytes=0-5"})
    assert response.status_code == 200
    assert "ETag" not in response.headers
    assert response.text.count("id: ") == 4


def _active(server, transport="sse") -> float:
    return metric(server.url, "streams_active", transport=transport)


@pytest.mark.parametrize("state", ["idle", "busy"])
def test_disconnect_releases_the_stream(server, state):
    baseline = _active(server)
    disconnects = metric(server.url, "stream_disconnects_total", transport="sse")
    delay = 5000 if state == "idle" else 1
    stream = Stream(server.url, sse_path("leave", tokens=10000, delay_ms=delay))
    events = stream.events()
    next(events)  # the start event: the stream is open
    assert _active(server) == baseline + 1
    stream.close()
    took = wait_until(lambda: _active(server) == baseline, timeout=1.0, interval=0.01)
    assert took < 1.0
    assert metric(server.url, "stream_disconnects_total", transport="sse") == disconnects + 1


def test_streams_end_cleanly_and_the_gauge_settles(server):
    baseline = _active(server, "ndjson")
    with Stream(server.url, "/api/chat", method="POST", headers={"Accept": "application/x-ndjson"},
                body={"prompt": "done", "tokens": 3, "delay_ms": 0}) as s:
        s.read_all()
    wait_until(lambda: _active(server, "ndjson") == baseline, timeout=1.0)
    assert metric(server.url, "stream_events_total", transport="ndjson") >= 5


def test_a_fast_stream_does_not_stall_a_paced_one(server):
    """A CPU-bound producer yields between batches, so a paced stream keeps its schedule."""
    fast = [Stream(server.url, sse_path("fast", tokens=10000, delay_ms=0)) for _ in range(3)]
    with Stream(server.url, sse_path("paced", tokens=15, delay_ms=40)) as paced:
        arrivals = [at for at, e in paced.events() if e.type == "message"]
    for stream in fast:
        stream.close()
    late = [at - (paced.sent_at + 0.04 * (i + 1)) for i, at in enumerate(arrivals)]
    assert max(late) < 0.25


@pytest.mark.parametrize("fmt", ["sse", "ndjson"])
def test_failure_after_start_is_reported_in_band(failing_server, fmt):
    failing = failing_server
    body = requests.get(f"{failing.url}/test/failing?format={fmt}", timeout=5).text
    assert "internal detail" not in body
    # A failed stream releases what it held, as a finished one does.
    wait_until(lambda: _active(failing, fmt) == 0, timeout=1.0)
    if fmt == "sse":
        assert body.rstrip().endswith(
            'event: error\ndata: {"type":"stream_error",'
            '"message":"the stream failed before it could finish"}')
        assert "id: 1\ndata:  two" in body
    else:
        last = json.loads(body.splitlines()[-1])
        assert last["type"] == "error"
        assert last["error"]["type"] == "stream_error"


def test_failure_in_plain_text_cuts_the_connection(failing_server):
    failing = failing_server
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{failing.url}/test/failing?format=text", timeout=5).content  # noqa: B018


def test_stream_is_not_slowed_by_a_reader_that_is_slow(server):
    """Backpressure: a reader that pauses still gets every token, in order, none lost."""
    with Stream(server.url, sse_path("backpressure", tokens=3000, delay_ms=0)) as s:
        data = []
        for _, event in s.events():
            if event.type == "message":
                data.append(event.data)
                if len(data) % 1000 == 0:
                    time.sleep(0.3)
    assert data == list(demo_model.generate("backpressure", 3000))
