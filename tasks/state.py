"""A task's events and the state read back from them.

A task is the topic `task/<id>`: `progress` events (`{"step","steps","percent","message"}`),
then one final event, `done` (`{"result"}`), `failed` or `cancelled` (`{"message"}`). Its state
is what its last two events say (the last progress, then the end if it ended), so any worker
or instance answers for any task without state of its own.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from broker import Event
from streaming.encoding import compact_json

RUNNING, DONE, FAILED, CANCELLED = "running", "done", "failed", "cancelled"
ENDINGS = (DONE, FAILED, CANCELLED)

_TASK_ID = re.compile(r"[0-9a-f]{32}")


def new_task_id() -> str:
    return uuid.uuid4().hex


def is_task_id(value: str) -> bool:
    return _TASK_ID.fullmatch(value) is not None


def topic(task_id: str) -> str:
    return f"task/{task_id}"


def lease(task_id: str) -> str:
    """The lease its runner holds while it works: expired and not ended means it died."""
    return f"task/{task_id}"


def progress_data(step: int, steps: int, message: str) -> str:
    return compact_json({"step": step, "steps": steps, "percent": step * 100 // steps,
                         "message": message})


def ending_data(status: str, value: Any) -> str:
    """The final event's data: the result of a `done` task, the message of any other end."""
    return compact_json({"result": value} if status == DONE else {"message": value})


@dataclass(frozen=True, slots=True)
class TaskState:
    id: str
    status: str = RUNNING
    step: int = 0
    steps: int = 0
    percent: int = 0
    message: str = ""
    result: Any = None

    def as_json(self) -> dict:
        return asdict(self)

    @property
    def ended(self) -> bool:
        return self.status in ENDINGS


def task_state(task_id: str, events: list[Event]) -> TaskState:
    """The state after `events`, the task's last ones, oldest first."""
    values: dict[str, Any] = {}
    status = RUNNING
    for event in events:
        data = json.loads(event.data)
        if event.event == "progress":
            values.update((k, data[k]) for k in ("step", "steps", "percent", "message"))
        elif event.event in ENDINGS:
            status = event.event
            if status == DONE:
                values.update(result=data.get("result"), percent=100)
            else:
                values["message"] = data.get("message", "")
    return TaskState(task_id, status, **values)
