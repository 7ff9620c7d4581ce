"""An OpenAI-compatible upstream backed by the demo model (`/mock/v1/...`), so all runs offline.

`GET /mock/v1/models` and `POST /mock/v1/chat/completions` (streamed or whole); the wire shapes
and how a chat request maps onto the demo model are in `streaming/openai_wire.py`. Every error
under `/mock/v1/` is in OpenAI's shape.
"""

from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from generation.schedule import schedule
from llm.openai_wire import (
    ChatChunkFormat,
    OpenAIError,
    completion,
    models,
    parse_chat_request,
)
from streaming.cancellation import Cancellation
from streaming.encoding import compact_json
from streaming.limits import StreamLimitReached
from streaming.pipeline import watching
from streaming.sources import PacedSource

from .common import ApiError, json_object, stream_response
from .guards import body_too_large, stream_limit_error

bp = Blueprint("mock_openai", __name__, url_prefix="/mock/v1")

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# The status nginx logs for a client that left before the answer: nobody reads this one.
CLIENT_CLOSED = 499


def openai_json(body: dict, status: int = 200) -> Response:
    """JSON in OpenAI's field order (Flask's jsonify would sort the keys)."""
    return Response(compact_json(body), status, mimetype="application/json")


@bp.errorhandler(OpenAIError)
def openai_error(error: OpenAIError) -> Response:
    return openai_json(error.body(), error.status)


@bp.errorhandler(ApiError)
def api_error(error: ApiError) -> Response:
    # json_object()'s 400 and 415 and the guards' errors, in OpenAI's shape.
    response = openai_error(OpenAIError(error.status, error.message, param=error.param))
    response.headers.update(error.headers)
    return response


def openai_guard_errors(blueprint: Blueprint | Flask) -> None:
    """Answer the guards' refusals (stream limits, body size) in OpenAI's shape."""
    blueprint.register_error_handler(
        StreamLimitReached, lambda error: api_error(stream_limit_error(error)))
    blueprint.register_error_handler(
        RequestEntityTooLarge, lambda error: api_error(body_too_large()))


openai_guard_errors(bp)


@bp.before_request
def _upstream_body_limit() -> None:
    # A stand-in for the upstream behind the proxy takes what the proxy forwards.
    request.max_content_length = current_app.config["PROXY_MAX_BODY"]


@bp.get("/models")
def list_models():
    return openai_json(models())


@bp.post("/chat/completions")
def chat_completions():
    chat = parse_chat_request(json_object(), request.headers.get("X-Mock-Delay-Ms"))
    if chat.stream:
        return stream_response(PacedSource(schedule(chat.params)), ChatChunkFormat(chat), "mock")
    if not _generated(chat.params.tokens * chat.params.delay_ms / 1000):
        return Response(status=CLIENT_CLOSED)
    return openai_json(completion(chat))


@bp.route("/<path:path>", methods=ALL_METHODS)
def unknown(path: str):
    raise OpenAIError(404, f"Invalid URL ({request.method} {request.path})")


def _generated(seconds: float) -> bool:
    """Take as long as the streamed answer would; False if the client left meanwhile.

    Counted as a `mock` stream while it runs, so /metrics shows a non-streaming call being cut
    just as it shows a stream being cut.
    """
    metrics = current_app.extensions["metrics"]
    metrics.started("mock")
    began = time.monotonic()
    with watching(request.environ, Cancellation()) as cancellation:
        left = cancellation.wait(seconds)
    metrics.ended("mock", time.monotonic() - began, left)
    return not left
