"""The broker on a real Redis Cluster the test starts (three masters, testbed/redis_cluster.py):
two instances, channels on every master, resuming, presence, a task reported from another
process, a generation, and one master stopped and restarted mid-stream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import redis
import requests
from redis.crc import key_slot

from broker import redis_keys
from testbed.live_server import ROOT
from testbed.redis_cluster import RedisClusterServers
from tests.support.channel_clients import data, new_channel, publish, subscribe, take
from tests.support.clients import metric, wait_until
from tests.support.generation_clients import mock_answer, start_generation, state, view
from tests.support.presence_clients import (
    close_all,
    open_subscriptions,
    subscribers,
    wait_for_presence,
)
from tests.support.redis_fixtures import started_cluster

PER_MASTER = 2


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServers]:
    """The module's own: its last test stops and restarts a master."""
    yield from started_cluster()


@pytest.fixture(scope="module")
def pair(start_server, cluster):
    env = {"REDIS_URL": cluster.url, "HEARTBEAT_SECONDS": "1", "TASK_LEASE_SECONDS": "1.5"}
    return start_server(env=env), start_server(env=env)


def _published(url: str, channel: str, data: object) -> str | None:
    """The id of an event published, or None while the broker answers 503."""
    response = requests.post(f"{url}/api/channels/{channel}", json={"data": data}, timeout=30)
    if response.status_code == 503:
        return None
    assert response.status_code == 202, response.text
    return response.json()["id"]


def channels_on_every_master(cluster: RedisClusterServers, per_master: int) -> dict[int, list]:
    """New channel names, `per_master` of them on each master's slots: port -> names."""
    spread: dict[int, list[str]] = {port: [] for port in cluster.ports}
    while any(len(names) < per_master for names in spread.values()):
        channel = new_channel()
        names = spread[cluster.port_of(redis_keys.stream(f"channel/{channel}"))]
        if len(names) < per_master:
            names.append(channel)
    return spread


def test_every_event_reaches_every_subscriber_of_both_instances_once(pair, cluster):
    spread = channels_on_every_master(cluster, PER_MASTER)
    channels = [channel for names in spread.values() for channel in names]
    streams = {(channel, server.url): subscribe(server.url, f"/sse/channels/{channel}")
               for channel in channels for server in pair}
    try:
        published = {channel: [publish(pair[n % 2].url, channel, n) for n in range(20)]
                     for channel in channels}
        # One listening connection per worker and master, whatever the topics it holds there,
        # each node told to notify of stream commands (K: keyspace, t: streams).
        pids = {pid for server in pair for pid in server.worker_pids()}
        for port in cluster.ports:
            node = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
            try:
                flags = node.config_get("notify-keyspace-events")["notify-keyspace-events"]
                listeners = [c["name"] for c in node.client_list()
                             if c["name"].endswith(":listener")]
            finally:
                node.close()
            assert "K" in flags and ("t" in flags or "A" in flags), flags
            assert sorted(listeners) == sorted(f"sse:{pid}:listener" for pid in pids)
        for (channel, _), stream in streams.items():
            events = take(stream.events(), 20)
            assert [e.last_event_id for e in events] == published[channel]
            assert data(events) == list(range(20))
    finally:
        close_all(streams.values())
    for channel in channels:  # resume on the other instance from the middle
        with subscribe(pair[1].url, f"/sse/channels/{channel}", published[channel][9]) as stream:
            events = stream.events()
            assert [e.last_event_id for e in take(events, 10)] == published[channel][10:]
            after = publish(pair[0].url, channel, "live")
            assert take(events, 1)[0].last_event_id == after
            # A batch is one MULTI on the topic's master, in order (one slot: one hash tag).
            batch = requests.post(f"{pair[0].url}/api/channels/{channel}", timeout=10,
                                  json={"events": [{"data": "b1"}, {"data": "b2"}]})
            assert batch.status_code == 202
            batched = take(events, 2)
            assert [e.last_event_id for e in batched] == batch.json()["ids"]
            assert data(batched) == ["b1", "b2"]
    # The broker metrics read the cluster's reader as they read one Redis's.
    text = requests.get(pair[0].url + "/metrics", timeout=5).text
    assert "broker_reader_lag_seconds " in text
    assert metric(pair[0].url, "broker_published_total", backend="redis") > 0


def test_presence_counts_the_subscribers_of_both_instances(pair):
    first, second = pair
    channel = new_channel()
    streams = open_subscriptions(first.url, channel, 2) + open_subscriptions(second.url, channel, 1)
    try:
        wait_for_presence(first.url, channel, subscribers(3), timeout=10)
        wait_for_presence(second.url, channel, subscribers(3), timeout=10)
    finally:
        close_all(streams)
    wait_for_presence(second.url, channel, subscribers(0), timeout=10)


def test_a_task_started_on_one_instance_streams_from_the_other(pair):
    first, second = pair
    response = requests.post(f"{first.url}/api/tasks", json={"steps": 4, "step_ms": 50},
                             timeout=10)
    assert response.status_code == 202, response.text
    task = response.json()
    with subscribe(second.url, task["events_url"]) as stream:
        events = [event for _, event in stream.events()]
    assert [e.type for e in events][-1] == "done"
    status = requests.get(second.url + task["status_url"], timeout=10).json()["status"]
    assert status == "done"


def test_a_job_in_another_process_reports_through_the_cluster(pair, cluster):
    first, _ = pair
    script = ("import sys; from tasks import TaskReporter\n"
              "r = TaskReporter(); r.start(steps=3, message='queued'); print(r.id, flush=True)\n"
              "sys.stdin.readline()\n"
              "[r.progress(step, f'step {step}') for step in (1, 2, 3)]; r.done({'n': 3})\n")
    job = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, text=True,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           env={**os.environ, "REDIS_URL": cluster.url})
    try:
        task_id = job.stdout.readline().strip()
        with subscribe(first.url, f"/sse/tasks/{task_id}") as stream:
            job.stdin.write("go\n")
            job.stdin.flush()
            events = [event for _, event in stream.events()]
        assert job.wait(timeout=30) == 0
    finally:
        job.kill()
        job.communicate()  # and closes its pipes
    assert [json.loads(e.data).get("step") for e in events[:-1]] == [0, 1, 2, 3]
    assert (events[-1].type, json.loads(events[-1].data)) == ("done", {"result": {"n": 3}})


def test_a_generation_started_on_one_instance_is_watched_on_the_other(pair):
    first, second = pair
    created = start_generation(first.url, prompt="cluster", tokens=12)
    early = view(second.url, created["events_url"], stop_after=4)
    rest = view(second.url, created["events_url"], last_id=early.ids[-1])
    assert "".join(early.tokens + rest.tokens) == mock_answer(first.url, "cluster", 12)
    assert state(second.url, created["id"])["status"] == "done"


def test_a_topic_whose_slot_moved_is_followed_on_its_new_master(pair, cluster):
    """A resharding: the subscribers of the moved topic get `event: error` (the sweep sees the
    slot elsewhere) and resume there with their Last-Event-ID; another topic goes on."""
    first, second = pair
    spread = channels_on_every_master(cluster, 1)
    moved, kept = spread[cluster.ports[0]][0], spread[cluster.ports[1]][0]
    with subscribe(second.url, f"/sse/channels/{moved}") as stream, \
            subscribe(second.url, f"/sse/channels/{kept}") as other:
        ids = [publish(first.url, moved, n) for n in range(3)]
        assert [e.last_event_id for e in take(stream.events(), 3)] == ids
        cluster.move_slot(key_slot(redis_keys.stream(f"channel/{moved}").encode()),
                          cluster.ports[2])
        assert cluster.port_of(redis_keys.stream(f"channel/{moved}")) == cluster.ports[2]
        ids.append(publish(first.url, moved, "after the move"))
        events = stream.events()
        rest = [event for _, event in events]  # live or not, it ends with an error
        assert rest[-1].type == "error"
        assert [e.last_event_id for e in rest[:-1]] in ([], ids[3:])
        kept_id = publish(first.url, kept, "unmoved")
        assert take(other.events(), 1)[0].last_event_id == kept_id
    with subscribe(second.url, f"/sse/channels/{moved}", ids[2]) as stream:
        events = stream.events()
        assert [e.last_event_id for e in take(events, 1)] == ids[3:]
        live = publish(first.url, moved, "live on the new master")
        assert take(events, 1)[0].last_event_id == live


def test_a_master_stopped_mid_stream_ends_only_its_subscriptions(pair, cluster):
    """Runs last: it stops a master. Its channels' subscribers get `event: error` and resume
    without loss once it is back; the other masters' subscribers never notice."""
    first = pair[0]
    spread = channels_on_every_master(cluster, PER_MASTER)
    stopped = cluster.ports[0]
    lost, kept = spread[stopped], [c for port in cluster.ports[1:] for c in spread[port]]
    streams = {(channel, server.url): subscribe(server.url, f"/sse/channels/{channel}")
               for channel in lost + kept for server in pair}
    published = {channel: [] for channel in lost + kept}
    stop = threading.Event()

    def publisher() -> None:  # the kept channels hear from both instances all along
        n = 0
        while not stop.is_set():
            for channel in kept:
                published[channel].append(publish(pair[n % 2].url, channel, n))
            n += 1
            time.sleep(0.02)

    thread = threading.Thread(target=publisher)
    try:
        for channel in lost:
            published[channel] += [publish(first.url, channel, n) for n in range(3)]
        thread.start()
        for channel in lost:
            for server in pair:
                events = take(streams[(channel, server.url)].events(), 3)
                assert [e.last_event_id for e in events] == published[channel]
        reconnects = {server.url: metric(server.url, "broker_reconnects_total")
                      for server in pair}
        cluster.stop_node(stopped)
        for channel in lost:
            for server in pair:
                events = streams[(channel, server.url)].events()
                error = take(events, 1)[0]
                assert error.type == "error"
                assert json.loads(error.data)["type"] == "broker_unavailable"
                assert list(events) == []  # the stream ended: the client reconnects
        for server in pair:  # the node's listener is counted as lost (written within 1 s)
            wait_until(lambda url=server.url: metric(url, "broker_reconnects_total")
                       > reconnects[url], timeout=10)
        down = requests.post(f"{first.url}/api/channels/{lost[0]}", json={"data": 1},
                             timeout=30)
        assert down.status_code == 503
        assert down.json()["error"]["type"] == "broker_unavailable"
        time.sleep(1)  # the kept channels go on meanwhile
        cluster.start_node(stopped)
        back: list[str] = []
        wait_until(lambda: back.extend(filter(None, [_published(first.url, lost[0], "back")]))
                   or back, timeout=30, interval=0.2)
        stop.set()
        thread.join()
        for channel in kept:  # every event, once, and no error
            for server in pair:
                events = take(streams[(channel, server.url)].events(), len(published[channel]))
                assert [e.last_event_id for e in events] == published[channel]
        published[lost[0]] += back
        for channel in lost:  # each resumes from its last id, on the other instance too
            resumed = published[channel][3:]  # nothing but `back` was published since
            for server in pair:
                with subscribe(server.url, f"/sse/channels/{channel}", published[channel][2]) \
                        as stream:
                    events = stream.events()
                    assert [e.last_event_id for e in take(events, len(resumed))] == resumed
                    resumed.append(publish(server.url, channel, "live again"))
                    assert take(events, 1)[0].last_event_id == resumed[-1]
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()
        close_all(streams.values())
    for server in pair:
        assert "Traceback" not in server.log()
