"""Our SSE streams as httpx-sse reads them, against the real server.

httpx-sse (the SSE client of the httpx world, used by the MCP Python SDK) yields an event for
any block holding a field, data or not, and (florimondmanca/httpx-sse#35) for a comment block
once an id was seen. The tokens it yields must be exactly the demo model's: no phantom empty
event from `retry`, a heartbeat or anything else, on fresh and resumed streams alike.
"""

from __future__ import annotations

import json

import httpx
import pytest
from httpx_sse import ServerSentEvent, connect_sse

from generation import demo_model

PROMPT = "httpx-sse reads 流式 tokens"


def _events(server, method: str, path: str, *, last_id: str | None = None,
            body: dict | None = None) -> list[ServerSentEvent]:
    headers = {"Last-Event-ID": last_id} if last_id is not None else {}
    with httpx.Client(base_url=server.url, timeout=30) as client, \
            connect_sse(client, method, path, headers=headers, json=body) as source:
        assert source.response.status_code == 200
        return list(source.iter_sse())


def _get(server, tokens: int, delay_ms: int = 0, last_id: str | None = None):
    path = f"/sse/chat?prompt={PROMPT}&tokens={tokens}&delay_ms={delay_ms}"
    return _events(server, "GET", path, last_id=last_id)


def _post(server, tokens: int, delay_ms: int = 0, last_id: str | None = None):
    body = {"prompt": PROMPT, "tokens": tokens, "delay_ms": delay_ms}
    return _events(server, "POST", "/api/chat", last_id=last_id, body=body)


def _assert_exact(events: list[ServerSentEvent], tokens: int, after: int | None) -> None:
    first = 0 if after is None else after + 1
    expected = list(demo_model.generate(PROMPT, tokens))[first:]
    kinds = [event.event for event in events]
    assert kinds == [*(["start"] if after is None else []), *["message"] * len(expected), "end"]
    assert [event.data for event in events if event.event == "message"] == expected
    assert [event.id for event in events if event.event == "message"] == [
        str(index) for index in range(first, tokens)]
    assert events[0].retry == 3000  # the first event carries retry...
    assert all(event.retry is None for event in events[1:])  # ...and no other block does
    assert json.loads(events[-1].data) == {"finish_reason": "stop", "tokens": tokens}


@pytest.mark.parametrize("read", [_get, _post], ids=["GET /sse/chat", "POST /api/chat"])
def test_fresh_stream_yields_exactly_the_models_tokens(server, read):
    _assert_exact(read(server, 40), 40, None)


@pytest.mark.parametrize("read", [_get, _post], ids=["GET /sse/chat", "POST /api/chat"])
def test_resumed_stream_yields_exactly_the_rest(server, read):
    _assert_exact(read(server, 40, last_id="16"), 40, 16)


def test_heartbeats_between_tokens_yield_no_event(server):
    # The shared server sends a heartbeat after 1 s without an event: one before each token.
    _assert_exact(_get(server, 2, delay_ms=1300), 2, None)
