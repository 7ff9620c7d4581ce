"""A run's topic against a real Redis: the copy first, the broker behind, ends from elsewhere."""

from __future__ import annotations

import time
import uuid

import gevent
import pytest

from broker import AT_END, make_broker
from broker.events import ZERO
from generations import record
from generations.topic import RunTopic
from generations.writer import BrokerWriter


@pytest.fixture
def topic(redis_url):
    broker = make_broker(redis_url, 10, 100)
    local = make_broker("", 1, 100)
    run_topic = RunTopic(broker, local, BrokerWriter(broker), f"generation/{uuid.uuid4().hex}",
                         ttl_seconds=60, max_seconds=60)
    run_topic.open(record.start_data("m", 9, "upstream"), "lease/test", 5)
    yield run_topic
    broker.close()


def texts(broker, name: str) -> list[str]:
    return [token.text for event in broker.read_after(name, ZERO, 100)
            if event.event == record.TOKENS for token in record.decode(event, "g")]


def until(predicate, timeout: float = 5.0) -> bool:
    """Yield to the sending greenlet until `predicate()` holds (False after `timeout`)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        gevent.sleep(0.01)
    return True


def test_tokens_reach_the_copy_at_once_and_the_broker_behind_it(topic):
    assert topic.tokens(0, ["a", "b"]) and topic.tokens(2, ["c"])
    assert texts(topic.local, topic.name) == ["a", "b", "c"]
    assert until(lambda: texts(topic.broker, topic.name) == ["a", "b", "c"])


def test_a_final_event_goes_out_after_every_queued_token_with_the_same_position(topic):
    topic.tokens(0, ["a"])
    topic.tokens(1, ["b"])
    assert topic.append(record.END, record.end_data("stop"), position=2, final=True)
    broker_end, local_end = (store.latest(topic.name)[-1] for store in (topic.broker,
                                                                        topic.local))
    assert broker_end.final and local_end.final
    assert broker_end.key[0] == local_end.key[0] == 2
    assert texts(topic.broker, topic.name) == ["a", "b"]
    assert not topic.tokens(2, ["late"])


def test_an_end_written_elsewhere_stops_the_tokens_and_is_copied_in(topic):
    ended = []
    topic.on_ended = lambda: ended.append(True)
    topic.tokens(0, ["a"])
    assert until(lambda: texts(topic.broker, topic.name) == ["a"])
    topic.broker.publish_open(topic.name, record.END, record.end_data("cancelled"),
                              final=True, position=AT_END)  # a DELETE on another worker
    topic.tokens(1, ["b"])
    assert until(lambda: topic.ended)
    assert ended == [True]
    assert topic.local.latest(topic.name)[-1].event == record.END
    assert not topic.tokens(2, ["c"])


def test_the_start_is_in_the_copy_at_once_and_in_the_broker_with_its_lease_once_flushed(topic):
    assert topic.local.latest(topic.name)[-1].event == record.START
    topic.flush()
    assert topic.in_broker.is_set()
    assert topic.broker.latest(topic.name)[-1].event == record.START
    assert topic.broker.publish_open(topic.name, "x", "{}", final=True, position=AT_END,
                                     unless_leased="lease/test") is None  # the lease is held


def test_one_round_trip_writes_the_queued_tokens_of_every_run(redis_url):
    broker = make_broker(redis_url, 10, 100)
    writer = BrokerWriter(broker)
    topics = [RunTopic(broker, make_broker("", 1, 100), writer, f"generation/{uuid.uuid4().hex}",
                       ttl_seconds=60, max_seconds=60) for _ in range(3)]
    for index, run_topic in enumerate(topics):
        run_topic.open(record.start_data("m", 9, "upstream"), f"lease/{index}", 5)
        run_topic.tokens(0, [f"t{index}"])
    calls = []
    apply = broker.apply
    broker.apply = lambda writes: calls.append(len(writes)) or apply(writes)
    assert writer.write_due()
    assert calls == [9]  # three leases, three starts, three token events
    assert [texts(broker, t.name) for t in topics] == [["t0"], ["t1"], ["t2"]]
    broker.close()
