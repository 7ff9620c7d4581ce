"""The start-up log names the URL the server is at, the broker it uses and what answers chat."""

from __future__ import annotations

import pytest

from testbed.live_server import LiveServer, free_port
from tests.support.clients import wait_until


@pytest.mark.parametrize("reuse_port", ["1", "0"])
def test_the_log_names_the_url_and_the_memory_broker(start_server, reuse_port):
    server = start_server(env={"REUSE_PORT": reuse_port})
    assert f"Serving {server.url} with the memory broker" in server.log()
    assert "Chat answered by the demo model" in server.log()


def test_the_log_names_the_upstream_model_and_address_without_credentials(start_server):
    server = start_server(env={"CHAT_BACKEND": "upstream", "CHAT_MODEL": "gpt-test",
                               "UPSTREAM_BASE_URL": "https://user:pw@api.example:8443/v1",
                               "UPSTREAM_API_KEY": "sk-secret-key", "PROXY_API_KEYS": "k"})
    log = server.log()
    assert "Chat answered by 'gpt-test' at https://api.example:8443/v1" in log
    assert "sk-secret-key" not in log and "pw@" not in log


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


def test_auth_off_on_an_address_other_machines_reach_is_warned_about():
    # A documentation address (RFC 5737) no interface holds: the master warns at start, before
    # it binds, and then fails to bind; no packet leaves the machine.
    server = LiveServer(env={"HOST": "198.51.100.7"})
    try:
        wait_until(lambda: "auth is off" in server.log(), timeout=20)
        assert "[WARNING]" in next(line for line in server.log().splitlines()
                                   if "auth is off" in line)
    finally:
        server.stop()


def test_no_auth_warning_on_loopback_or_with_auth_on(start_server):
    assert "auth is off" not in start_server().log()
    assert "auth is off" not in start_server(env={"HOST": "127.0.0.1",
                                                  "AUTH_SECRET": "k" * 32}).log()
