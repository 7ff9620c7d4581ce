"""Long tasks: `POST /api/tasks`, `GET|DELETE /api/tasks/<id>`, `GET /sse/tasks/<id>`."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, url_for

from auth import TASKS, new_owned_id
from broker import EventFormat
from http_policy.validation import integer
from services import services
from tasks import (
    STEP_MS_DEFAULT,
    STEP_MS_MAX,
    STEPS_DEFAULT,
    STEPS_MAX,
    Tasks,
    UnknownTask,
    is_task_id,
)

from .access import current_grant, owner, require_scope
from .bodies import json_object, last_event_id
from .errors import ApiError
from .responses import encoded_sse_response

bp = Blueprint("tasks", __name__)


def _tasks() -> Tasks:
    return services().tasks


@bp.errorhandler(UnknownTask)
def unknown_task(error: UnknownTask):
    return ApiError(404, "not_found", "no task has this id").response()


def _task_id(task_id: str) -> str:
    """`task_id` if it names a task the bearer may see; another's is answered as unknown."""
    if not is_task_id(task_id) or not current_grant().owns(task_id):
        raise UnknownTask(task_id)
    return task_id


@bp.post("/api/tasks")
def start():
    require_scope(TASKS)
    body = json_object() if request.content_length or request.is_json else {}
    steps = integer(body, "steps", STEPS_DEFAULT, 1, STEPS_MAX)
    step_ms = integer(body, "step_ms", STEP_MS_DEFAULT, 0, STEP_MS_MAX)
    task_id = _tasks().start_demo(steps, step_ms, new_owned_id(owner()))
    status_url = url_for(".status", task_id=task_id)
    return jsonify(id=task_id, status_url=status_url,
                   events_url=url_for(".events", task_id=task_id)), 202, {"Location": status_url}


@bp.get("/api/tasks/<task_id>")
def status(task_id: str):
    return jsonify(_tasks().state(_task_id(task_id)).as_json())


@bp.delete("/api/tasks/<task_id>")
def cancel(task_id: str):
    state = _tasks().cancel(_task_id(task_id))
    if state.status != "cancelled":
        raise ApiError(409, "conflict", f"the task already ended: {state.status}")
    return jsonify(state.as_json())


@bp.get("/sse/tasks/<task_id>")
def events(task_id: str):
    source = _tasks().watch(_task_id(task_id), last_event_id())
    if source is None:
        # 204 tells EventSource to stop reconnecting: this client saw the task's end.
        return Response(status=204)
    return encoded_sse_response(source, EventFormat)
