"""`Fanout`'s sliced delivery: bounded work per loop turn, order per mailbox, no half
deliveries, and nothing lost by a subscription that joins while a delivery is under way."""

from __future__ import annotations

import gevent
import pytest

from broker.events import BROKER_ERROR, Event
from broker.fanout import Fanout
from broker.memory import MemoryBroker
from streaming.mailbox import Mailbox

SLICE = 3


def event(n: int) -> Event:
    return Event(f"1-{n}", "tick", str(n))


def mailboxes(fanout: Fanout, count: int, topic: str = "t") -> list[Mailbox]:
    boxes = [Mailbox(100, None) for _ in range(count)]
    for box in boxes:
        fanout.add(topic, box)
    return boxes


class RecordingMailbox(Mailbox):
    __slots__ = ("puts",)

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.puts: list[list[str]] = []

    def put(self, items: list) -> bool:
        self.puts.append([e.data for e in items])
        return super().put(items)


def received(box: Mailbox) -> list[str]:
    """The data of the events the mailbox holds, without waiting."""
    return [e.data for e in box.take(0) or []]


def turn() -> None:
    """Let the hub run the callbacks scheduled so far (one continuation of the fan-out)."""
    gevent.sleep(0)


def test_a_topic_within_one_slice_is_handed_its_delivery_at_once():
    fanout = Fanout(slice_size=SLICE)
    boxes = mailboxes(fanout, SLICE)
    fanout.deliver("t", [event(1)])
    assert [received(b) for b in boxes] == [["1"]] * SLICE
    assert fanout.pending() == 0 and fanout.handed_over == SLICE


def test_a_larger_topic_gets_one_slice_at_once_and_one_more_per_turn():
    fanout = Fanout(slice_size=SLICE)
    boxes = mailboxes(fanout, 3 * SLICE + 1)
    fanout.deliver("t", [event(1)])
    counts = [sum(bool(b._items) for b in boxes)]
    while fanout.pending():
        turn()
        counts.append(sum(bool(b._items) for b in boxes))
    assert counts == [3, 6, 9, 10]
    assert all(received(b) == ["1"] for b in boxes)
    assert fanout.handed_over == len(boxes)


def test_every_topic_shares_one_budget_per_turn():
    fanout = Fanout(slice_size=SLICE)
    first, second = mailboxes(fanout, 2 * SLICE, "a"), mailboxes(fanout, 2 * SLICE, "b")
    fanout.deliver("a", [event(1)])
    fanout.deliver("b", [event(2)])
    handed = fanout.handed_over
    assert handed == 2 * SLICE  # each caller's own first slice
    turn()  # one continuation: a's rest, nothing of b's beyond its first slice
    assert fanout.handed_over - handed == SLICE
    turn()
    assert all(received(b) == ["1"] for b in first) and all(received(b) == ["2"] for b in second)


def test_each_mailbox_gets_a_topics_deliveries_in_order():
    fanout = Fanout(slice_size=SLICE)
    boxes = mailboxes(fanout, 2 * SLICE + 2)
    for n in range(5):
        fanout.deliver("t", [event(n)])
    while fanout.pending():
        turn()
    assert all(received(b) == ["0", "1", "2", "3", "4"] for b in boxes)


def test_deliveries_waiting_behind_one_under_way_join_into_one_list():
    fanout = Fanout(slice_size=SLICE)
    mailboxes(fanout, 2 * SLICE)
    recording = RecordingMailbox(100, None)
    fanout.add("t", recording)
    for n in range(4):
        fanout.deliver("t", [event(n)])
    while fanout.pending():
        turn()
    assert recording.puts == [["0"], ["1", "2", "3"]]


def test_a_mailbox_joining_mid_delivery_gets_none_of_it_then_the_next_whole():
    fanout = Fanout(slice_size=SLICE)
    mailboxes(fanout, 2 * SLICE)
    fanout.deliver("t", [event(1), event(2)])
    late = Mailbox(100, None)
    fanout.add("t", late)
    fanout.deliver("t", [event(3)])
    while fanout.pending():
        turn()
    assert received(late) == ["3"]


def test_a_mailbox_leaving_mid_delivery_is_skipped():
    fanout = Fanout(slice_size=SLICE)
    boxes = mailboxes(fanout, 2 * SLICE)
    fanout.deliver("t", [event(1)])
    gone = next(b for b in boxes if not b._items)
    gone.close()
    fanout.remove("t", gone)
    turn()
    assert gone.take(0) == []  # closed, nothing put after it left


def test_fail_all_ends_every_mailbox_and_drops_what_was_under_way():
    fanout = Fanout(slice_size=SLICE)
    boxes = mailboxes(fanout, 2 * SLICE)
    fanout.deliver("t", [event(1)])
    fanout.fail_all(BROKER_ERROR)
    assert fanout.pending() == 0
    turn()
    assert all(b.take(0)[-1] is BROKER_ERROR for b in boxes)


def test_the_slice_size_must_be_positive():
    with pytest.raises(ValueError, match="slice_size"):
        Fanout(slice_size=0)


def drain(subscription, timeout: float = 0.05) -> list[str]:
    got = []
    while (item := subscription.get(timeout)) is not None:
        got.append(item.data)
    return got


def test_subscribers_joining_while_a_delivery_is_sliced_get_every_event_once():
    broker = MemoryBroker(100, 1000)
    broker._fanout = Fanout(slice_size=SLICE)
    first = broker.publish("t", "tick", "0")
    watchers = [broker.subscribe("t") for _ in range(3 * SLICE)]
    for watcher in watchers:
        assert watcher.get(0) is None  # following
    broker.publish("t", "tick", "1")  # one slice handed over, the rest under way
    late = broker.subscribe("t", first)  # joins now: reads "1" from the history
    assert late.get(0).data == "1"
    broker.publish("t", "tick", "2")  # waits behind "1"'s delivery; late is in it
    assert drain(late) == ["2"]
    assert all(drain(w) == ["1", "2"] for w in watchers)


def test_broker_metrics_write_the_fanouts_counts_once_a_second():
    from prometheus_client import CollectorRegistry

    from broker.metrics import INTERVAL, BrokerMetrics

    registry = CollectorRegistry()
    broker = MemoryBroker(100, 1000)
    metrics = BrokerMetrics(broker, registry)
    metrics.start()
    subscription = broker.subscribe("t")
    assert subscription.get(0) is None
    broker.publish_many("t", [("tick", "1"), ("tick", "2")])

    def value(name: str) -> float:
        return registry.get_sample_value(name, {"backend": "memory"}) or 0.0

    assert value("broker_published_total") == 2  # as it happens
    assert value("broker_publish_seconds_count") == 1
    assert value("broker_delivered_total") == 0  # not yet written
    gevent.sleep(INTERVAL * 1.5)
    assert value("broker_delivered_total") == 2 and value("broker_subscribers") == 1
    subscription.close()
    metrics.write()
    assert value("broker_subscribers") == 0
    metrics.stop()
