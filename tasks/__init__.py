"""Long tasks whose progress streams to any viewer: demo tasks in the server, real jobs in RQ or
Celery reporting through `TaskReporter`; all state lives in the broker."""

from .reporter import TaskReporter
from .service import (
    STEP_MS_DEFAULT,
    STEP_MS_MAX,
    STEPS_DEFAULT,
    STEPS_MAX,
    Tasks,
    TaskWatch,
    UnknownTask,
)
from .state import TaskState, is_task_id, new_task_id

__all__ = ["STEPS_DEFAULT", "STEPS_MAX", "STEP_MS_DEFAULT", "STEP_MS_MAX", "TaskReporter",
           "TaskState", "TaskWatch", "Tasks", "UnknownTask", "is_task_id", "new_task_id"]
