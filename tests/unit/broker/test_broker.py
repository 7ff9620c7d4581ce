"""The broker's contract, in process: the store operations against both backends, and the
subscription logic (shared by both) on the memory backend.

The Redis backend's subscriptions need a gevent-patched process (its reader blocks on a socket),
so they are tested against the real server, for both backends, in test_channels_server.py.
"""

from __future__ import annotations

import time
import uuid

import gevent
import pytest
import redis

from broker import AT_END, Append, BrokerUnavailable, InvalidEventId, Lease, make_broker
from broker.events import RESET, ZERO, Event, Notice, parse_id
from broker.memory import MemoryBroker
from broker.redis_reader import entry_event

HISTORY = 5


@pytest.fixture(params=["memory", "redis", "cluster"])
def broker(request):
    url = {"memory": lambda: "", "redis": lambda: request.getfixturevalue("redis_url"),
           "cluster": lambda: request.getfixturevalue("redis_cluster").url}[request.param]()
    broker = make_broker(url, HISTORY, 10)
    yield broker
    broker.close()


def topic() -> str:
    return f"test/{uuid.uuid4().hex}"


def test_ids_are_stream_ids_that_grow(broker):
    name = topic()
    ids = [broker.publish(name, "tick", str(i)) for i in range(5)]
    keys = [parse_id(i) for i in ids]
    assert keys == sorted(keys) and len(set(keys)) == 5


def test_publish_many_appends_in_order_and_returns_the_ids(broker):
    name = topic()
    before = broker.publish(name, "tick", "0")
    ids = broker.publish_many(name, [("a", "1"), ("b", '"two"'), ("c", "[3]")])
    assert [(e.id, e.event, e.data) for e in broker.read_after(name, parse_id(before), 10)] \
        == list(zip(ids, ["a", "b", "c"], ["1", '"two"', "[3]"], strict=True))
    assert ids == sorted(ids, key=parse_id) and parse_id(ids[0]) > parse_id(before)


def test_latest_and_read_after(broker):
    name = topic()
    ids = [broker.publish(name, "tick", str(i)) for i in range(4)]
    assert [e.data for e in broker.latest(name, 2)] == ["2", "3"]
    assert [e.id for e in broker.read_after(name, parse_id(ids[0]), 2)] == ids[1:3]
    assert broker.read_after(name, parse_id(ids[-1]), 10) == []
    assert broker.latest(topic()) == []


def test_history_is_trimmed_and_the_loss_is_known(broker):
    name = topic()
    first = broker.publish(name, "tick", "0")
    assert not broker.trimmed_after(name, parse_id(first))
    # Redis trims MAXLEN ~ by whole nodes of 100 entries, so publish well past that.
    ids = [broker.publish(name, "tick", str(i)) for i in range(1, 250)]
    retained = broker.read_after(name, ZERO, 1000)
    assert HISTORY <= len(retained) < 250
    assert [e.id for e in retained] == ids[-len(retained):]
    assert broker.trimmed_after(name, parse_id(first))
    assert not broker.trimmed_after(name, retained[0].key)


def test_a_topic_ends_with_its_final_event(broker):
    name = topic()
    assert broker.publish_open(name, "progress", "1")
    assert broker.publish_open(name, "done", "2", final=True, retain_seconds=60)
    assert broker.publish_open(name, "progress", "3") is None
    assert broker.publish_open(name, "failed", "4", final=True) is None
    events = broker.latest(name, 5)
    assert [(e.event, e.final) for e in events] == [("progress", False), ("done", True)]


def test_an_end_can_wait_for_a_lease_to_expire(broker):
    name = topic()
    broker.publish_open(name, "progress", "1")
    broker.lease(name, 0.3)
    assert broker.publish_open(name, "failed", "x", final=True, unless_leased=name) is None
    time.sleep(0.4)
    assert broker.publish_open(name, "failed", "x", final=True, unless_leased=name)
    other = topic()
    guard = f"{other}/guard"  # a lease of `other` (on a cluster, in its slot)
    broker.lease(guard, 30)
    broker.release(guard)
    assert broker.publish_open(other, "failed", "x", final=True, unless_leased=guard)


def test_an_ended_topic_is_kept_for_its_retention_only(redis_url):
    broker = make_broker(redis_url, HISTORY, 10)
    name = topic()
    broker.publish_open(name, "done", "{}", final=True, retain_seconds=60)
    ttl = redis.Redis.from_url(redis_url).ttl(f"sse:{{{name}}}")
    assert 0 < ttl <= 60
    broker.close()


def test_a_positioned_topic_is_addressed_by_position_and_kept_whole(broker):
    name = topic()
    ids = [broker.publish_open(name, "e", str(p), position=p) for p in (0, 3, 3, 9)]
    assert ids == ["0-1", "3-0", "3-1", "9-0"]
    assert broker.publish_open(name, "end", "x", position=AT_END, final=True) == "9-1"
    assert len(broker.read_after(name, ZERO, 100)) == 5 > HISTORY - 1
    assert not broker.trimmed_after(name, ZERO)
    assert broker.publish_open(name, "late", "x", position=AT_END) is None


def test_a_retention_given_before_the_end_forgets_a_topic_nobody_ended(broker):
    name = topic()
    broker.publish_open(name, "start", "{}", position=0, retain_seconds=0.05)
    assert broker.latest(name)
    time.sleep(0.15)
    assert broker.latest(name) == [] and broker.read_after(name, ZERO, 10) == []


def test_apply_makes_each_write_in_order(broker):
    name, other = topic(), topic()
    results = broker.apply([Lease(f"{other}/lease", 5), Append(name, "e", "1", position=0),
                            Append(other, "e", "2"), Append(name, "end", "3", final=True,
                                                            position=AT_END),
                            Append(name, "late", "4", position=AT_END)])
    assert results[0] is None and results[1] == "0-1" and results[3] == "0-2"
    assert results[4] is None  # after the end
    assert [e.data for e in broker.read_after(name, ZERO, 10)] == ["1", "3"]
    assert broker.latest(other)[0].data == "2"
    assert broker.publish_open(other, "x", "5", final=True,
                               unless_leased=f"{other}/lease") is None


def test_on_a_cluster_a_lease_checked_must_guard_the_topic(redis_cluster):
    broker = make_broker(redis_cluster.url, HISTORY, 10)
    try:
        with pytest.raises(ValueError, match="guards another topic"):
            broker.publish_open(topic(), "x", "1", unless_leased=f"{topic()}/lease")
    finally:
        broker.close()


def test_a_bad_last_id_is_refused_at_once(broker):
    for bad in ("7", "abc", "1-2-3", "-1-0", "1 -0", "9" * 30 + "-0"):
        with pytest.raises(InvalidEventId):
            broker.subscribe(topic(), bad)


def test_an_unreachable_redis_raises_broker_unavailable():
    from testbed.live_server import free_port

    broker = make_broker(f"redis://127.0.0.1:{free_port()}/0", HISTORY, 10)
    with pytest.raises(BrokerUnavailable):
        broker.publish("t", "e", "1")
    with pytest.raises(BrokerUnavailable):
        broker.latest("t")


def test_events_are_encoded_once_as_sse():
    event = Event("17-3", "news", '{"a":1}')
    assert event.wire == b'id: 17-3\nevent: news\ndata: {"a":1}\n\n'
    assert event.key == (17, 3)
    assert RESET.wire == b'event: reset\ndata: {"reason":"history_trimmed"}\n\n'
    assert entry_event(("1-0", {"e": "done", "d": "2", "f": "1"})) == Event("1-0", "done", "2",
                                                                            final=True)


# The subscription logic, shared by both backends, driven in process on the memory one.

def memory(queue_size: int = 10) -> MemoryBroker:
    return MemoryBroker(HISTORY, queue_size)


def drain(subscription, timeout: float = 0.05) -> list:
    items = []
    while (item := subscription.get(timeout)) is not None:
        items.append(item)
    return items


def test_a_subscriber_gets_what_is_published_after_it_started():
    broker = memory()
    broker.publish("t", "old", "0")
    subscription = broker.subscribe("t")
    subscription.pin()
    broker.publish("t", "new", "1")  # before the subscriber reads anything
    assert [e.event for e in drain(subscription)] == ["new"]


def test_resume_replays_exactly_the_events_after_the_id_then_follows_live():
    broker = memory()
    ids = [broker.publish("t", "tick", str(i)) for i in range(4)]
    subscription = broker.subscribe("t", ids[1])
    got = [subscription.get(1)]
    broker.publish("t", "tick", "4")  # during the replay: must come once, in order
    got += drain(subscription)
    assert [e.data for e in got] == ["2", "3", "4"]


def test_an_id_older_than_the_history_starts_with_a_reset():
    broker = memory()
    first = broker.publish("t", "tick", "0")
    ids = [broker.publish("t", "tick", str(i)) for i in range(1, 12)]
    got = drain(broker.subscribe("t", first))
    assert got[0] is RESET
    assert [e.id for e in got[1:]] == ids[-HISTORY:]


def test_an_id_from_before_a_restart_is_a_reset():
    got = drain(memory().subscribe("t", "1-0"))
    assert got == [RESET]


def test_an_id_beyond_the_history_is_a_reset_then_all_that_is_held():
    broker = memory()
    held = broker.publish("t", "tick", "0")
    subscription = broker.subscribe("t", f"{parse_id(held)[0] + 60_000}-0")
    got = drain(subscription)
    assert got[0] is RESET and [e.id for e in got[1:]] == [held]
    live = broker.publish("t", "tick", "1")
    assert subscription.get(1).id == live


def test_a_slow_subscriber_overflows_without_slowing_the_others():
    broker = memory(queue_size=3)
    slow, fast = broker.subscribe("t"), broker.subscribe("t")
    assert slow.get(0) is None and fast.get(0) is None  # both follow the topic now
    fast_got = []
    for i in range(10):
        broker.publish("t", "tick", str(i))
        fast_got += drain(fast, 0)
    assert [e.data for e in fast_got] == [str(i) for i in range(10)]
    slow_got = drain(slow)
    assert [n.event for n in slow_got] == ["overflow"] and isinstance(slow_got[0], Notice)
    assert slow.ended
    assert broker.subscribers() == 1  # the slow one no longer follows


def test_a_final_event_ends_every_subscription_and_from_latest_starts_with_it():
    broker = memory()
    broker.publish_open("t", "progress", "1")
    live = broker.subscribe("t", from_latest=True)
    assert live.get(0).event == "progress"
    broker.publish_open("t", "done", "2", final=True)
    assert [e.event for e in drain(live)] == ["done"] and live.ended
    late = broker.subscribe("t", from_latest=True)
    assert [e.event for e in drain(late)] == ["done"] and late.ended
    assert broker.subscribers() == 0


def test_a_batch_is_handed_to_a_subscriber_as_one_batch():
    broker = memory()
    subscription = broker.subscribe("t")
    assert subscription.get(0) is None
    ids = broker.publish_many("t", [("tick", str(i)) for i in range(3)])
    assert [e.id for e in subscription.next_batch(1)] == ids


def test_a_waiting_subscriber_is_woken_by_a_publish_from_another_greenlet():
    broker = memory()
    subscription = broker.subscribe("t")
    subscription.pin()
    gevent.spawn_later(0.05, broker.publish, "t", "tick", "1")
    assert subscription.get(5).data == "1"


class UnreachableStore(MemoryBroker):
    def follow(self, topic, mailbox):
        raise BrokerUnavailable("down")


def test_an_unreachable_broker_ends_the_subscription_with_an_error_event():
    subscription = UnreachableStore(HISTORY, 10).subscribe("t")
    got = drain(subscription)
    assert [n.event for n in got] == ["error"]
    assert b"broker_unavailable" in got[0].wire
    assert subscription.ended


@pytest.mark.parametrize("flush_delay", [0, 0.02])
def test_a_flush_delay_hands_what_was_published_meanwhile_over_as_one_batch(flush_delay):
    broker = MemoryBroker(HISTORY, 10, flush_delay=flush_delay)
    subscription = broker.subscribe("t")
    assert subscription.get(0) is None  # it follows the topic now
    for i in range(3):
        broker.publish("t", "tick", str(i))
    assert [e.data for e in subscription.next_batch(5)] == ["0", "1", "2"]


@pytest.mark.parametrize("flush_delay", [0, 0.02])
def test_a_subscriber_joining_while_events_are_held_gets_each_event_once(flush_delay):
    broker = MemoryBroker(HISTORY, 10, flush_delay=flush_delay)
    first = broker.publish("t", "tick", "0")
    watcher = broker.subscribe("t")
    assert watcher.get(0) is None
    broker.publish("t", "tick", "1")  # held: stored, not yet handed to the followers
    late = broker.subscribe("t", first)  # reads "1" from the history, then gets it held
    assert [e.data for e in drain(late, 0.2)] == ["1"]
    broker.publish("t", "tick", "2")
    assert [e.data for e in drain(late, 0.2)] == ["2"]
    assert [e.data for e in drain(watcher, 0.2)] == ["1", "2"]


def test_fanout_flush_ms_reaches_the_broker_from_the_settings():
    from app import create_app
    from services import services

    broker = services(create_app({"TESTING": True, "FANOUT_FLUSH_MS": 300})).broker
    subscription = broker.subscribe("t")
    assert subscription.get(0) is None
    broker.publish("t", "tick", "0")
    assert subscription.get(0.1) is None  # held for the flush delay
    assert [e.data for e in subscription.next_batch(1)] == ["0"]


def test_without_fanout_flush_ms_an_event_is_handed_over_at_once():
    broker = make_broker("", HISTORY, 10, None)
    subscription = broker.subscribe("t")
    assert subscription.get(0) is None
    broker.publish("t", "tick", "0")
    assert subscription.get(0).data == "0"
