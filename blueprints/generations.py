"""Generations: `POST /api/generations`, `GET|DELETE /api/generations/<id>`,
`GET /sse/generations/<id>` (SSE, or NDJSON with `Accept: application/x-ndjson`)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request, url_for

from auth import TASKS, new_owned_id
from generation.formats import NDJSONFormat, SSEFormat
from generation.params import parse_generation, parse_token_index
from generations import CANCELLED, Generations, UnknownGeneration, is_generation_id
from llm.mock_address import self_base_url
from services import services

from .access import current_grant, owner, require_scope
from .bodies import json_object, last_event_id
from .errors import ApiError, json_response
from .responses import stream_response

bp = Blueprint("generations", __name__)

VIEW_FORMATS = ("text/event-stream", "application/x-ndjson")


def _generations() -> Generations:
    return services().generations


@bp.errorhandler(UnknownGeneration)
def unknown_generation(error: UnknownGeneration):
    return ApiError(404, "not_found", "no generation has this id").response()


def _known(generation_id: str) -> str:
    """`generation_id` if the bearer may see it; another's is answered as unknown."""
    if not is_generation_id(generation_id) or not current_grant().owns(generation_id):
        raise UnknownGeneration(generation_id)
    return generation_id


@bp.post("/api/generations")
def create():
    require_scope(TASKS)
    params = parse_generation(json_object())
    run = _generations().start(params, self_base_url(request.environ), stored=True,
                               id_=new_owned_id(owner()))
    status_url = url_for(".status", generation_id=run.id)
    body = {"id": run.id, "events_url": url_for(".events", generation_id=run.id),
            "status_url": status_url}
    response = json_response(body, 202)
    response.headers["Location"] = status_url
    return response


@bp.get("/api/generations/<generation_id>")
def status(generation_id: str):
    return json_response(_generations().state(_known(generation_id)).as_json())


@bp.delete("/api/generations/<generation_id>")
def cancel(generation_id: str):
    state = _generations().cancel(_known(generation_id))
    if state.status != CANCELLED:
        raise ApiError(409, "conflict", f"the generation already ended: {state.status}")
    return json_response(state.as_json())


@bp.get("/sse/generations/<generation_id>")
def events(generation_id: str):
    view = _generations().watch(_known(generation_id), parse_token_index(last_event_id()))
    if view is None:
        # 204 tells EventSource to stop reconnecting: this viewer had the end.
        return Response(status=204)
    if request.accept_mimetypes.best_match(VIEW_FORMATS) == "application/x-ndjson":
        return stream_response(view, NDJSONFormat(), "ndjson")
    return stream_response(view, SSEFormat(current_app.config["SSE_RETRY_MS"], end_ids=True),
                           "sse")
