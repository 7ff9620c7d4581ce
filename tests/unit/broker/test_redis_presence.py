"""Presence through Redis: two brokers stand for two processes sharing one Redis.

Each round trip is driven by hand (`sync`), except where the writing greenlet itself is the
subject (coalescing a burst, surviving an unreachable Redis).
"""

from __future__ import annotations

import json
import time
import uuid

import gevent
import pytest
import redis

from broker import BrokerUnavailable, Headcount, make_broker
from broker.redis_presence import COALESCE_SECONDS
from streaming.mailbox import Mailbox
from tests.unit.broker.test_presence import joins_and_leaves

HEARTBEAT = 0.4  # fresh for 0.6 s


@pytest.fixture(params=["redis", "cluster"])
def redis_kind(request):
    """One Redis, or a Redis Cluster (the cluster's client runs the same scripts there)."""
    if request.param == "cluster":
        return request.getfixturevalue("redis_cluster")
    return None


@pytest.fixture
def url(redis_kind, request):
    return redis_kind.url if redis_kind is not None else request.getfixturevalue("redis_url")


@pytest.fixture
def processes(url):
    brokers = [make_broker(url, 10, 10, heartbeat=HEARTBEAT) for _ in range(2)]
    for broker in brokers:  # a cluster's client is made on first use (COMMAND's table parsed):
        broker.presence.headcount(topic())  # not between a write and a read 0.6 s apart at most
    yield [broker.presence for broker in brokers]
    for broker in brokers:
        broker.close()


@pytest.fixture
def client(redis_kind, url):
    client = (redis_kind.client() if redis_kind is not None
              else redis.Redis.from_url(url, decode_responses=True))
    yield client
    client.close()


def topic() -> str:
    return f"test/{uuid.uuid4().hex}"


def test_counts_of_every_process_are_summed_and_subjects_listed_once(processes, client):
    one, two = processes
    name = topic()
    for subject in ("al", "bo", None):
        one.enter(name, subject)
    for subject in ("bo", None, None):
        two.enter(name, subject)
    assert one.headcount(name) == Headcount(3, ("al", "bo"))  # its own, before any write
    one.sync()
    two.sync()
    assert one.headcount(name) == two.headcount(name) == Headcount(6, ("al", "bo"))
    fields = client.hgetall(f"sse:presence:{{{name}}}")
    assert set(fields) == {one.process, two.process}
    deadline, counts = fields[two.process].split(" ", 1)
    assert json.loads(counts) == {"bo": 1, "": 2}
    seconds, micros = client.time()
    redis_ms = seconds * 1000 + micros // 1000
    assert 0 < int(deadline) - redis_ms <= 1.5 * HEARTBEAT * 1000
    assert 0 < client.pttl(f"sse:presence:{{{name}}}") <= 1.5 * HEARTBEAT * 1000


def test_a_process_whose_last_subscription_closed_leaves_no_field(processes, client):
    one, two = processes
    name = topic()
    one.enter(name, "al")
    two.enter(name, "bo")
    one.sync()
    two.sync()
    one.leave(name, "al")
    one.sync()
    assert list(client.hgetall(f"sse:presence:{{{name}}}")) == [two.process]
    assert two.headcount(name) == Headcount(1, ("bo",))


def test_a_process_that_stops_refreshing_is_gone_once_its_deadline_passes(processes, client):
    one, two = processes
    name = topic()
    one.enter(name, "al")
    one.sync()
    # Nothing here yields to `one`'s writing greenlet: it refreshes no more than a process
    # killed with SIGKILL would.
    assert two.headcount(name) == Headcount(1, ("al",))
    time.sleep(1.5 * HEARTBEAT + 0.1)
    assert two.headcount(name) == Headcount(0, ())
    assert client.hgetall(f"sse:presence:{{{name}}}") == {}  # pruned by the reader, or expired


def test_a_refresh_keeps_a_live_process_fresh(processes):
    one, two = processes
    name = topic()
    one.enter(name, "al")
    for _ in range(4):  # past its first deadline, refreshed every half heartbeat
        one.sync(everything=True)
        time.sleep(HEARTBEAT / 2)
    assert two.headcount(name) == Headcount(1, ("al",))


def test_watchers_learn_other_processes_joins_and_leaves_by_polling(processes):
    one, two = processes
    name = topic()
    one.enter(name, "al")
    one.sync()
    watcher = Mailbox(10, None)
    two.watch(name, watcher)
    assert watcher.take(0) is None  # al is another process's: known once read
    two.sync()  # the first read of a new watched topic needs no poll
    assert joins_and_leaves(watcher.take(0)) == [("join", "al")]
    two.enter(name, "al")  # here too: still there, no join
    two.enter(name, "bo")  # this process's own: at once, no round trip
    assert joins_and_leaves(watcher.take(0)) == [("join", "bo")]
    one.leave(name, "al")
    one.enter(name, "cy")
    one.sync()
    two.sync(poll=True)
    assert joins_and_leaves(watcher.take(0)) == [("join", "cy")]  # al is still here, in two
    two.leave(name, "al")
    assert joins_and_leaves(watcher.take(0)) == [("leave", "al")]


def test_a_burst_of_subscriptions_is_written_in_a_few_round_trips(private_redis):
    # A server of this test alone: its command count must not include other tests' traffic.
    # (Commands a script runs count too; a long heartbeat keeps refreshes out of the count.)
    one, two = (make_broker(private_redis.url, 10, 10, heartbeat=10) for _ in range(2))
    counter = redis.Redis.from_url(private_redis.url)
    try:
        name = topic()
        one.presence.enter(topic(), "warm-up")  # the connection and the script, loaded once
        gevent.sleep(COALESCE_SECONDS * 4)
        before = int(counter.info("stats")["total_commands_processed"])
        for n in range(1000):
            one.presence.enter(name, f"user-{n % 10}")
        gevent.sleep(COALESCE_SECONDS * 4)  # the writing greenlet's turn
        commands = int(counter.info("stats")["total_commands_processed"]) - before
        assert commands < 10, commands
        assert two.presence.headcount(name) == Headcount(
            1000, tuple(sorted(f"user-{n}" for n in range(10))))
    finally:
        counter.close()
        one.close()
        two.close()


def test_an_unreachable_redis_fails_reads_and_keeps_writes_for_later(private_redis):
    broker = make_broker(private_redis.url, 10, 10, heartbeat=10)
    presence = broker.presence
    name = topic()
    private_redis.stop()
    presence.enter(name, "al")
    with pytest.raises(BrokerUnavailable):
        presence.headcount(name)
    with pytest.raises(BrokerUnavailable):
        presence.sync()
    gevent.sleep(COALESCE_SECONDS * 2)  # the writing greenlet fails too, and goes on
    private_redis.start()
    reader = make_broker(private_redis.url, 10, 10)
    # It tries again (a poll period later) and writes what failed.
    wait = time.monotonic() + 5
    while reader.presence.headcount(name).subscribers == 0 and time.monotonic() < wait:
        gevent.sleep(0.05)
    assert reader.presence.headcount(name) == Headcount(1, ("al",))
    reader.close()
    broker.close()


def test_closing_the_broker_removes_its_fields(processes, url, client):
    one, _ = processes
    name = topic()
    broker = make_broker(url, 10, 10, heartbeat=HEARTBEAT)
    broker.presence.headcount(topic())  # its client made, as in `processes`
    broker.presence.enter(name, "al")
    broker.presence.sync()
    assert one.headcount(name).subscribers == 1
    broker.close()
    assert one.headcount(name) == Headcount(0, ())
