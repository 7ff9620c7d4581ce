"""`TaskReporter`: how work done anywhere tells `/sse/tasks/<id>` its progress and its end.

The demo task uses it in a greenlet of the server; an RQ or Celery job uses it the same way in
its own process (it then reaches the broker of REDIS_URL, and needs no gevent; in a view it
uses the app's broker):

    reporter = TaskReporter(lease_seconds=600)    # in the view: a new task id, and a lease
    reporter.start(steps=10, message="queued")    # that covers the wait in the queue
    queue.enqueue(resize_images, reporter.id)

    def resize_images(task_id):                   # in the job
        with TaskReporter(task_id) as reporter:   # an exception ends the task as `failed`
            for step in range(1, 11):
                ...
                if not reporter.progress(step, f"image {step}"):
                    return                        # cancelled (DELETE /api/tasks/<id>)
            reporter.done({"images": 10})

While it works the reporter holds a lease, renewed by every report: a task whose reporter goes
silent for `lease_seconds` (its process died) is reported `failed`. Work with longer steps calls
`renew()` in between. Not shared between greenlets or threads.
"""

from __future__ import annotations

import json
import time
from types import TracebackType
from typing import Any

from broker import Broker, current_broker

from .state import CANCELLED, DONE, FAILED, ending_data, lease, new_task_id, progress_data, topic

DEFAULT_LEASE_SECONDS = 30.0
RETAIN_SECONDS = 3600.0
"""How long an ended task's events stay readable."""


class TaskReporter:
    """Publishes the progress and the end of task `task_id` (a new id if None)."""

    def __init__(self, task_id: str | None = None, *, broker: Broker | None = None,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self.id = task_id or new_task_id()
        self.broker = broker or current_broker()
        self.lease_seconds = lease_seconds
        self.steps = 0
        self._renewed_at = float("-inf")

    def start(self, steps: int, message: str = "started") -> bool:
        """Create the task at step 0 of `steps`; False if it already ended."""
        self.steps = steps
        self.renew()
        return self._publish("progress", progress_data(0, steps, message))

    def progress(self, step: int, message: str = "", *, steps: int | None = None) -> bool:
        """Report `step` of `steps`; False if the task already ended (stop working)."""
        self.steps = steps or self.steps or self._started_steps()
        if time.monotonic() - self._renewed_at > self.lease_seconds / 3:
            self.renew()
        return self._publish("progress", progress_data(step, self.steps, message))

    def _started_steps(self) -> int:
        """The steps the task was started with, wherever that was (a job reporting on a task
        the view started)."""
        for event in self.broker.latest(topic(self.id), 2):
            if event.event == "progress":
                return json.loads(event.data)["steps"]
        raise ValueError(f"task {self.id} was not started: call start(steps) first")

    def renew(self) -> None:
        """Renew the lease: the task is alive for `lease_seconds` more."""
        self.broker.lease(lease(self.id), self.lease_seconds)
        self._renewed_at = time.monotonic()

    def done(self, result: Any = None) -> bool:
        """End the task with `result` (any JSON value); False if it had already ended."""
        return self._end(DONE, result)

    def fail(self, message: str) -> bool:
        """End the task as failed, with a message for its watchers."""
        return self._end(FAILED, message)

    def cancel(self, message: str = "cancelled") -> bool:
        return self._end(CANCELLED, message)

    def _end(self, status: str, value: Any) -> bool:
        ended = self._publish(status, ending_data(status, value), final=True)
        self.broker.release(lease(self.id))
        return ended

    def _publish(self, event: str, data: str, final: bool = False) -> bool:
        event_id = self.broker.publish_open(topic(self.id), event, data, final=final,
                                            retain_seconds=RETAIN_SECONDS if final else None)
        return event_id is not None

    def __enter__(self) -> TaskReporter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        # The watchers see which exception, never its text (it may hold internal detail).
        if kind is not None:
            self.fail(f"the job raised {kind.__name__}")
