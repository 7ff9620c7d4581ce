"""The broker's figures in /metrics, against the real server: one worker with the memory
broker, two workers sharing Redis (every figure summed over them)."""

from __future__ import annotations

import pytest
import redis
import requests

from tests.support.channel_clients import (
    SlowReader,
    data,
    new_channel,
    publish,
    redis_clients,
    subscribe,
    take,
)
from tests.support.clients import metric, wait_until

QUEUE = 20


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(request, start_server):
    env = {"HEARTBEAT_SECONDS": "1", "SUBSCRIBER_QUEUE": str(QUEUE), "WEB_CONCURRENCY": "1"}
    if request.param == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
        env["WEB_CONCURRENCY"] = "2"
    server = start_server(env=env)
    server.backend = request.param
    return server


def figures(server) -> dict[str, float]:
    labels = {"backend": server.backend}
    return {name: metric(server.url, name, **labels) for name in (
        "broker_published_total", "broker_delivered_total", "broker_overflows_total",
        "broker_subscribers", "broker_publish_seconds_count")}


def changed(server, before: dict[str, float], **expected: float) -> bool:
    now = figures(server)
    return all(now[name] - before[name] == value for name, value in expected.items())


def test_publishes_deliveries_and_subscribers_are_counted(server):
    channel = new_channel()
    before = figures(server)
    path = f"/sse/channels/{channel}"
    streams = [subscribe(server.url, path) for _ in range(4)]
    try:
        wait_until(lambda: changed(server, before, broker_subscribers=4), timeout=10)
        singles = [publish(server.url, channel, n) for n in range(3)]
        response = requests.post(f"{server.url}/api/channels/{channel}", timeout=10,
                                 json={"events": [{"data": n} for n in range(3, 8)]})
        assert response.status_code == 202
        for stream in streams:
            assert data(take(stream.events(), 8)) == list(range(8))
        assert len(singles) == 3
        # 8 events in 4 calls, each handed to 4 subscribers; written within a second.
        wait_until(lambda: changed(server, before, broker_published_total=8,
                                   broker_publish_seconds_count=4,
                                   broker_delivered_total=32), timeout=10)
    finally:
        for stream in streams:
            stream.close()
    wait_until(lambda: changed(server, before, broker_subscribers=0), timeout=10)


def test_a_subscriber_dropped_for_falling_behind_is_an_overflow(server):
    channel = new_channel()
    before = figures(server)
    slow = SlowReader(server.url, f"/sse/channels/{channel}")
    try:
        wait_until(lambda: changed(server, before, broker_subscribers=1), timeout=10)
        for _ in range(150):  # 9 MB: more than the socket buffers and the queue hold
            publish(server.url, channel, "x" * 60_000)
        assert slow.read_events()[-1].type == "overflow"
    finally:
        slow.sock.close()
    wait_until(lambda: changed(server, before, broker_overflows_total=1), timeout=10)


def test_the_redis_reader_reports_its_lag_and_its_reconnects(server, redis_url):
    if server.backend != "redis":  # no reader: neither figure is shown
        text = requests.get(server.url + "/metrics", timeout=5).text
        assert "broker_reader_lag_seconds" not in text
        assert "broker_reconnects_total" not in text
        return
    channel = new_channel()
    with subscribe(server.url, f"/sse/channels/{channel}") as stream:
        publish(server.url, channel, 1)
        assert data(take(stream.events(), 1)) == [1]
        text = requests.get(server.url + "/metrics", timeout=5).text
        assert "broker_reader_lag_seconds " in text  # one value: the largest of the workers
        before = metric(server.url, "broker_reconnects_total")
        # Cut every reader this server's workers hold: each reconnects once it is wanted.
        admin = redis.Redis.from_url(redis_url)
        try:
            killed = 0
            for pid in server.worker_pids():
                for client in redis_clients(redis_url, pid):
                    if client["name"].endswith(":reader"):
                        killed += admin.client_kill_filter(_id=client["id"])
        finally:
            admin.close()
        assert killed >= 1
        assert take(stream.events(), 1)[0].type == "error"
    # The stream's worker read from its reader, so it noticed; a worker with nobody to read
    # for notices only when it reads again.
    wait_until(lambda: 1 <= metric(server.url, "broker_reconnects_total") - before <= killed,
               timeout=10)
