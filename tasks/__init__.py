"""Long tasks whose progress streams to any viewer: demo tasks in the server, real jobs in RQ or
Celery reporting through `TaskReporter`; all state lives in the broker."""

from .reporter import TaskReporter
from .service import Tasks, TaskWatch, UnknownTask
from .state import TaskState, is_task_id, new_task_id

__all__ = ["TaskReporter", "TaskState", "TaskWatch", "Tasks", "UnknownTask", "is_task_id",
           "new_task_id"]
