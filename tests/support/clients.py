"""Small real clients for integration tests: a raw HTTP stream reader and a metrics reader."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import requests
from prometheus_client.parser import text_string_to_metric_families

from streaming.sse import ParsedEvent, SSEParser


class Stream:
    """One streaming HTTP request over its own connection, read as the bytes arrive."""

    def __init__(self, url: str, path: str, *, method: str = "GET",
                 headers: dict[str, str] | None = None, body: object = None,
                 timeout: float = 30) -> None:
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        payload = None if body is None else json.dumps(body).encode()
        all_headers = dict(headers or {})
        if payload is not None:
            all_headers.setdefault("Content-Type", "application/json")
        self.sent_at = time.monotonic()
        self.connection.request(method, path, body=payload, headers=all_headers)
        self.response = self.connection.getresponse()
        self.headers_at = time.monotonic()

    @property
    def status(self) -> int:
        return self.response.status

    def chunks(self) -> Iterator[tuple[float, bytes]]:
        """(arrival time, bytes) as the server's writes arrive, until the body ends."""
        while chunk := self.response.read1(65536):
            yield time.monotonic(), chunk

    def events(self) -> Iterator[tuple[float, ParsedEvent]]:
        parser = SSEParser()
        for at, chunk in self.chunks():
            for event in parser.feed(chunk):
                yield at, event

    def read_all(self) -> bytes:
        return b"".join(chunk for _, chunk in self.chunks())

    def close(self) -> None:
        """Close the client socket, as a browser tab closing does."""
        self.connection.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def metric(url: str, name: str, **labels: str) -> float:
    """The value of sample `name{labels}` in the server's /metrics (0 if absent)."""
    text = requests.get(url + "/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> float:
    """Poll until `predicate()` holds; return the seconds it took, or raise AssertionError."""
    began = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def descriptors_on(pid: int, path: str | os.PathLike) -> int:
    """How many descriptors process `pid` holds open on the file at `path`."""
    target = os.path.realpath(path)
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # closed since the directory was listed
            count += os.readlink(f"/proc/{pid}/fd/{fd}") == target
    return count
