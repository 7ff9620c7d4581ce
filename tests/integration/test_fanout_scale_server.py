"""Fan-out at ten thousand subscribers of one channel in one worker: every subscriber gets the
event, and the delivery, handed over 1,000 mailboxes a loop turn (broker/fanout.py), never holds
the loop past the blocking monitor's 20 ms (`loop_never_blocked`). Before slicing, one publish
to 10,000 subscribers held it about 260 ms.

The subscribers are raw non-blocking sockets read with one epoll in this process, opened in
batches so that the accept queue never overflows; each counts as subscribed once its response
headers came (the view pins its place before they go out, so nothing published after is lost).
"""

from __future__ import annotations

import resource
import selectors
import socket
import time

import pytest

from tests.support.channel_clients import new_channel, publish

SUBSCRIBERS = 10_000
BATCH = 500
DEADLINE = 120.0  # seconds for each phase, a bound, not a measure


@pytest.fixture(scope="module")
def server(start_server):
    # This process holds one descriptor per subscriber, the worker one more each.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < SUBSCRIBERS + 1000:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= SUBSCRIBERS + 1000, \
        "raise the open files limit (ulimit -n) to run this test"
    return start_server(env={"WEB_CONCURRENCY": "1",
                             "WORKER_CONNECTIONS": str(SUBSCRIBERS + 1000),
                             "HEARTBEAT_SECONDS": "60"})


class Subscribers:
    """Many SSE subscriptions on raw sockets, read with one selector."""

    def __init__(self, port: int, path: str) -> None:
        self._address = ("127.0.0.1", port)
        self._request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        self._selector = selectors.DefaultSelector()
        self.received: dict[socket.socket, bytearray] = {}

    def open(self, count: int) -> None:
        """`count` more subscriptions, each with its response headers received."""
        batch = []
        for _ in range(count):
            sock = socket.create_connection(self._address, timeout=DEADLINE)
            sock.sendall(self._request)
            sock.setblocking(False)
            self._selector.register(sock, selectors.EVENT_READ)
            self.received[sock] = bytearray()
            batch.append(sock)
        self.wait_for(lambda data: b"\r\n\r\n" in data, batch)
        for sock in batch:
            assert self.received[sock].startswith(b"HTTP/1.1 200"), bytes(self.received[sock])

    def wait_for(self, done, socks=None) -> None:
        """Read until `done(bytes received)` holds for every socket of `socks` (all)."""
        waiting = set(self.received if socks is None else socks)
        waiting = {s for s in waiting if not done(self.received[s])}
        deadline = time.monotonic() + DEADLINE
        while waiting:
            assert time.monotonic() < deadline, f"{len(waiting)} subscribers still waiting"
            for key, _ in self._selector.select(timeout=1):
                sock = key.fileobj
                data = sock.recv(65536)
                assert data, "the server closed a subscription"
                self.received[sock] += data
                if sock in waiting and done(self.received[sock]):
                    waiting.discard(sock)

    def close(self) -> None:
        for sock in self.received:
            self._selector.unregister(sock)
            sock.close()
        self._selector.close()


def test_ten_thousand_subscribers_of_one_channel_each_get_the_event(server):
    channel = new_channel()
    subscribers = Subscribers(server.port, f"/sse/channels/{channel}")
    try:
        for _ in range(SUBSCRIBERS // BATCH):
            subscribers.open(BATCH)
        for n in range(3):
            event_id = publish(server.url, channel, {"n": n}).encode()
            subscribers.wait_for(lambda data, needle=b"id: " + event_id: needle in data)
        assert len(subscribers.received) == SUBSCRIBERS
    finally:
        subscribers.close()
