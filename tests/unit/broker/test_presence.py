"""Presence in process: counting subscriptions by subject, joins and leaves, and how their
notices ride a subscription without touching its place in the topic (memory broker; the Redis
one is in test_redis_presence.py)."""

from __future__ import annotations

import json

import pytest

from broker import Attendance, Headcount
from broker.memory import MemoryBroker
from broker.presence import Presence
from streaming.mailbox import Mailbox

HISTORY = 5


def drain(subscription, timeout: float = 0.05) -> list:
    items = []
    while (item := subscription.get(timeout)) is not None:
        items.append(item)
    return items


def started(broker: MemoryBroker, subject: str | None = None, *, events: bool = False,
            last_id: str | None = None):
    """A subscription that has started reading (so it counts), and what it got meanwhile."""
    subscription = broker.subscribe("t", last_id, attendance=Attendance(subject, events))
    return subscription, drain(subscription, 0)


def joins_and_leaves(items: list) -> list[tuple[str, str]]:
    """(event, subject) of the presence notices among `items`."""
    return [(item.event, _sub(item)) for item in items if item.event in ("join", "leave")]


def _sub(notice) -> str:
    data = notice.wire.decode().split("data: ", 1)[1].strip()
    return json.loads(data)["sub"]


def test_a_headcount_sums_processes_and_lists_each_subject_once_sorted():
    count = Headcount.of([{"bo": 2, "": 3}, {"al": 1, "bo": 1}, {}])
    assert count == Headcount(7, ("al", "bo"))
    assert count.as_json() == {"subscribers": 7, "subjects": ["al", "bo"]}


def test_subscriptions_count_from_their_start_until_they_close():
    broker = MemoryBroker(HISTORY, 10)
    pinned = broker.subscribe("t", attendance=Attendance("al"))
    pinned.pin()
    assert broker.presence.headcount("t") == Headcount(0, ())  # never read: nothing to close it
    al, _ = started(broker, "al")
    al_again, _ = started(broker, "al")
    anonymous, _ = started(broker)
    started(broker, "bo")
    assert broker.presence.headcount("t") == Headcount(4, ("al", "bo"))
    al.close()
    al.close()  # a second close counts once
    anonymous.close()
    assert broker.presence.headcount("t") == Headcount(2, ("al", "bo"))
    al_again.close()
    assert broker.presence.headcount("t") == Headcount(1, ("bo",))
    assert broker.presence.headcount("other") == Headcount(0, ())


def test_a_subscription_without_attendance_is_not_counted():
    broker = MemoryBroker(HISTORY, 10)
    subscription = broker.subscribe("t")
    drain(subscription, 0)
    assert broker.subscribers() == 1
    assert broker.presence.headcount("t") == Headcount(0, ())


def test_a_watcher_gets_the_present_subjects_then_first_joins_and_last_leaves():
    broker = MemoryBroker(HISTORY, 10)
    started(broker, "bo")
    started(broker, "al")
    watcher, first = started(broker, events=True)
    assert joins_and_leaves(first) == [("join", "al"), ("join", "bo")]
    cy, _ = started(broker, "cy")
    cy_again, _ = started(broker, "cy")  # not its first: no join
    anonymous, _ = started(broker)  # no subject: no join
    assert joins_and_leaves(drain(watcher)) == [("join", "cy")]
    cy.close()
    anonymous.close()
    assert drain(watcher) == []  # cy is still there, once
    cy_again.close()
    assert joins_and_leaves(drain(watcher)) == [("leave", "cy")]


def test_a_watcher_with_a_subject_sees_itself_join():
    broker = MemoryBroker(HISTORY, 10)
    _, first = started(broker, "al", events=True)
    assert joins_and_leaves(first) == [("join", "al")]


def test_without_presence_events_a_subscriber_gets_none():
    broker = MemoryBroker(HISTORY, 10)
    plain, first = started(broker, "al")
    bo, _ = started(broker, "bo")
    bo.close()
    assert first == [] and drain(plain) == []


def test_presence_notices_have_no_id_and_leave_the_resume_point_alone():
    broker = MemoryBroker(HISTORY, 10)
    ids = [broker.publish("t", "tick", str(i)) for i in range(3)]
    watcher, first = started(broker, events=True, last_id=ids[0])
    bo, _ = started(broker, "bo")
    live = broker.publish("t", "tick", "3")
    got = first + drain(watcher)
    assert [item.id for item in got if item.key is not None] == [*ids[1:], live]
    notices = [item for item in got if item.key is None]
    assert joins_and_leaves(notices) == [("join", "bo")]
    assert not notices[0].wire.startswith(b"id:") and b"\nid:" not in notices[0].wire
    assert notices[0].wire == b'event: join\ndata: {"sub":"bo"}\n\n'
    bo.close()  # a leave last in its batch: the resume point stays the last event's
    assert joins_and_leaves(drain(watcher)) == [("leave", "bo")]
    watcher.close()
    resumed, _ = started(broker, last_id=live)
    assert drain(resumed) == []


@pytest.mark.parametrize("flush_delay", [0, 0.02])
def test_a_join_taken_while_catching_up_lets_no_live_duplicate_through(flush_delay):
    broker = MemoryBroker(HISTORY, 10, flush_delay=flush_delay)
    started(broker, "al")
    first = broker.publish("t", "tick", "0")
    broker.publish("t", "tick", "1")  # held: stored, not yet handed to followers
    late = broker.subscribe("t", first, attendance=Attendance(events=True))
    got = drain(late, 0.2)  # "1" from the history, the join, then "1" held: dropped
    assert [item.data for item in got if item.key is not None] == ["1"]
    assert joins_and_leaves(got) == [("join", "al")]


def test_a_closed_watcher_is_told_nothing_more():
    presence = Presence()
    mailbox = Mailbox(10, None)
    presence.watch("t", mailbox)
    presence.enter("t", "al")
    assert joins_and_leaves(mailbox.take(0)) == [("join", "al")]
    presence.unwatch("t", mailbox)
    presence.enter("t", "bo")
    assert mailbox.take(0) is None
    assert presence.local_counts("t") == {"al": 1, "bo": 1}
