"""Tests for llm.wire: OpenAI's error body and the records that end a failed stream."""

from __future__ import annotations

import json

from llm.wire import DONE, OpenAIError, error_event
from streaming.failure import Failure


def test_error_body_has_openais_fields_in_order():
    error = OpenAIError(401, "Incorrect API key provided.", code="invalid_api_key")
    assert json.dumps(error.body()) == (
        '{"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error", '
        '"param": null, "code": "invalid_api_key"}}')


def test_error_event_is_an_openai_error_then_done():
    assert error_event(Failure("upstream_timeout", "too slow")) == (
        b'data: {"error":{"message":"too slow","type":"server_error","param":null,'
        b'"code":"upstream_timeout"}}\n\n' + DONE)
