"""Errors as every blueprint answers them: `{"error": {"type", "message"[, "param"]}}`.

Also the two refusals the guards share with the OpenAI-compatible routes (which reword them in
OpenAI's shape, `openai_errors.py`): a stream over its limit, a body over its size.
"""

from __future__ import annotations

from flask import Response, jsonify, request

from generation.backends import ModelError
from streaming.encoding import compact_json
from streaming.limits import SERVER, StreamLimitReached


class ApiError(Exception):
    """An error answered as `{"error": {"type", "message"[, "param"]}}` with `status`."""

    def __init__(self, status: int, type_: str, message: str, param: str | None = None,
                 headers: dict[str, str] | None = None, **details: object) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.param = param
        self.headers = headers or {}
        self.details = details  # more members of the error object (`upstream_status`)

    def response(self) -> Response:
        error = {"type": self.type, "message": self.message}
        if self.param is not None:
            error["param"] = self.param
        error.update(self.details)
        response = jsonify(error=error)
        response.status_code = self.status
        response.headers.update(self.headers)
        return response


def model_error(error: ModelError) -> ApiError:
    """A model's refusal before anything streamed, as our error (its Retry-After kept)."""
    headers = {"Retry-After": error.retry_after} if error.retry_after else None
    details = {} if error.upstream_status is None else {"upstream_status": error.upstream_status}
    return ApiError(error.status, error.type, error.message, headers=headers, **details)


def json_response(body: dict, status: int = 200) -> Response:
    """`body` as JSON in its own key order (Flask's jsonify would sort the keys)."""
    return Response(compact_json(body), status, mimetype="application/json")


def stream_limit_error(error: StreamLimitReached) -> ApiError:
    """A refused stream: 503 when the worker is full, 429 when this client has its share."""
    headers = {"Retry-After": str(error.retry_after)}
    if error.scope == SERVER:
        return ApiError(503, "server_busy", str(error), headers=headers)
    return ApiError(429, "too_many_streams", str(error), headers=headers)


def body_too_large() -> ApiError:
    """A body over this route's limit (`request.max_content_length`)."""
    limit = request.max_content_length
    return ApiError(413, "request_too_large", f"the request body is larger than {limit} bytes")
