"""An OpenAI-compatible upstream backed by the demo model (`/mock/v1/...`), so all runs offline.

`GET /mock/v1/models` and `POST /mock/v1/chat/completions` (streamed or whole); the wire shapes
and how a chat request maps onto the demo model are in `llm/mock.py`. Every error
under `/mock/v1/` is in OpenAI's shape.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from generation.schedule import schedule
from llm.mock import ChatChunkFormat, completion, models, parse_chat_request
from llm.wire import OpenAIError
from services import services
from streaming.cancellation import Cancellation
from streaming.metrics import CountedStream
from streaming.pipeline import watching
from streaming.sources import PacedSource

from .bodies import json_object
from .errors import ApiError, json_response
from .openai_errors import ALL_METHODS, openai_error, openai_guard_errors, openai_refusal
from .responses import CLIENT_CLOSED, stream_response

bp = Blueprint("mock_openai", __name__, url_prefix="/mock/v1")
bp.register_error_handler(OpenAIError, openai_error)


@bp.errorhandler(ApiError)
def api_error(error: ApiError) -> Response:
    # json_object()'s 400 and 415, in OpenAI's shape.
    return openai_refusal(error)


openai_guard_errors(bp)


# Bodies up to MAX_BODY_BYTES, like the other routes that parse JSON, not the relay's
# PROXY_MAX_BODY: json.loads is one C call that would hold the loop ~1 s for 10 MiB.


@bp.get("/models")
def list_models():
    return json_response(models())


@bp.post("/chat/completions")
def chat_completions():
    chat = parse_chat_request(json_object(), request.headers.get("X-Mock-Delay-Ms"))
    if chat.stream:
        return stream_response(PacedSource(schedule(chat.params)), ChatChunkFormat(chat), "mock")
    if not _generated(chat.params.tokens * chat.params.delay_ms / 1000):
        return Response(status=CLIENT_CLOSED)
    return json_response(completion(chat))


@bp.route("/<path:path>", methods=ALL_METHODS)
def unknown(path: str):
    raise OpenAIError(404, f"Invalid URL ({request.method} {request.path})")


def _generated(seconds: float) -> bool:
    """Take as long as the streamed answer would; False if the client left meanwhile.

    Counted as a `mock` stream while it runs, so /metrics shows a non-streaming call being cut
    just as it shows a stream being cut.
    """
    with (watching(request.environ, Cancellation()) as cancellation,
          CountedStream(services().metrics, "mock", cancellation)):
        return not cancellation.wait(seconds)
