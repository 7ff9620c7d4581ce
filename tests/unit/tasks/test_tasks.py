"""Task state, the reporter and orphaned tasks, in process on the memory broker."""

from __future__ import annotations

import time

import gevent
import pytest

from broker.memory import MemoryBroker
from tasks import TaskReporter, Tasks, UnknownTask
from tasks.service import ORPHANED
from tasks.state import topic


@pytest.fixture
def broker():
    return MemoryBroker(100, 100)


def test_the_state_follows_the_reports(broker):
    tasks = Tasks(broker, lease_seconds=30)
    reporter = TaskReporter(broker=broker)
    reporter.start(steps=4)
    assert tasks.state(reporter.id).as_json() == {
        "id": reporter.id, "status": "running", "step": 0, "steps": 4, "percent": 0,
        "message": "started", "result": None}
    reporter.progress(3, "three")
    assert (tasks.state(reporter.id).step, tasks.state(reporter.id).percent) == (3, 75)
    assert reporter.done({"answer": 42})
    final = tasks.state(reporter.id)
    assert (final.status, final.result, final.step, final.percent) == ("done", {"answer": 42},
                                                                       3, 100)
    assert not reporter.progress(4) and not reporter.fail("late")  # nothing after the end


def test_a_reporter_in_a_job_learns_the_steps_from_the_started_task(broker):
    TaskReporter("a" * 32, broker=broker).start(steps=8, message="queued")
    job = TaskReporter("a" * 32, broker=broker)
    assert job.progress(2)
    assert Tasks(broker, 30).state("a" * 32).percent == 25
    with pytest.raises(ValueError, match="not started"):
        TaskReporter("b" * 32, broker=broker).progress(1)


def test_an_exception_in_a_job_fails_the_task_without_its_message(broker):
    reporter = TaskReporter(broker=broker)
    reporter.start(steps=2)
    with pytest.raises(KeyError), reporter:
        raise KeyError("secret")
    state = Tasks(broker, 30).state(reporter.id)
    assert (state.status, state.message) == ("failed", "the job raised KeyError")


def test_a_task_whose_lease_expired_is_failed_when_read(broker):
    tasks = Tasks(broker, lease_seconds=30)
    reporter = TaskReporter(broker=broker, lease_seconds=0.1)
    reporter.start(steps=2)
    assert tasks.state(reporter.id).status == "running"
    time.sleep(0.15)  # the runner died: nobody renews
    state = tasks.state(reporter.id)
    assert (state.status, state.message) == ("failed", ORPHANED)
    assert [e.event for e in broker.latest(topic(reporter.id), 5)][-1] == "failed"


def test_a_demo_task_renews_its_lease_through_long_steps(broker):
    tasks = Tasks(broker, lease_seconds=0.3)
    task_id = tasks.start_demo(steps=2, step_ms=400)  # each step longer than the lease
    gevent.sleep(0.6)
    assert tasks.state(task_id).status == "running"
    deadline = time.monotonic() + 5
    while tasks.state(task_id).status == "running" and time.monotonic() < deadline:
        gevent.sleep(0.05)
    assert tasks.state(task_id).status == "done"


def test_cancel_stops_a_local_demo_task_at_once(broker):
    tasks = Tasks(broker, lease_seconds=30)
    task_id = tasks.start_demo(steps=5, step_ms=10_000)
    gevent.sleep(0.01)
    assert tasks.cancel(task_id).status == "cancelled"
    gevent.sleep(0.01)
    assert task_id not in tasks._running
    with pytest.raises(UnknownTask):
        tasks.cancel("c" * 32)


def test_a_watch_checks_the_lease_while_the_task_is_quiet(broker):
    from streaming.cancellation import Cancellation

    tasks = Tasks(broker, lease_seconds=0.3)
    reporter = TaskReporter(broker=broker, lease_seconds=0.3)
    reporter.start(steps=3)
    watch = tasks.watch(reporter.id, None)
    began = time.monotonic()
    batches = [b for b in watch.batches(None, Cancellation()) if isinstance(b, list)]
    assert [[e.event for e in b] for b in batches] == [["progress"], ["failed"]]
    assert time.monotonic() - began < 3
