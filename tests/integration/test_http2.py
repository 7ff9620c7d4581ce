"""SSE over HTTP/2: many streams on one connection, tested rather than read about.

gunicorn 27.0.1 speaks HTTP/2 (`--http-protocols h2,h1`, TLS with ALPN), but its gevent worker
serves the streams of one connection one after another: `AsyncWorker.handle_http2` reads the
requests off the connection and, in the one greenlet that owns it, calls `_serve_http2_stream`
for each in turn (the `for req in requests` loop in gunicorn/workers/base_async.py), which runs
the response to its end before the next request starts. gunicorn's HTTP/2 guide says so too
("Streams on an HTTP/2 connection are handled one after another, not concurrently"). Each event
still leaves as its own DATA frame the moment it is written: nothing is buffered, the streams
just wait their turn. So gunicorn stays on HTTP/1.1 and nginx is the HTTP/2 front
(deploy/nginx.conf, README "Deploying").

The first test pins that finding, so an upgrade of gunicorn that changes it fails here and the
decision gets revisited; the second proves, through nginx, that 20 SSE streams share one HTTP/2
connection, each receiving its events as they are produced.

Times are read as httpx delivers them, and httpx can only make an arrival later, never earlier:
its HTTP/2 connection has one read lock, and a task waiting for its own stream holds it while it
blocks on the socket, so an event already read for another stream waits its turn (httpcore's
`AsyncHTTP2Connection._receive_events`). That is the "first token only at the end" a first try
saw. Serving one at a time is therefore asserted with lower bounds on arrival times, which no
client delay can fake.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from streaming.sse import ParsedEvent, SSEParser
from testbed.tls import Certificate
from tests.support.clients import wait_until

TOKENS, DELAY_MS = 20, 50
STREAM_SECONDS = TOKENS * DELAY_MS / 1000  # the last token is due this long after the start


def chat_path(tokens: int = TOKENS, delay_ms: int = DELAY_MS) -> str:
    return f"/sse/chat?prompt=x&tokens={tokens}&delay_ms={delay_ms}"


@dataclass
class Received:
    """One response as the client saw it: seconds since the streams began, and the bytes."""

    http_version: str
    headers_at: float
    chunks: list[tuple[float, bytes]] = field(default_factory=list)

    def events(self) -> list[tuple[float, ParsedEvent]]:
        parser = SSEParser()
        return [(at, event) for at, chunk in self.chunks for event in parser.feed(chunk)]

    def token_times(self) -> list[float]:
        return [at for at, event in self.events() if event.type == "message"]

    def is_complete(self, tokens: int) -> bool:
        events = [event for _, event in self.events()]
        ids = [event.last_event_id for event in events if event.type == "message"]
        return ids == [str(i) for i in range(tokens)] and events[-1].type == "end"


async def _read(client: httpx.AsyncClient, url: str, began: float) -> Received:
    async with client.stream("GET", url) as response:
        assert response.status_code == 200
        received = Received(response.http_version, time.monotonic() - began)
        async for chunk in response.aiter_raw():
            received.chunks.append((time.monotonic() - began, chunk))
    return received


async def _together(url: str, count: int, certificate: Certificate,
                    probe: Callable[[], Any], probe_after: float) -> tuple[list[Received], Any]:
    async with httpx.AsyncClient(http2=True, verify=certificate.client_context(),
                                 timeout=60) as client:
        began = time.monotonic()
        streams = asyncio.gather(*(_read(client, url, began) for _ in range(count)))
        await asyncio.sleep(probe_after)
        probed = probe()  # what the server side looks like while the streams are open
        return await streams, probed


def open_together(url: str, count: int, certificate: Certificate,
                  probe: Callable[[], Any] = lambda: None,
                  probe_after: float = 0.3) -> tuple[list[Received], Any]:
    """Open `count` streams of `url` at once over one HTTP/2 connection; read each to its end."""
    return asyncio.run(_together(url, count, certificate, probe, probe_after))


def test_gunicorn_h2_serves_the_streams_of_a_connection_one_at_a_time(start_server,
                                                                      tls_certificate):
    server = start_server(tls=tls_certificate, args=("--http-protocols", "h2,h1"))
    tokens, count = 10, 6
    seconds = tokens * DELAY_MS / 1000
    streams, connections = open_together(server.url + chat_path(tokens), count,
                                         tls_certificate, probe=server.connections_by_worker)

    assert sum(connections.values()) == 1, connections
    for stream in streams:
        assert stream.http_version == "HTTP/2"
        assert stream.is_complete(tokens)
        # Not buffered: every event left in its own DATA frame as it was written.
        assert len(stream.chunks) >= tokens
    # One at a time: stream k could not start before the k streams ahead of it had run their
    # full length (lower bounds, so no client delay can produce this).
    starts = sorted(stream.headers_at for stream in streams)
    for k, started in enumerate(starts):
        assert started >= k * seconds, starts


def test_twenty_sse_streams_share_one_http2_connection_through_nginx(nginx):
    marker = uuid.uuid4().hex
    streams, _ = open_together(nginx.url + chat_path() + f"&{marker}", 20, nginx.certificate)

    for stream in streams:
        assert stream.http_version == "HTTP/2"
        assert stream.is_complete(TOKENS)
        tokens = stream.token_times()
        # Incremental: the first token long before the last (a buffered body arrives at once).
        assert tokens[-1] - tokens[0] >= STREAM_SECONDS / 2
    # At once: every stream had its first token before any stream ended.
    assert max(s.token_times()[0] for s in streams) < min(s.chunks[-1][0] for s in streams)
    # One connection at the server the client talks to: nginx numbers its connections.
    def lines() -> list[str]:
        return [line for line in nginx.access_log() if marker in line]

    wait_until(lambda: len(lines()) == 20, timeout=5)  # each is written as its stream ends
    assert all('HTTP/2.0" 200' in line for line in lines())
    assert len({re.search(r"conn=(\d+)", line).group(1) for line in lines()}) == 1
