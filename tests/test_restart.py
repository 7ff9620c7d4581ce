"""Restarts lose nothing: a client that reconnects the way EventSource does resumes exactly."""

from __future__ import annotations

import http.client
import os
import signal
import time

from generation import demo_model
from tests.clients import Stream


def read_with_reconnects(url: str, path: str, restart) -> tuple[list[str], int]:
    """Read a stream to its end like EventSource: on a cut, reconnect with Last-Event-ID."""
    tokens: list[str] = []
    last_id, connections = None, 0
    while True:
        headers = {"Last-Event-ID": last_id} if last_id is not None else {}
        connections += 1
        try:
            with Stream(url, path, headers=headers, timeout=10) as stream:
                for _, event in stream.events():
                    if event.type == "message":
                        tokens.append(event.data)
                        last_id = event.last_event_id
                        if len(tokens) == 5 and connections == 1:
                            restart()
                    elif event.type == "end":
                        return tokens, connections
        except (http.client.HTTPException, ConnectionError):
            pass
        time.sleep(0.1)  # the stream's retry is 3 s; a test need not wait that long
        assert connections < 10, "the stream never completed"


def test_a_reload_mid_stream_loses_and_repeats_nothing(start_server):
    server = start_server(env={"GRACEFUL_TIMEOUT": "1"})
    old_workers = server.worker_pids()
    path = "/sse/chat?prompt=restart&tokens=60&delay_ms=50"

    def reload_workers() -> None:
        os.kill(server.process.pid, signal.SIGHUP)  # gunicorn: new workers, old ones drained

    tokens, connections = read_with_reconnects(server.url, path, reload_workers)
    assert connections >= 2, "the reload did not cut the stream"
    assert tokens == list(demo_model.generate("restart", 60))
    assert set(server.worker_pids()).isdisjoint(old_workers)
