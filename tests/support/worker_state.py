"""What a fault may not leave behind: open streams, file descriptors, memory (from /proc).

`WorkerState.of(server)` reads a one-worker server's `streams_active` (all transports), its
worker's open descriptors and RSS; `assert_recovered` waits until they are back near a
baseline and then checks that the next client is served normally.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from generation import demo_model
from services import TRANSPORTS
from testbed.live_server import LiveServer
from tests.support.clients import Stream, metric, wait_until

FD_SLACK = 3  # a metrics request's own connection, a pooled upstream connection
RSS_SLACK_KB = 8 * 1024  # the allocator keeps freed arenas; a leak of a stream each grows past it


@dataclass(frozen=True)
class WorkerState:
    streams: float
    fds: int
    rss_kb: int

    @classmethod
    def of(cls, server: LiveServer) -> WorkerState:
        [pid] = server.worker_pids()
        fds = len(os.listdir(f"/proc/{pid}/fd"))  # before the metrics request adds its own
        status = Path(f"/proc/{pid}/status").read_text()
        rss_kb = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))
        streams = sum(metric(server.url, "streams_active", transport=t) for t in TRANSPORTS)
        return cls(streams, fds, rss_kb)

    @classmethod
    def settled(cls, server: LiveServer, timeout: float = 30) -> WorkerState:
        """The state once the worker holds no stream: a client that just closed one is noticed
        by the server a moment later, and a baseline taken before that counts it."""
        wait_until(lambda: cls.of(server).streams == 0, timeout, interval=0.2)
        return cls.of(server)


def assert_served_normally(server: LiveServer) -> None:
    """A short stream, start to end, every token right."""
    with Stream(server.url, "/sse/chat?prompt=next&tokens=20&delay_ms=0", timeout=10) as stream:
        assert stream.status == 200
        tokens = [event.data for _, event in stream.events() if event.type == "message"]
    assert tokens == list(demo_model.generate("next", 20))


def assert_recovered(server: LiveServer, baseline: WorkerState, timeout: float = 15) -> WorkerState:
    """Wait until no stream, descriptor or memory is left over; then serve a client."""
    latest = [baseline]

    def recovered() -> bool:
        latest[0] = now = WorkerState.of(server)
        return now.streams == baseline.streams and now.fds <= baseline.fds + FD_SLACK

    try:
        wait_until(recovered, timeout, interval=0.2)
    except AssertionError:
        raise AssertionError(f"not back to {baseline}: {latest[0]}") from None
    state = latest[0]
    assert state.rss_kb <= baseline.rss_kb + RSS_SLACK_KB, (baseline, state)
    assert_served_normally(server)
    return state
