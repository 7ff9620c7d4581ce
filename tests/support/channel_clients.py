"""Clients for channel and task tests: publish over HTTP, subscribe, read events as they come."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator

import redis
import requests

from streaming.sse import ParsedEvent, SSEParser
from tests.support.clients import Stream


def new_channel() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def publish(url: str, channel: str, data: object, event: str = "news") -> str:
    response = requests.post(f"{url}/api/channels/{channel}", json={"event": event, "data": data},
                             timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def subscribe(url: str, path: str, last_id: str | None = None, timeout: float = 15) -> Stream:
    """An open subscription: once this returns, nothing published is missed."""
    headers = {"Last-Event-ID": last_id} if last_id else {}
    stream = Stream(url, path, headers=headers, timeout=timeout)
    assert stream.status == 200, stream.read_all()
    return stream


def take(events: Iterator[tuple[float, ParsedEvent]], count: int) -> list[ParsedEvent]:
    """The next `count` events (comments and heartbeats are no events)."""
    return [next(events)[1] for _ in range(count)]


def data(events: list[ParsedEvent]) -> list:
    return [json.loads(event.data) for event in events]


class SlowReader:
    """A subscriber that reads nothing until told to, with a tiny receive buffer, so the
    server's writes to it soon block and its queue fills. HTTP/1.0: the body is not chunked
    and ends when the server closes."""

    def __init__(self, url: str, path: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((host, int(port)))
        self.sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())

    def read_events(self, timeout: float = 30) -> list[ParsedEvent]:
        """Everything until the server closes the connection, as events."""
        self.sock.settimeout(timeout)
        received = bytearray()
        while chunk := self.sock.recv(65536):
            received += chunk
        self.sock.close()
        _headers, _, body = bytes(received).partition(b"\r\n\r\n")
        parser = SSEParser()
        return parser.feed(body) + parser.close()


def redis_clients(redis_url: str, pid: int) -> list[dict]:
    """The connections a server worker holds to Redis (the broker names them by pid)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return [c for c in client.client_list() if c["name"].startswith(f"sse:{pid}:")]
    finally:
        client.close()
