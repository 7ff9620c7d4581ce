"""Jobs a real RQ worker runs in the tests, reporting through TaskReporter as
docs/channels-and-tasks.md shows."""

from __future__ import annotations

import time

from tasks import TaskReporter


def count_to(task_id: str, steps: int) -> int:
    """Report each step of a short count, then the total as the result."""
    with TaskReporter(task_id) as reporter:
        for step in range(1, steps + 1):
            time.sleep(0.05)
            if not reporter.progress(step, f"counted {step}"):
                return step  # cancelled meanwhile
        reporter.done({"counted": steps})
    return steps


def break_at(task_id: str, step: int) -> None:
    """Fail part-way: the reporter ends the task as failed, naming only the exception type."""
    with TaskReporter(task_id) as reporter:
        reporter.progress(step, "about to break")
        raise ValueError("internal detail that must not reach the watchers")
