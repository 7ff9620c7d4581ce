"""What every request passes, whatever its blueprint: stream slots and the body size limit.

`init_app(app)` installs them. Streams take their slot in `common.stream_response` (or earlier,
where a view must refuse before it does work: the proxy before asking its upstream, WebSocket
before the upgrade); the refusal is a 503 (`server_busy`, the worker is full) or a 429
(`too_many_streams`, this client address holds its share), with Retry-After. A body larger than
MAX_BODY_BYTES is refused with a 413 when it is read, whether it declared its length or came
chunked; the OpenAI-compatible routes accept PROXY_MAX_BODY instead and answer in OpenAI's shape
(`mock_openai.openai_guard_errors`).
"""

from __future__ import annotations

from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge

from streaming.limits import SERVER, StreamLimitReached, StreamSlots

from .common import ApiError, release_unclaimed_slot


def stream_limit_error(error: StreamLimitReached) -> ApiError:
    headers = {"Retry-After": str(error.retry_after)}
    if error.scope == SERVER:
        return ApiError(503, "server_busy", str(error), headers=headers)
    return ApiError(429, "too_many_streams", str(error), headers=headers)


def body_too_large() -> ApiError:
    limit = request.max_content_length
    return ApiError(413, "request_too_large", f"the request body is larger than {limit} bytes")


def init_app(app: Flask) -> None:
    """Stream slots (MAX_STREAMS, MAX_STREAMS_PER_CLIENT) and the body limit (MAX_BODY_BYTES)."""
    config = app.config
    app.extensions["slots"] = StreamSlots(config["MAX_STREAMS"], config["MAX_STREAMS_PER_CLIENT"])
    config["MAX_CONTENT_LENGTH"] = config["MAX_BODY_BYTES"]
    app.teardown_request(release_unclaimed_slot)
    app.register_error_handler(StreamLimitReached,
                               lambda error: stream_limit_error(error).response())
    app.register_error_handler(RequestEntityTooLarge, lambda error: body_too_large().response())
