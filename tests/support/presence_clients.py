"""Clients for presence tests: open subscriptions to a channel, read its presence, and poll it
until a condition holds or a deadline passes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import requests

from tests.support.clients import Stream


def presence(url: str, channel: str, headers: dict[str, str] | None = None) -> dict:
    """`GET /api/channels/<channel>/presence`'s answer (it must be a 200)."""
    response = requests.get(f"{url}/api/channels/{channel}/presence", headers=headers,
                            timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def open_subscriptions(url: str, channel: str, count: int, *, query: str = "",
                       headers: dict[str, str] | None = None) -> list[Stream]:
    """`count` subscriptions to `channel`, each with its response's headers received."""
    streams = []
    for _ in range(count):
        stream = Stream(url, f"/sse/channels/{channel}{query}", headers=headers, timeout=15)
        streams.append(stream)
        assert stream.status == 200, stream.read_all()
    return streams


def close_all(streams: Iterable[Stream]) -> None:
    for stream in streams:
        stream.close()


def wait_for_presence(url: str, channel: str, condition: Callable[[dict], bool], *,
                      timeout: float, headers: dict[str, str] | None = None,
                      interval: float = 0.05) -> tuple[dict, float]:
    """Poll the channel's presence until `condition(answer)` holds: (that answer, the seconds
    it took). AssertionError with the last answer when `timeout` seconds pass first."""
    began = time.monotonic()
    while True:
        answer = presence(url, channel, headers)
        if condition(answer):
            return answer, time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise AssertionError(f"presence of {channel} at {url} was still {answer} "
                                 f"after {timeout} s")
        time.sleep(interval)


def subscribers(count: int) -> Callable[[dict], bool]:
    """The condition: exactly `count` subscribers."""
    return lambda answer: answer["subscribers"] == count
