"""What every request passes, whatever its blueprint: stream slots, the body limit and CORS.

`init_app(app)` installs them. Streams take their slot in `responses.stream_response` (or earlier,
where a view must refuse before it does work: the proxy before asking its upstream, WebSocket
before the upgrade); the refusal is a 503 (`server_busy`, the worker is full) or a 429
(`too_many_streams`, this client address holds its share), with Retry-After. A body larger than
MAX_BODY_BYTES is refused with a 413 when it is read, whether it declared its length or came
chunked; the OpenAI-compatible routes accept PROXY_MAX_BODY instead and answer in OpenAI's shape
(`openai_errors.openai_guard_errors`). CORS follows `http_policy/cors.py`: preflights are answered
before any view (so never forwarded upstream by the proxy), grants added to every response.
"""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from http_policy.cors import CorsPolicy
from services import services
from streaming.limits import StreamLimitReached

from .errors import ApiError, body_too_large, stream_limit_error
from .slots import release_unclaimed_slot


def answer_preflight() -> Response | None:
    """A CORS preflight's answer (before_request): 204 with the grant, or a 403."""
    cors = services().cors
    origin = request.headers.get("Origin")
    requested = request.headers.get("Access-Control-Request-Method")
    if not CorsPolicy.is_preflight(request.method, origin, requested):
        return None
    headers = cors.preflight_headers(origin, requested or "")
    if headers is None:
        return ApiError(403, "forbidden", "cross-origin requests from this origin, or with "
                                          "this method, are not allowed").response()
    response = Response(status=204, headers=headers)
    response.vary.add("Origin")
    return response


def grant_cross_origin(response: Response) -> Response:
    """Add the CORS grant for a listed origin, and `Vary: Origin` while CORS is on."""
    cors = services().cors
    if cors.enabled:
        response.headers.update(cors.response_headers(request.headers.get("Origin")))
        response.vary.add("Origin")
    return response


def init_app(app: Flask) -> None:
    """The guards around the app's stream slots and CORS policy (built with its `Services`):
    slot release and refusals, the body limit (MAX_BODY_BYTES), preflights and grants."""
    config = app.config
    config["MAX_CONTENT_LENGTH"] = config["MAX_BODY_BYTES"]
    app.teardown_request(release_unclaimed_slot)
    app.register_error_handler(StreamLimitReached,
                               lambda error: stream_limit_error(error).response())
    app.register_error_handler(RequestEntityTooLarge, lambda error: body_too_large().response())
    app.before_request(answer_preflight)
    app.after_request(grant_cross_origin)
