"""The OpenAPI 3.1 document of the HTTP API, served at `GET /openapi.json`.

Built here from the features' own limits (PROMPT_MAX_CHARS, TOKENS_MAX, ...), so the document
cannot drift from what the validators accept; `tests/test_openapi.py` checks that every route
of the app is in it and fuzzes every operation against the real server (schemathesis).

WebSocket routes are described as the GET that starts their handshake: `101` with the upgrade,
or a JSON error without it. The message protocol after the upgrade is in the README.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from generation.params import (
    DELAY_MS_DEFAULT,
    DELAY_MS_MAX,
    PROMPT_MAX_CHARS,
    TOKENS_DEFAULT,
    TOKENS_MAX,
)

from .mock_openai import ALL_METHODS

bp = Blueprint("openapi", __name__)

JSON = "application/json"


def _ref(kind: str, name: str) -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _errors(*statuses: int, shape: str = "Error") -> dict:
    """Responses for the given error statuses, in our shape or OpenAI's."""
    described = {}
    for status in statuses:
        name = f"{shape}{status}"
        described[str(status)] = _ref("responses", name)
    return described


ERROR_CASES = {
    400: "A missing, mistyped or out-of-range parameter, or a body that is not JSON.",
    401: "A missing or wrong API key (only when UPSTREAM_API_KEY is set).",
    403: "A WebSocket handshake from an origin that is not allowed.",
    404: "No such path.",
    405: "The path exists, the method does not (the Allow header lists those that do).",
    413: "A request body over the limit.",
    414: "A request line over 8190 bytes (gunicorn's limit): send a long prompt by POST.",
    415: "A body that is not application/json.",
    429: "This client address holds its share of streams (MAX_STREAMS_PER_CLIENT).",
    502: "The upstream could not be reached.",
    503: "The worker holds MAX_STREAMS streams.",
    504: "The upstream did not answer in time.",
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again.",
                               "schema": {"type": "integer", "minimum": 1}}}


def _error_responses() -> dict:
    responses = {}
    for shape in ("Error", "OpenAIError"):
        for status, description in ERROR_CASES.items():
            response = _json(_ref("schemas", shape), description)
            if status in (429, 503):
                response["headers"] = RETRY_AFTER
            responses[f"{shape}{status}"] = response
    return responses


def _integer(description: str, low: int, high: int, default: int) -> dict:
    return {"type": "integer", "minimum": low, "maximum": high, "default": default,
            "description": description}


def _or_null(schema: dict) -> dict:
    """A JSON body field where null means the default, as if it were absent."""
    return {**schema, "type": [schema["type"], "null"]}


PROMPT = {"type": "string", "minLength": 1, "maxLength": PROMPT_MAX_CHARS,
          "description": "What the demo model answers."}
TOKENS = _integer("How many tokens to generate.", 1, TOKENS_MAX, TOKENS_DEFAULT)
DELAY_MS = _integer("Milliseconds between tokens.", 0, DELAY_MS_MAX, DELAY_MS_DEFAULT)
TOKEN_INDEX = {"type": "string", "pattern": "^[0-9]*$",
               "description": "The index of the last token the client has: resume after it "
                              "(empty: from the start). It must be below `tokens`."}
# OpenAPI 3.1 reads an event stream's `schema` as the schema of each event, as parsed.
GENERATION_EVENT = {
    "type": "object", "required": ["data"],
    "properties": {"data": {"type": "string"},
                   "event": {"enum": ["message", "start", "end", "error", "restart"]},
                   "id": {"type": "string", "pattern": "^[0-9]+$"},
                   "retry": {"type": "integer", "minimum": 0}}}
CHUNK_EVENT = {"type": "object", "required": ["data"],
               "properties": {"data": {"type": "string"}, "event": {"const": "message"}}}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {
            "type": "object", "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"},
                           "param": {"type": "string"}}}}},
    "OpenAIError": {
        "type": "object", "required": ["error"],
        "properties": {"error": {
            "type": "object", "required": ["message", "type"],
            "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                           "param": {"type": ["string", "null"]},
                           "code": {"type": ["string", "null"]}}}}},
    "Generation": {
        "type": "object", "required": ["prompt"],
        "properties": {"prompt": PROMPT, "tokens": _or_null(TOKENS),
                       "delay_ms": _or_null(DELAY_MS)}},
    "ChatCompletionRequest": {
        "type": "object", "required": ["model", "messages"],
        "description": "OpenAI's chat-completions body; the demo model answers the last user "
                       "message. `delay_ms` is the mock's own extra field.",
        "properties": {
            "model": {"type": "string", "minLength": 1},
            "messages": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["role", "content"],
                "properties": {"role": {"type": "string"},
                               "content": {"type": "string"}}},
                "description": "At least one of them from the user."},
            "stream": {"type": "boolean"},
            "max_tokens": _or_null({"type": "integer", "minimum": 1, "maximum": TOKENS_MAX}),
            "max_completion_tokens": _or_null({"type": "integer", "minimum": 1,
                                               "maximum": TOKENS_MAX}),
            "delay_ms": _or_null({"type": "integer", "minimum": 0, "maximum": DELAY_MS_MAX})}},
}

LAST_EVENT_ID = {"name": "Last-Event-ID", "in": "header", "required": False,
                 "schema": TOKEN_INDEX}
STREAM_REFUSALS = (429, 503)


def _chat_paths() -> dict:
    query = [{"name": name, "in": "query", "required": name == "prompt", "schema": schema}
             for name, schema in (("prompt", PROMPT), ("tokens", TOKENS), ("delay_ms", DELAY_MS),
                                  ("last_event_id", TOKEN_INDEX))]
    fetch = {"text/plain": {"schema": {"type": "string"}},
             "application/x-ndjson": {"schema": {"type": "string"}},
             "text/event-stream": {"schema": GENERATION_EVENT}}
    return {
        "/sse/chat": {"get": {
            "summary": "Stream a generation as server-sent events.",
            "parameters": [*query, LAST_EVENT_ID],
            "responses": {"200": {"description": "The event stream.",
                                  "content": {"text/event-stream": {"schema": GENERATION_EVENT}}},
                          **_errors(400, 414, *STREAM_REFUSALS)}}},
        "/api/chat": {"post": {
            "summary": "Stream a generation for fetch: SSE, NDJSON or plain text, by Accept.",
            "parameters": [LAST_EVENT_ID],
            "requestBody": {"required": True,
                            "content": {JSON: {"schema": _ref("schemas", "Generation")}}},
            "responses": {"200": {"description": "The stream.", "content": fetch},
                          **_errors(400, 413, 415, *STREAM_REFUSALS)}}},
    }


def _websocket(summary: str) -> dict:
    return {"get": {
        "summary": summary + " (a WebSocket handshake; messages are in the README).",
        "responses": {"101": {"description": "Switching to the WebSocket protocol."},
                      **_errors(400, 403, *STREAM_REFUSALS)}}}


def _openai_paths() -> dict:
    chat_body = {"required": True,
                 "content": {JSON: {"schema": _ref("schemas", "ChatCompletionRequest")}}}
    answer = {"description": "A chat.completion object, or chat.completion.chunk events.",
              "content": {JSON: {"schema": {"type": "object"}},
                          "text/event-stream": {"schema": CHUNK_EVENT}}}
    mock_delay = {"name": "X-Mock-Delay-Ms", "in": "header", "required": False,
                  "description": "Read only when the body has no delay_ms; then it must be "
                                 f"an integer from 0 to {DELAY_MS_MAX}.",
                  "schema": {"type": "string"}}
    def unknown(*methods: str) -> dict:
        # OpenAI answers an unknown method like an unknown path: "Invalid URL", 404.
        return {method.lower(): {"summary": "Anything else under /mock/v1/ is OpenAI's 404.",
                                 "responses": _errors(404, shape="OpenAIError")}
                for method in ALL_METHODS if method not in methods}

    proxied = {method.lower(): {
        "summary": "Forwarded to UPSTREAM_BASE_URL; the upstream's answer comes back as is.",
        "requestBody": {"required": False, "content": {JSON: {"schema": {}}}},
        "responses": {"default": {"description": "The upstream's answer, relayed."},
                      **_errors(400, 401, 413, 429, 502, 503, 504, shape="OpenAIError")}}
        for method in ALL_METHODS}
    path = {"name": "path", "in": "path", "required": True,
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_~-]+$"}}
    # Any name but the mock's own routes'.
    unknown_path = {**path, "schema": {"type": "string", "pattern": "^(?!models$)[A-Za-z0-9_~-]+$"}}
    return {
        "/mock/v1/models": {**unknown("GET", "HEAD", "OPTIONS"), "get": {
            "summary": "The mock upstream's models: `demo`.",
            "responses": {"200": _json({"type": "object"}, "A model list.")}}},
        "/mock/v1/chat/completions": {**unknown("POST", "OPTIONS"), "post": {
            "summary": "The mock upstream's chat completions, streamed or whole.",
            "parameters": [mock_delay], "requestBody": chat_body,
            "responses": {"200": answer,
                          **_errors(400, 413, 415, *STREAM_REFUSALS, shape="OpenAIError")}}},
        "/mock/v1/{path}": {"parameters": [unknown_path], **unknown()},
        "/v1/{path}": {"parameters": [path], **proxied},
    }


def _page(summary: str, media: str) -> dict:
    return {"get": {"summary": summary,
                    "responses": {"200": {"description": summary,
                                          "content": {media: {"schema": {"type": "string"}}}}}}}


def document() -> dict:
    """The whole OpenAPI 3.1 document."""
    static = _page("A static file of the page (CSS, JavaScript modules).", "*/*")
    static["get"]["parameters"] = [{"name": "filename", "in": "path", "required": True,
                                    "schema": {"type": "string"}}]
    static["get"]["responses"].update(_errors(404))
    return {
        "openapi": "3.1.0",
        "info": {"title": "Streaming output service", "version": "1.0.0",
                 "description": "Token streams over SSE, fetch and WebSocket, and an "
                                "OpenAI-compatible proxy with a mock upstream."},
        "paths": {
            **_chat_paths(),
            "/ws/chat": _websocket("Interruptible generations"),
            "/ws/tts": _websocket("Speech as binary PCM frames"),
            **_openai_paths(),
            "/healthz": {"get": {"summary": "Liveness, and whether gevent patched the worker.",
                                 "responses": {"200": _json({"type": "object"}, "Healthy.")}}},
            "/metrics": _page("Prometheus metrics of every worker.", "text/plain"),
            "/": _page("The playground page.", "text/html"),
            "/static/{filename}": static,
            "/openapi.json": {"get": {"summary": "This document.",
                                      "responses": {"200": _json({"type": "object"}, "It.")}}},
        },
        "components": {"schemas": SCHEMAS, "responses": _error_responses()},
    }


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(document())
