"""Token generation over SSE (`GET /sse/chat`) and fetch streams (`POST /api/chat`).

With the demo backend a stream is computed as it goes (and resumed by recomputing it from its
token index). With the upstream backend each stream is a generation (`generations`), so a
client that lost its connection resumes the same answer with the last id it had,
`<generation>:<index>`, on any worker, while the model keeps answering for the grace period.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, current_app, request

from auth import CHAT, new_owned_id
from generation.formats import NDJSONFormat, SSEFormat, TextFormat
from generation.params import GenerationParams, parse_generation, parse_last_event_id
from generation.schedule import schedule
from generations import EXPIRED, GenerationView, UnknownGeneration, parse_resume_id
from llm.mock_address import self_base_url
from services import services
from streaming.pipeline import Format
from streaming.sources import PacedSource

from .access import current_grant, owner, require_scope
from .bodies import json_object, last_event_id
from .errors import model_error
from .responses import stream_response

bp = Blueprint("chat", __name__)

# The first is the fallback for */*, a missing Accept or one we cannot serve.
FETCH_FORMATS = ("text/plain", "text/event-stream", "application/x-ndjson")


FORMATS: dict[str, tuple[Callable[..., Format], str]] = {
    "text/event-stream": (lambda **ids: SSEFormat(current_app.config["SSE_RETRY_MS"], **ids),
                          "sse"),
    "application/x-ndjson": (lambda **ids: NDJSONFormat(), "ndjson"),
    "text/plain": (lambda **ids: TextFormat(), "text"),
}


def _upstream_backend() -> bool:
    return current_app.config["CHAT_BACKEND"] == "upstream"


def _demo(params: GenerationParams, wanted: str, raw_id: str | None):
    # SSE ids and NDJSON `index`es are token indexes: either resumes after a restart.
    after = parse_last_event_id(raw_id, params.tokens)
    make, transport = FORMATS[wanted]
    return stream_response(PacedSource(schedule(params, after)), make(), transport)


def _answer(params: GenerationParams, wanted: str, raw_id: str | None):
    """The stream of a generation: a new one, or the one `raw_id` names, resumed."""
    make, transport = FORMATS[wanted]
    if raw_id:
        generation, after = parse_resume_id(raw_id)
        try:
            if not current_grant().owns(generation):
                raise UnknownGeneration(generation)
            view = services().generations.watch(generation, after)
        except UnknownGeneration:
            return stream_response(PacedSource([(0.0, EXPIRED)]), make(generation=generation),
                                   transport)
        if view is None:
            return Response(status=204)  # it had the end: nothing will ever follow
        return stream_response(view, make(generation=generation), transport)
    # Plain text has no ids to resume from: its answer stops the moment its reader leaves.
    view = start_watched(params, resumable=transport != "text")
    return stream_response(view, make(generation=view.id), transport)


def start_watched(params: GenerationParams, *, resumable: bool) -> GenerationView:
    """A new generation of this worker and its first viewer, once the model began answering;
    the model's refusal is raised as our error (nothing has been sent yet)."""
    generations = services().generations
    run = generations.start(params, self_base_url(request.environ), graced=True,
                            resumable=resumable, id_=new_owned_id(owner()))
    run.joined()  # the client is its viewer from now: the grace must not start without it
    try:
        refused = run.opened.get()
        if refused is not None:
            raise model_error(refused)
        return generations.watch(run.id, None, counted=run)
    except BaseException:
        run.left()
        raise


@bp.get("/sse/chat")
def sse_chat():
    require_scope(CHAT)
    params = parse_generation(request.args, from_text=True)
    # The header wins (a reconnecting EventSource's is newer than the URL's), but a malformed
    # `?last_event_id=` is refused all the same.
    from_url = request.args.get("last_event_id")
    if _upstream_backend():
        if from_url:
            parse_resume_id(from_url)
        return _answer(params, "text/event-stream", last_event_id())
    parse_last_event_id(from_url, params.tokens)
    return _demo(params, "text/event-stream", last_event_id())


@bp.post("/api/chat")
def api_chat():
    require_scope(CHAT)
    params = parse_generation(json_object())
    wanted = request.accept_mimetypes.best_match(FETCH_FORMATS) or FETCH_FORMATS[0]
    raw_id = request.headers.get("Last-Event-ID")
    if _upstream_backend():
        return _answer(params, wanted, raw_id)
    return _demo(params, wanted, raw_id)
