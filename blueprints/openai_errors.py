"""Errors in OpenAI's shape, for the OpenAI-compatible blueprints only (proxy and mock).

`{"error": {"message", "type", "param", "code"}}` as `llm.wire.OpenAIError` words it; the guards'
refusals (stream limits, body size) are reworded into it, their headers kept.
"""

from __future__ import annotations

from flask import Blueprint, Response
from werkzeug.exceptions import RequestEntityTooLarge

from llm.wire import OpenAIError
from streaming.limits import StreamLimitReached

from .errors import ApiError, body_too_large, json_response, stream_limit_error

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
"""Every method a catch-all under an OpenAI-compatible prefix takes: relayed, or refused."""


def openai_error(error: OpenAIError) -> Response:
    """An OpenAIError answered as OpenAI does: its status, `{"error": {message, type, ...}}`."""
    return json_response(error.body(), error.status)


def openai_refusal(error: ApiError) -> Response:
    """An ApiError in OpenAI's shape, its headers (Retry-After) kept."""
    response = openai_error(OpenAIError(error.status, error.message, param=error.param))
    response.headers.update(error.headers)
    return response


def openai_guard_errors(blueprint: Blueprint) -> None:
    """Answer the guards' refusals (stream limits, body size) in OpenAI's shape."""
    blueprint.register_error_handler(
        StreamLimitReached, lambda error: openai_refusal(stream_limit_error(error)))
    blueprint.register_error_handler(
        RequestEntityTooLarge, lambda error: openai_refusal(body_too_large()))
