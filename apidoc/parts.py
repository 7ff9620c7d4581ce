"""What the OpenAPI document is built of: error responses, schemas, shared helpers."""

from __future__ import annotations

from typing import Any

from generation.params import (
    DELAY_MS_DEFAULT,
    DELAY_MS_MAX,
    TEXT_MAX_CHARS,
    TOKENS_DEFAULT,
    TOKENS_MAX,
)

JSON = "application/json"


def ref(kind: str, name: str) -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def json_content(schema: dict, description: str) -> dict:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def errors(*statuses: int, shape: str = "Error") -> dict:
    """Responses for the given error statuses, in our shape or OpenAI's."""
    described = {}
    for status in statuses:
        name = f"{shape}{status}"
        described[str(status)] = ref("responses", name)
    return described


ERROR_CASES = {
    400: "A missing, mistyped or out-of-range parameter, or a body that is not JSON.",
    401: "A missing or wrong API key (proxy, with UPSTREAM_API_KEY) or publish token.",
    403: "An origin that is not listed (a WebSocket handshake, a CORS preflight), or a "
         "publish from elsewhere than loopback without PUBLISH_TOKEN.",
    404: "No such path.",
    405: "The path exists, the method does not (the Allow header lists those that do).",
    409: "The task already ended.",
    413: "A request body over the limit.",
    414: "A request line over 8190 bytes (gunicorn's limit): send a long prompt by POST.",
    415: "A body that is not application/json.",
    429: "This client address holds its share of streams (MAX_STREAMS_PER_CLIENT).",
    502: "The upstream could not be reached.",
    503: "The worker holds MAX_STREAMS streams, or the broker (Redis) is unreachable.",
    504: "The upstream did not answer in time.",
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again.",
                               "schema": {"type": "integer", "minimum": 1}}}


def error_responses() -> dict:
    responses = {}
    for shape in ("Error", "OpenAIError"):
        for status, description in ERROR_CASES.items():
            response = json_content(ref("schemas", shape), description)
            if status in (429, 503):
                response["headers"] = RETRY_AFTER
            responses[f"{shape}{status}"] = response
    return responses


def integer_schema(description: str, low: int, high: int, default: int) -> dict:
    return {"type": "integer", "minimum": low, "maximum": high, "default": default,
            "description": description}


def or_null(schema: dict) -> dict:
    """A JSON body field where null means the default, as if it were absent."""
    return {**schema, "type": [schema["type"], "null"]}


PROMPT = {"type": "string", "minLength": 1, "maxLength": TEXT_MAX_CHARS,
          "description": "What the demo model answers."}
TOKENS = integer_schema("How many tokens to generate.", 1, TOKENS_MAX, TOKENS_DEFAULT)
DELAY_MS = integer_schema("Milliseconds between tokens.", 0, DELAY_MS_MAX, DELAY_MS_DEFAULT)
MESSAGES = {"type": "array", "minItems": 1, "maxItems": 100, "items": {
    "type": "object", "required": ["role", "content"],
    "properties": {"role": {"enum": ["system", "user", "assistant", "developer", "tool"]},
                   "content": {"type": ["string", "array"]}}},
    "description": f"At least one from the user; at most {TEXT_MAX_CHARS} characters of text "
                   "in all. The demo model answers the last user message."}
TOKEN_INDEX = {"type": "string", "pattern": "^[0-9]*$",
               "description": "The index of the last token the client has: resume after it "
                              "(empty: from the start). It must be below `tokens`."}
# OpenAPI 3.1 reads an event stream's `schema` as the schema of each event, as parsed.
GENERATION_EVENT = {
    "type": "object", "required": ["data"],
    "properties": {"data": {"type": "string"},
                   "event": {"enum": ["message", "start", "end", "error", "restart",
                                      "reset"]},
                   "id": {"type": "string",
                          "pattern": "^([0-9]+|[0-9a-f]{32}(:[0-9]+)?)$"},
                   "retry": {"type": "integer", "minimum": 0}}}
SSE_EVENT = {"type": "object", "required": ["data"],
             "properties": {"data": {"type": "string"}, "event": {"type": "string"},
                            "id": {"type": "string"}, "retry": {"type": "integer"}}}
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
        "type": "object",
        "description": "`prompt`, or OpenAI's `messages` instead (not both); `delay_ms` is "
                       "the demo backend's.",
        "oneOf": [{"required": ["prompt"]}, {"required": ["messages"]}],
        "properties": {"prompt": PROMPT, "messages": MESSAGES, "tokens": or_null(TOKENS),
                       "delay_ms": or_null(DELAY_MS)}},
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
            "max_tokens": or_null({"type": "integer", "minimum": 1, "maximum": TOKENS_MAX}),
            "max_completion_tokens": or_null({"type": "integer", "minimum": 1,
                                               "maximum": TOKENS_MAX}),
            "delay_ms": or_null({"type": "integer", "minimum": 0, "maximum": DELAY_MS_MAX})}},
}


def page(summary: str, media: str) -> dict:
    return {"get": {"summary": summary,
                    "responses": {"200": {"description": summary,
                                          "content": {media: {"schema": {"type": "string"}}}}}}}
