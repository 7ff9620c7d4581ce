"""A channel's presence against real servers: one with the memory broker, two instances sharing
Redis, a worker killed with SIGKILL, Redis gone; and `?presence=1` streams, whose join/leave
events carry no id (subjects come with auth; here every subscription has none, so these tests
are about counts, and the join/leave logic is tested with subjects in tests/unit/broker)."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import requests

from tests.support.channel_clients import new_channel, publish, subscribe, take
from tests.support.clients import wait_until
from tests.support.presence_clients import (
    close_all,
    open_subscriptions,
    presence,
    subscribers,
    wait_for_presence,
)

HEARTBEAT = 2.0


@pytest.fixture(scope="module")
def pair(start_server, redis_url):
    env = {"REDIS_URL": redis_url, "HEARTBEAT_SECONDS": str(HEARTBEAT)}
    return start_server(env=env), start_server(env=env)


def test_subscriptions_count_while_open_and_leave_when_they_close(server):
    channel = new_channel()
    assert presence(server.url, channel) == {"subscribers": 0, "subjects": []}
    streams = open_subscriptions(server.url, channel, 3)
    answer, _ = wait_for_presence(server.url, channel, subscribers(3), timeout=5)
    assert answer == {"subscribers": 3, "subjects": []}  # no subject without auth
    streams[0].close()  # the client goes away: the worker notices at once
    wait_for_presence(server.url, channel, subscribers(2), timeout=5)
    close_all(streams[1:])
    wait_for_presence(server.url, channel, subscribers(0), timeout=5)


@pytest.mark.parametrize(("path", "param", "message"), [
    ("/api/channels/bad%20name/presence", "channel", "channel must be 1 to 128 characters"),
    ("/sse/channels/news?presence=yes", "presence",
     "presence must be 1, 0, true or false, got 'yes'"),
])
def test_bad_input_is_a_json_400_naming_the_parameter(server, path, param, message):
    response = requests.get(server.url + path, timeout=10)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request", param)
    assert error["message"].startswith(message)


def test_presence_events_carry_no_id_and_leave_resuming_alone(server):
    channel = new_channel()
    path = f"/sse/channels/{channel}?presence=1"
    with subscribe(server.url, path) as stream:
        events = stream.events()
        first = publish(server.url, channel, 1)
        # A subscription without a subject comes and goes: no join, no leave.
        close_all(open_subscriptions(server.url, channel, 1))
        wait_for_presence(server.url, channel, subscribers(1), timeout=5)
        second = publish(server.url, channel, 2)
        got = take(events, 2)
    assert [(e.type, e.last_event_id) for e in got] == [("news", first), ("news", second)]
    with subscribe(server.url, path, last_id=first) as stream:
        (resumed,) = take(stream.events(), 1)
    assert (resumed.last_event_id, json.loads(resumed.data)) == (second, 2)


def test_both_instances_count_every_instance_s_subscriptions(pair):
    first, second = pair
    channel = new_channel()
    here = open_subscriptions(first.url, channel, 20)
    there = open_subscriptions(second.url, channel, 3, query="?presence=1")
    for instance in pair:
        wait_for_presence(instance.url, channel, subscribers(23), timeout=10)
    close_all(here)
    for instance in pair:
        wait_for_presence(instance.url, channel, subscribers(3), timeout=10)
    close_all(there)
    for instance in pair:
        wait_for_presence(instance.url, channel, subscribers(0), timeout=10)


def test_a_killed_worker_s_subscriptions_leave_within_two_heartbeats(pair):
    first, second = pair
    channel = new_channel()
    doomed = open_subscriptions(first.url, channel, 4)
    kept = open_subscriptions(second.url, channel, 1)
    wait_for_presence(second.url, channel, subscribers(5), timeout=10)
    (worker,) = first.worker_pids()
    os.kill(worker, signal.SIGKILL)
    killed_at = time.monotonic()
    answer, _ = wait_for_presence(second.url, channel, subscribers(1), timeout=4 * HEARTBEAT)
    assert time.monotonic() - killed_at < 2 * HEARTBEAT, answer
    close_all([*doomed, *kept])
    wait_until(lambda: len(first.worker_pids()) == 1, timeout=20)  # gunicorn replaced it


def test_without_redis_presence_is_a_503_and_comes_back_with_it(start_server, private_redis):
    server = start_server(env={"REDIS_URL": private_redis.url, "HEARTBEAT_SECONDS": "1"})
    channel = new_channel()
    with subscribe(server.url, f"/sse/channels/{channel}"):
        wait_for_presence(server.url, channel, subscribers(1), timeout=5)
        private_redis.stop()
        down = requests.get(f"{server.url}/api/channels/{channel}/presence", timeout=30)
        assert down.status_code == 503
        assert down.json()["error"]["type"] == "broker_unavailable"
        private_redis.start()
    # The subscription ended with Redis (event: error); a new one counts once Redis is back.
    with subscribe(server.url, f"/sse/channels/{channel}"):
        wait_for_presence(server.url, channel, subscribers(1), timeout=10)
    assert "Traceback" not in server.log()
    server.stop()


def test_a_worker_that_stops_on_purpose_leaves_presence_at_once(start_server, redis_url):
    # Heartbeats far apart: only leaving on purpose, not expiry, can empty it in time.
    server = start_server(env={"REDIS_URL": redis_url, "HEARTBEAT_SECONDS": "60"})
    channel = new_channel()
    streams = open_subscriptions(server.url, channel, 3)
    try:
        wait_for_presence(server.url, channel, subscribers(3), timeout=10)
        (worker,) = server.worker_pids()
        os.kill(worker, signal.SIGTERM)
        wait_until(lambda: server.worker_pids() not in ([], [worker]), timeout=20)
        # Its replacement binds its own socket once forked (REUSE_PORT=1, docs/deploying.md):
        # until then, nothing listens.
        server.wait_ready()
        wait_for_presence(server.url, channel, subscribers(0), timeout=5)
    finally:
        close_all(streams)
