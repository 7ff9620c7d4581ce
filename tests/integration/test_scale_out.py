"""Scaling out: two instances behind one nginx `upstream`, sharing one Redis (REDIS_URL).

A subscriber of a channel (`GET /sse/channels/<name>`, ids are Redis stream entry ids) is moved
from the instance that holds its stream to the other one, the way a deploy moves it: that
instance is stopped, events are published on the other while the client is away, and the client
reconnects through nginx with its Last-Event-ID. It must get every event exactly once, in order,
the missed ones replayed on the new connection, and nginx's access log must show the two
connections served by different instances.

Depends on the broker's channels (`GET /sse/channels/<name>`, `POST /api/channels/<name>`
answering `202 {"id"}`, the Redis Streams backend); on a branch without them the subscription is
a 404 and this test fails. It starts its own redis-server; CI installs it (REQUIRE_REDIS=1).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from streaming.sse import SSEParser
from testbed.live_server import LiveServer, free_port
from tests.support.clients import wait_until
from tests.support.nginx_front import NginxFront

EVENTS = 10
MOVE_AFTER = 4  # events the subscriber has before its instance goes away
WHILE_AWAY = 3  # events published while it is disconnected


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A redis-server of our own on a free loopback port, stopped by its PID afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("REQUIRE_REDIS") == "1":
            pytest.fail("REQUIRE_REDIS=1 but redis-server is not installed")
        pytest.skip("redis-server is not installed (CI installs it and sets REQUIRE_REDIS=1)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        wait_until(lambda: _answers(client), timeout=10, interval=0.05)
        client.close()
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def _streams_open(server: LiveServer) -> float:
    """Streams the instance holds now, summed over their transport labels."""
    text = httpx.get(server.url + "/metrics", timeout=5).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples if sample.name == "streams_active")


class Subscriber(threading.Thread):
    """Reads a channel through nginx like EventSource: after an end or a cut, it resumes from its
    last id, once `may_reconnect` is set (so the test controls what happens while it is away)."""

    def __init__(self, front: NginxFront, channel: str) -> None:
        super().__init__(daemon=True)
        self.front, self.channel = front, channel
        self.received: list[tuple[str, str, int]] = []  # (id, data, connection) per `note`
        self.last_id: str | None = None
        self.statuses: list[int] = []
        self.has_enough = threading.Event()
        self.away = threading.Event()
        self.may_reconnect = threading.Event()

    def run(self) -> None:
        with self.front.client() as client:
            for attempt in range(10):
                if len(self.received) == EVENTS:
                    return
                if attempt:  # the stream ended or was cut
                    self.away.set()
                    if not self.may_reconnect.wait(timeout=30):
                        return
                headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
                try:
                    with client.stream("GET", f"/sse/channels/{self.channel}",
                                       headers=headers) as response:
                        self.statuses.append(response.status_code)
                        self._read(response)
                except httpx.HTTPError:
                    pass  # cut by the stopping instance

    def _read(self, response: httpx.Response) -> None:
        parser = SSEParser()
        for chunk in response.iter_raw():
            for event in parser.feed(chunk):
                if event.type == "note":
                    self.last_id = event.last_event_id
                    self.received.append((self.last_id, event.data, len(self.statuses)))
            if len(self.received) >= MOVE_AFTER:
                self.has_enough.set()
            if len(self.received) == EVENTS:
                return


def publish(url: str, channel: str, n: int) -> str:
    response = httpx.post(f"{url}/api/channels/{channel}", json={"event": "note", "data": {"n": n}},
                          timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_a_subscriber_moved_to_the_other_instance_resumes_with_no_loss(
        redis_url, start_server, start_nginx):
    instances = [start_server(env={"REDIS_URL": redis_url}) for _ in range(2)]
    front = start_nginx(*(instance.port for instance in instances))
    channel = f"scale-{uuid.uuid4().hex[:12]}"

    subscriber = Subscriber(front, channel)
    subscriber.start()
    wait_until(lambda: subscriber.statuses, timeout=10)
    assert subscriber.statuses[0] == 200, subscriber.statuses
    wait_until(lambda: sum(map(_streams_open, instances)) >= 1, timeout=10)
    holder = next(instance for instance in instances if _streams_open(instance) >= 1)
    other = next(instance for instance in instances if instance is not holder)

    # Published on both instances alike: Redis carries each event to the holder's subscriber.
    published = [publish(instances[n % 2].url, channel, n) for n in range(MOVE_AFTER)]
    assert subscriber.has_enough.wait(timeout=10), subscriber.received

    # A deploy: the holder stops, and its stream ends; while the client is away, the other
    # instance publishes; then the client comes back through nginx with its Last-Event-ID.
    holder.stop()
    assert subscriber.away.wait(timeout=10)
    away = range(MOVE_AFTER, MOVE_AFTER + WHILE_AWAY)
    published += [publish(other.url, channel, n) for n in away]
    subscriber.may_reconnect.set()
    wait_until(lambda: _streams_open(other) >= 1, timeout=10)
    published += [publish(other.url, channel, n) for n in range(MOVE_AFTER + WHILE_AWAY, EVENTS)]
    subscriber.join(timeout=20)

    # Every event exactly once, in order, with the id its publish answered; those published
    # while the client was away came on its second connection, replayed from its Last-Event-ID.
    assert [json.loads(data) for _, data, _ in subscriber.received] == [
        {"n": n} for n in range(EVENTS)], (subscriber.received, subscriber.statuses)
    assert [event_id for event_id, _, _ in subscriber.received] == published
    assert subscriber.statuses[-1] == 200 and len(subscriber.statuses) >= 2
    connections = [connection for _, _, connection in subscriber.received]
    assert connections[MOVE_AFTER - 1] == 1 and connections[MOVE_AFTER] >= 2

    # nginx served the first connection from the holder and the resumed one from the other
    # (`upstream=` lists every instance tried; the last one answered).
    def served_by() -> list[str]:
        return [line.rsplit("upstream=", 1)[1].split(", ")[-1] for line in front.access_log()
                if f"/sse/channels/{channel}" in line]

    wait_until(lambda: len(served_by()) >= 2, timeout=5)
    assert served_by()[0] == f"127.0.0.1:{holder.port}"
    assert served_by()[-1] == f"127.0.0.1:{other.port}"
