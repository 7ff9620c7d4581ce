"""The start-up log names the URL the server is at and the broker it uses."""

from __future__ import annotations

import pytest

from testbed.live_server import LiveServer, free_port
from tests.support.clients import wait_until


@pytest.mark.parametrize("reuse_port", ["1", "0"])
def test_the_log_names_the_url_and_the_memory_broker(start_server, reuse_port):
    server = start_server(env={"REUSE_PORT": reuse_port})
    assert f"Serving {server.url} with the memory broker" in server.log()


def test_the_log_names_redis_by_host_and_port_without_its_password():
    port = free_port()  # nothing listens there: only the master's line is awaited
    server = LiveServer(env={"REDIS_URL": f"redis://:hunter2@127.0.0.1:{port}/0"})
    try:
        wait_until(lambda: "Serving" in server.log(), timeout=20)
        log = server.log()
        assert f"Serving {server.url} with the Redis (127.0.0.1:{port}) broker" in log
        assert "hunter2" not in log
    finally:
        server.stop()
