"""Clients for generation tests: start one, read its events, ask the mock for the answer."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import requests

from streaming.sse import ParsedEvent
from tests.support.clients import Stream


def start_generation(url: str, **body) -> dict:
    response = requests.post(f"{url}/api/generations", json=body, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()


def state(url: str, generation: str) -> dict:
    response = requests.get(f"{url}/api/generations/{generation}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def mock_answer(url: str, prompt: str, tokens: int) -> str:
    """The mock upstream's non-streamed answer to `prompt`, `tokens` long."""
    body = {"model": "demo", "messages": [{"role": "user", "content": prompt}],
            "max_tokens": tokens, "delay_ms": 0}
    whole = requests.post(f"{url}/mock/v1/chat/completions", json=body, timeout=10).json()
    return whole["choices"][0]["message"]["content"]


@dataclass
class Viewed:
    """What a viewer of an SSE generation stream read."""

    status: int
    events: list[ParsedEvent] = field(default_factory=list)

    @property
    def tokens(self) -> list[str]:
        return [event.data for event in self.events if event.type == "message"]

    @property
    def ids(self) -> list[str]:
        return [event.last_event_id for event in self.events if event.type == "message"]

    def of(self, kind: str) -> list[dict]:
        return [json.loads(event.data) for event in self.events if event.type == kind]


def view(url: str, path: str, *, last_id: str | None = None, stop_after: int | None = None,
         method: str = "GET", body: object = None, timeout: float = 30) -> Viewed:
    """Read an SSE stream to its end, or close it after `stop_after` tokens."""
    headers = {"Last-Event-ID": last_id} if last_id is not None else {}
    with Stream(url, path, method=method, headers=headers, body=body, timeout=timeout) as stream:
        viewed = Viewed(stream.status)
        if stream.status != 200:
            return viewed
        for _, event in stream.events():
            viewed.events.append(event)
            if stop_after is not None and len(viewed.tokens) == stop_after:
                break
        return viewed
