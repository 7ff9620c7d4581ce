"""The Redis broker across real servers: instances and workers sharing it, publishers in other
processes, bounded connections, idle readers, and Redis going away mid-stream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
import requests

from broker.redis_streams import COMMAND_CONNECTIONS
from testbed.live_server import ROOT
from tests.support.channel_clients import data, new_channel, publish, redis_clients, subscribe, take
from tests.support.clients import wait_until
from tests.support.worker_state import WorkerState, assert_recovered


@pytest.fixture(scope="module")
def pair(start_server, redis_url):
    """Two instances sharing one Redis, as two machines behind a load balancer would."""
    env = {"REDIS_URL": redis_url, "HEARTBEAT_SECONDS": "1"}
    return start_server(env=env), start_server(env=env)


def test_an_event_published_on_one_instance_reaches_the_other(pair):
    first, second = pair
    channel = new_channel()
    with subscribe(second.url, f"/sse/channels/{channel}") as stream:
        event_id = publish(first.url, channel, {"via": "first"})
        (event,) = take(stream.events(), 1)
    assert (event.last_event_id, json.loads(event.data)) == (event_id, {"via": "first"})


def test_a_subscriber_moving_between_instances_gets_every_event_exactly_once(pair):
    first, second = pair
    channel = new_channel()
    published: list[str] = []
    stop = threading.Event()

    def publisher() -> None:  # all along, alternating instances
        n = 0
        while not stop.is_set() and n < 400:
            published.append(publish(pair[n % 2].url, channel, n))
            n += 1
            time.sleep(0.005)

    received: list[str] = []
    with subscribe(first.url, f"/sse/channels/{channel}") as stream:
        thread = threading.Thread(target=publisher)
        thread.start()
        received += [e.last_event_id for e in take(stream.events(), 30)]
    time.sleep(0.2)  # events keep coming while it is away
    with subscribe(second.url, f"/sse/channels/{channel}", received[-1]) as stream:
        events = stream.events()
        received += [e.last_event_id for e in take(events, 30)]
        stop.set()
        thread.join()
        received += [e.last_event_id for e in take(events, len(published) - len(received))]
    assert received == published


def test_workers_of_one_instance_share_channels(start_server, redis_url):
    server = start_server(env={"REDIS_URL": redis_url, "WEB_CONCURRENCY": "4"})
    channel = new_channel()
    streams = []
    try:
        # A busy worker keeps accepting: open streams until several workers hold some.
        while len(streams) < 8 or sum(map(bool, server.connections_by_worker().values())) < 3:
            assert len(streams) < 100, server.connections_by_worker()
            streams.append(subscribe(server.url, f"/sse/channels/{channel}"))
        ids = [publish(server.url, channel, i) for i in range(20)]  # through any worker
        for stream in streams:
            assert [e.last_event_id for e in take(stream.events(), 20)] == ids
    finally:
        for stream in streams:
            stream.close()
        server.stop()  # four workers: not kept for the rest of the session


def test_connections_to_redis_do_not_grow_with_subscribers(start_server, redis_url):
    server = start_server(env={"REDIS_URL": redis_url})
    (pid,) = server.worker_pids()
    streams = []
    try:
        for count in (10, 150):
            while len(streams) < count:
                # Many channels and a few shared: each new channel joins the one XREAD.
                streams.append(subscribe(server.url, f"/sse/channels/{new_channel()}"
                                         if len(streams) % 3 else "/sse/channels/shared"))
            held = redis_clients(redis_url, pid)
            readers = [c for c in held if c["name"].endswith(":reader")]
            assert len(readers) == 1
            assert len(held) <= COMMAND_CONNECTIONS + 1, [c["name"] for c in held]
        event_id = publish(server.url, "shared", "to all")
        for stream in streams[::3]:
            assert take(stream.events(), 1)[0].last_event_id == event_id
    finally:
        for stream in streams:
            stream.close()


def test_a_new_channel_joins_the_blocked_read_at_once(start_server, redis_url):
    server = start_server(env={"REDIS_URL": redis_url})
    first, second = new_channel(), new_channel()
    with subscribe(server.url, f"/sse/channels/{first}"):
        time.sleep(0.5)  # the reader is blocked in an XREAD on `first` alone
        with subscribe(server.url, f"/sse/channels/{second}") as stream:
            wait_until(lambda: requests.get(server.url + "/healthz", timeout=5)
                       .json()["broker"]["subscribers"] == 2, timeout=10)
            time.sleep(0.5)  # without CLIENT UNBLOCK, still in that XREAD
            sent_at = time.monotonic()
            publish(server.url, second, "first event")
            take(stream.events(), 1)
    # Not the rest of the 5 s that XREAD would have waited: CLIENT UNBLOCK restarted it.
    assert time.monotonic() - sent_at < 2.5
    server.stop()


def test_a_subscriber_idle_past_redis_socket_timeouts_keeps_working(pair):
    # redis-py's default socket_timeout is 5 s, and the reader blocks 5 s per XREAD.
    first, second = pair
    channel = new_channel()
    with subscribe(first.url, f"/sse/channels/{channel}") as stream:
        time.sleep(7)
        event_id = publish(second.url, channel, "after a long silence")
        assert take(stream.events(), 1)[0].last_event_id == event_id
    assert "Timeout" not in first.log()


def test_a_separate_python_process_publishes_with_the_same_function(pair, redis_url):
    first, _ = pair
    channel = new_channel()
    script = ("import sys; from channels import publish; "
              "print(publish(sys.argv[1], 'job', {'from': 'a job'}))")
    with subscribe(first.url, f"/sse/channels/{channel}") as stream:
        done = subprocess.run([sys.executable, "-c", script, channel], cwd=ROOT, text=True,
                              capture_output=True, timeout=30, check=True,
                              env={**os.environ, "REDIS_URL": redis_url})
        (event,) = take(stream.events(), 1)
    assert event.last_event_id == done.stdout.strip()
    assert (event.type, json.loads(event.data)) == ("job", {"from": "a job"})


def test_the_flask_publish_command_reaches_subscribers(pair, redis_url):
    first, _ = pair
    channel = new_channel()
    with subscribe(first.url, f"/sse/channels/{channel}") as stream:
        done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "publish",
                               channel, "cli", '{"n": 1}'], cwd=ROOT, text=True,
                              capture_output=True, timeout=30,
                              env={**os.environ, "REDIS_URL": redis_url})
        assert done.returncode == 0, done.stderr
        (event,) = take(stream.events(), 1)
    assert (event.last_event_id, event.type, data([event])) == (done.stdout.strip(), "cli",
                                                                [{"n": 1}])


def test_redis_stopped_and_restarted_mid_stream(start_server, private_redis):
    server = start_server(env={"REDIS_URL": private_redis.url, "HEARTBEAT_SECONDS": "1"})
    channel = new_channel()
    path = f"/sse/channels/{channel}"
    with subscribe(server.url, path) as stream:  # warm up: the worker's Redis connections open
        publish(server.url, channel, "warm-up")
        take(stream.events(), 1)
    baseline = WorkerState.settled(server)
    with subscribe(server.url, path) as stream:
        events = stream.events()
        ids = [publish(server.url, channel, i) for i in range(3)]
        assert [e.last_event_id for e in take(events, 3)] == ids
        private_redis.stop()
        error = take(events, 1)[0]
        assert error.type == "error"
        assert json.loads(error.data)["type"] == "broker_unavailable"
        assert list(events) == []  # the stream ended: the client reconnects
    down = requests.post(f"{server.url}/api/channels/{channel}", json={"data": 1}, timeout=30)
    assert down.status_code == 503
    assert down.json()["error"]["type"] == "broker_unavailable"
    with subscribe(server.url, path, ids[-1]) as stream:  # a reconnect while it is down
        assert take(stream.events(), 1)[0].type == "error"
    with subscribe(server.url, f"/sse/tasks/{'a' * 32}") as stream:  # tasks say so alike
        assert take(stream.events(), 1)[0].type == "error"
    assert requests.get(f"{server.url}/api/tasks/{'a' * 32}", timeout=30).status_code == 503
    private_redis.start()
    wait_until(lambda: requests.post(f"{server.url}/api/channels/{channel}",
                                     json={"data": "back"}, timeout=30).status_code == 202,
               timeout=20, interval=0.2)
    with subscribe(server.url, path, ids[-1]) as stream:  # resumes: nothing lost
        events = stream.events()
        assert data(take(events, 1)) == ["back"]
        after = publish(server.url, channel, "live again")
        assert take(events, 1)[0].last_event_id == after
    assert_recovered(server, baseline)  # no stream, descriptor or memory left over; served
    assert "Traceback" not in server.log()
    server.stop()


def test_workers_without_redis_are_warned_about(start_server):
    server = start_server(env={"WEB_CONCURRENCY": "2"})
    assert "REDIS_URL" in requests.get(server.url + "/healthz", timeout=5).json()["broker"][
        "warning"]
    warnings = [line for line in server.log().splitlines() if "REDIS_URL" in line]
    assert len(warnings) == 1 and "[WARNING]" in warnings[0]
    server.stop()
