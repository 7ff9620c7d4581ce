"""Token generation over SSE (`GET /sse/chat`) and fetch streams (`POST /api/chat`)."""

from __future__ import annotations

from flask import Blueprint, current_app, request

from generation.formats import NDJSONFormat, SSEFormat, TextFormat
from generation.params import GenerationParams, parse_generation, parse_last_event_id
from generation.schedule import schedule
from streaming.pipeline import Format
from streaming.sources import PacedSource

from .bodies import json_object, last_event_id
from .responses import stream_response

bp = Blueprint("chat", __name__)

# The first is the fallback for */*, a missing Accept or one we cannot serve.
FETCH_FORMATS = ("text/plain", "text/event-stream", "application/x-ndjson")


def _generate(params: GenerationParams, fmt: Format, transport: str, after: int | None = None):
    return stream_response(PacedSource(schedule(params, after)), fmt, transport)


def _event_stream(params: GenerationParams, after: int | None):
    return _generate(params, SSEFormat(current_app.config["SSE_RETRY_MS"]), "sse", after)


@bp.get("/sse/chat")
def sse_chat():
    params = parse_generation(request.args, from_text=True)
    # The header wins (a reconnecting EventSource's is newer than the URL's), but a malformed
    # `?last_event_id=` is refused all the same.
    parse_last_event_id(request.args.get("last_event_id"), params.tokens)
    after = parse_last_event_id(last_event_id(), params.tokens)
    return _event_stream(params, after)


@bp.post("/api/chat")
def api_chat():
    params = parse_generation(json_object())
    wanted = request.accept_mimetypes.best_match(FETCH_FORMATS) or FETCH_FORMATS[0]
    # SSE ids and NDJSON `index`es are token indexes: either resumes after a restart.
    after = parse_last_event_id(request.headers.get("Last-Event-ID"), params.tokens)
    if wanted == "text/event-stream":
        return _event_stream(params, after)
    if wanted == "application/x-ndjson":
        return _generate(params, NDJSONFormat(), "ndjson", after)
    return _generate(params, TextFormat(), "text", after)
