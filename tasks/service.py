"""`Tasks`: start demo tasks in this worker, and answer for any task from the broker.

A demo task runs in a greenlet of the worker that accepted it, whether anyone watches or not,
and reports through a `TaskReporter` like any job. Reading a task's state (or watching it idle)
also settles a task whose runner died: its lease expired without an end, so it is ended as
`failed` there and then, atomically, whichever worker or instance notices first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import suppress

import gevent

from broker import Broker, BrokerUnavailable, Subscription, parse_id
from streaming.cancellation import Cancellation
from streaming.sources import IDLE

from .reporter import RETAIN_SECONDS, TaskReporter
from .state import FAILED, RUNNING, TaskState, ending_data, lease, task_state, topic

log = logging.getLogger(__name__)

ORPHANED = "the worker running the task stopped"


class UnknownTask(LookupError):
    """No task has this id (or it ended longer ago than it is retained)."""



STEPS_DEFAULT, STEPS_MAX = 20, 10_000
STEP_MS_DEFAULT, STEP_MS_MAX = 250, 60_000
"""What a demo task may be asked for: its steps, and the milliseconds each takes."""

class Tasks:
    """The tasks of one app: `lease_seconds` bounds how long a dead runner's task looks alive."""

    def __init__(self, broker: Broker, lease_seconds: float) -> None:
        self.broker = broker
        self.lease_seconds = lease_seconds
        self._running: dict[str, Cancellation] = {}

    def start_demo(self, steps: int, step_ms: int, task_id: str | None = None) -> str:
        """Start a demo task of `steps` steps `step_ms` apart in a new greenlet; its id
        (`task_id`, or a new one)."""
        reporter = TaskReporter(task_id, broker=self.broker, lease_seconds=self.lease_seconds)
        reporter.start(steps)
        cancellation = self._running[reporter.id] = Cancellation()
        gevent.spawn(self._run_demo, reporter, step_ms / 1000, cancellation)
        return reporter.id

    def _run_demo(self, reporter: TaskReporter, step_seconds: float,
                  cancellation: Cancellation) -> None:
        try:
            for step in range(1, reporter.steps + 1):
                if self._wait_renewing(reporter, step_seconds, cancellation):
                    return
                if not reporter.progress(step, f"step {step} of {reporter.steps}"):
                    return  # ended elsewhere: cancelled, or failed as orphaned
            reporter.done({"steps": reporter.steps})
        except BrokerUnavailable:
            log.warning("task %s stopped: the broker is unreachable", reporter.id)
        except Exception:
            log.exception("task %s failed", reporter.id)
            reporter.fail("the task failed")
        finally:
            self._running.pop(reporter.id, None)

    def _wait_renewing(self, reporter: TaskReporter, seconds: float,
                       cancellation: Cancellation) -> bool:
        """Wait `seconds`, renewing the lease meanwhile; True if cancelled."""
        if seconds <= 0:  # still let other greenlets run between steps
            return cancellation.wait(0)
        deadline = time.monotonic() + seconds
        renew_every = self.lease_seconds / 3
        while (left := deadline - time.monotonic()) > 0:
            if cancellation.wait(min(left, renew_every)):
                return True
            if deadline - time.monotonic() > 0:
                reporter.renew()
        return False

    def state(self, task_id: str) -> TaskState:
        """The task's state; a running task whose lease expired is ended as failed first."""
        events = self.broker.latest(topic(task_id), 2)
        if not events:
            raise UnknownTask(task_id)
        state = task_state(task_id, events)
        if state.status == RUNNING and self.fail_if_orphaned(task_id):
            state = task_state(task_id, self.broker.latest(topic(task_id), 2))
        return state

    def fail_if_orphaned(self, task_id: str) -> bool:
        """End the task as failed if it has not ended and nobody holds its lease."""
        failed = self.broker.publish_open(topic(task_id), FAILED, ending_data(FAILED, ORPHANED),
                                          final=True, unless_leased=lease(task_id),
                                          retain_seconds=RETAIN_SECONDS)
        return failed is not None

    def cancel(self, task_id: str) -> TaskState:
        """Cancel a running task (at once here; at its next step on another worker)."""
        self.state(task_id)  # UnknownTask, or a dead runner's task settled first
        TaskReporter(task_id, broker=self.broker).cancel("cancelled by a client")
        local = self._running.pop(task_id, None)
        if local is not None:
            local.cancel()
        return self.state(task_id)

    def watch(self, task_id: str, last_id: str | None) -> TaskWatch | None:
        """The task's events for `/sse/tasks/<id>`; None when a client that saw its end
        resumes (nothing will ever follow). A bad `last_id` raises InvalidParameter."""
        subscription = self.broker.subscribe(topic(task_id), last_id, from_latest=True)
        try:
            latest = self.broker.latest(topic(task_id))
        except BrokerUnavailable:
            # Said in band (`event: error`), as for channels: EventSource then retries.
            return TaskWatch(subscription, self, task_id)
        if not latest:
            raise UnknownTask(task_id)
        if last_id and latest[0].final and parse_id(last_id) >= latest[0].key:
            return None
        with suppress(BrokerUnavailable):
            subscription.pin()  # as channels do: nothing after the response's headers is missed
        return TaskWatch(subscription, self, task_id)


class TaskWatch:
    """A task's subscription as a pipeline source that also settles an orphaned task.

    While the task is quiet it checks the lease (at least every third of `lease_seconds`), so
    a watcher sees `failed` within 4/3 of the lease after its runner died.
    """

    def __init__(self, subscription: Subscription, tasks: Tasks, task_id: str) -> None:
        self._subscription = subscription
        self._tasks = tasks
        self._task_id = task_id

    def batches(self, idle: float | None,
                cancellation: Cancellation) -> Iterator[list | object]:
        check_every = self._tasks.lease_seconds / 3
        wait = check_every if idle is None else min(idle, check_every)
        for batch in self._subscription.batches(wait, cancellation):
            if batch is IDLE:
                with suppress(BrokerUnavailable):  # if so, the subscription reports it
                    self._tasks.fail_if_orphaned(self._task_id)  # its `failed` comes next
            yield batch
