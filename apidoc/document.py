"""The OpenAPI 3.1 document of the HTTP API (`blueprints/openapi.py` serves it).

Built here from the features' own limits (TEXT_MAX_CHARS, TOKENS_MAX, ...), so the document
cannot drift from what the validators accept; `tests/integration/test_openapi.py` checks
that every route of the app is in it and fuzzes every operation against the real server
(schemathesis).

WebSocket routes are described as the GET that starts their handshake: `101` with the upgrade,
or a JSON error without it. The message protocol after the upgrade is in docs/api.md.
"""

from __future__ import annotations

from channels.service import CHANNEL_NAME_MAX, EVENT_NAME_MAX, MAX_BATCH_EVENTS, NAME_CHARACTERS
from generation.params import DELAY_MS_MAX
from logtail.source import OFFSET_MAX_DIGITS, TAIL_DEFAULT, TAIL_MAX
from tasks import STEP_MS_DEFAULT, STEP_MS_MAX, STEPS_DEFAULT, STEPS_MAX

from .parts import (
    CHUNK_EVENT,
    DELAY_MS,
    GENERATION_EVENT,
    JSON,
    PROMPT,
    SCHEMAS,
    SSE_EVENT,
    TOKEN_INDEX,
    TOKENS,
    error_responses,
    errors,
    integer_schema,
    json_content,
    or_null,
    page,
    ref,
)

ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
"""What the catch-all routes (`/v1/...`, `/mock/v1/...`) take."""

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
                          **errors(400, 414, *STREAM_REFUSALS)}}},
        "/api/chat": {"post": {
            "summary": "Stream a generation for fetch: SSE, NDJSON or plain text, by Accept.",
            "parameters": [LAST_EVENT_ID],
            "requestBody": {"required": True,
                            "content": {JSON: {"schema": ref("schemas", "Generation")}}},
            "responses": {"200": {"description": "The stream.", "content": fetch},
                          **errors(400, 413, 415, *STREAM_REFUSALS)}}},
    }


def _websocket(summary: str) -> dict:
    return {"get": {
        "summary": summary + " (a WebSocket handshake; messages are in docs/api.md).",
        "responses": {"101": {"description": "Switching to the WebSocket protocol."},
                      **errors(400, 403, *STREAM_REFUSALS)}}}


def _openai_paths() -> dict:
    chat_body = {"required": True,
                 "content": {JSON: {"schema": ref("schemas", "ChatCompletionRequest")}}}
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
                                 "responses": errors(404, shape="OpenAIError")}
                for method in ALL_METHODS if method not in methods}

    proxied = {method.lower(): {
        "summary": "Forwarded to UPSTREAM_BASE_URL; the upstream's answer comes back as is.",
        "requestBody": {"required": False, "content": {JSON: {"schema": {}}}},
        "responses": {"default": {"description": "The upstream's answer, relayed."},
                      **errors(400, 401, 413, 429, 502, 503, 504, shape="OpenAIError")}}
        for method in ALL_METHODS}
    path = {"name": "path", "in": "path", "required": True,
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_~-]+$"}}
    # Any name but the mock's own routes'.
    unknown_path = {**path, "schema": {"type": "string", "pattern": "^(?!models$)[A-Za-z0-9_~-]+$"}}
    return {
        "/mock/v1/models": {**unknown("GET", "HEAD", "OPTIONS"), "get": {
            "summary": "The mock upstream's models: `demo`.",
            "responses": {"200": json_content({"type": "object"}, "A model list.")}}},
        "/mock/v1/chat/completions": {**unknown("POST", "OPTIONS"), "post": {
            "summary": "The mock upstream's chat completions, streamed or whole.",
            "parameters": [mock_delay], "requestBody": chat_body,
            "responses": {"200": answer,
                          **errors(400, 413, 415, *STREAM_REFUSALS, shape="OpenAIError")}}},
        "/mock/v1/{path}": {"parameters": [unknown_path], **unknown()},
        "/v1/{path}": {"parameters": [path], **proxied},
    }


def _sse(description: str, *statuses: int, parameters: list) -> dict:
    return {"get": {"summary": description, "parameters": parameters, "responses": {
        "200": {"description": "The event stream, until the client leaves.",
                "content": {"text/event-stream": {"schema": SSE_EVENT}}},
        **errors(*statuses)}}}


def _broker_paths() -> dict:
    name = f"^{NAME_CHARACTERS}{{1,{CHANNEL_NAME_MAX}}}$"
    channel = {"name": "name", "in": "path", "required": True,
               "schema": {"type": "string", "pattern": name}}
    event_id = {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {
        "type": "string", "pattern": "^([0-9]{1,20}-[0-9]{1,20})?$",
        "description": "The id of the last event the client has: resume after it."}}
    presence_events = {"name": "presence", "in": "query", "required": False, "schema": {
        "type": "string", "enum": ["1", "0", "true", "false"],
        "description": "1: also send `event: join` / `leave` ({\"sub\"}, no id) as subjects "
                       "come and go, a join for each one present first."}}
    headcount = {"type": "object", "required": ["subscribers", "subjects"], "properties": {
        "subscribers": {"type": "integer", "minimum": 0},
        "subjects": {"type": "array", "items": {"type": "string"}}}}
    task = {"name": "task_id", "in": "path", "required": True,
            "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}
    one_event = {"type": "object", "required": ["data"], "properties": {
        "event": {"type": "string", "pattern": f"^{NAME_CHARACTERS}{{1,{EVENT_NAME_MAX}}}$"},
        "data": {"description": "Any JSON value."}}}
    batch = {"type": "object", "required": ["events"], "additionalProperties": False,
             "properties": {"events": {"type": "array", "items": one_event, "minItems": 1,
                                       "maxItems": MAX_BATCH_EVENTS}}}
    publish = {"oneOf": [{**one_event, "not": {"required": ["events"]}}, batch]}
    published = {"oneOf": [{"type": "object", "required": ["id"]},
                           {"type": "object", "required": ["ids"]}]}
    start = {"type": "object", "properties": {
        "steps": or_null(integer_schema("Steps of the demo task.", 1, STEPS_MAX,
                                        STEPS_DEFAULT)),
        "step_ms": or_null(integer_schema("Milliseconds a step takes.", 0, STEP_MS_MAX,
                                          STEP_MS_DEFAULT))}}
    state = json_content({"type": "object", "required": ["id", "status"]}, "The task's state.")
    watch = _sse("A task's progress events, resumable.", 400, 404, 429, 503,
                 parameters=[task, event_id])
    watch["get"]["responses"]["204"] = {"description": "The client has seen the task's end."}
    return {
        "/sse/channels/{name}": _sse("A channel's events, resumable with Last-Event-ID.", 400,
                                     429, 503, parameters=[channel, event_id, presence_events]),
        "/api/channels/{name}/presence": {"get": {
            "summary": "Open subscriptions to a channel on every worker and instance, and the "
                       "distinct subjects among them.",
            "parameters": [channel],
            "responses": {"200": json_content(headcount, "The channel's presence."),
                          **errors(400, 503)}}},
        "/api/channels/{name}": {"post": {
            "summary": "Publish an event, or a batch of events at once (Bearer "
                       "PUBLISH_TOKEN, or a loopback client).",
            "parameters": [channel],
            "requestBody": {"required": True, "content": {JSON: {"schema": publish}}},
            "responses": {"202": json_content(published, "Published: the event's id, or the "
                                                         "batch's ids in order."),
                          **errors(400, 401, 403, 413, 415, 503)}}},
        "/api/tasks": {"post": {
            "summary": "Start a demo task.",
            "requestBody": {"required": False, "content": {JSON: {"schema": start}}},
            "responses": {"202": json_content({"type": "object"}, "Started: its URLs."),
                          **errors(400, 413, 415, 503)}}},
        "/api/tasks/{task_id}": {
            "get": {"summary": "A task's state.", "parameters": [task],
                    "responses": {"200": state, **errors(404, 503)}},
            "delete": {"summary": "Cancel a running task.", "parameters": [task],
                       "responses": {"200": state, "409": ref("responses", "Error409"),
                                     **errors(404, 503)}}},
        "/sse/tasks/{task_id}": watch,
    }


def _generation_paths() -> dict:
    generation = {"name": "generation_id", "in": "path", "required": True,
                  "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}
    state = json_content({"type": "object", "required": ["id", "status", "tokens", "text"]},
                         "The generation so far.")
    watch = {"get": {
        "summary": "A generation's events (SSE, or NDJSON by Accept), resumable by token index.",
        "parameters": [generation, LAST_EVENT_ID],
        "responses": {"200": {"description": "Its start, tokens and end.",
                              "content": {"text/event-stream": {"schema": GENERATION_EVENT},
                                          "application/x-ndjson": {"schema": {
                                              "type": "string"}}}},
                      "204": {"description": "The viewer had the generation's end."},
                      **errors(400, 404, *STREAM_REFUSALS)}}}
    return {
        "/api/generations": {"post": {
            "summary": "Start a generation that runs whether or not anyone watches.",
            "requestBody": {"required": True,
                            "content": {JSON: {"schema": ref("schemas", "Generation")}}},
            "responses": {"202": json_content({"type": "object", "required": [
                "id", "events_url", "status_url"]}, "Started: its URLs."),
                **errors(400, 413, 415, 503)}}},
        "/api/generations/{generation_id}": {
            "get": {"summary": "A generation's state and text so far.",
                    "parameters": [generation], "responses": {"200": state,
                                                              **errors(404, 503)}},
            "delete": {"summary": "Cancel a generation: every viewer gets `end` cancelled.",
                       "parameters": [generation],
                       "responses": {"200": state, "409": ref("responses", "Error409"),
                                     **errors(404, 503)}}},
        "/sse/generations/{generation_id}": watch,
    }


def _log_paths() -> dict:
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    tail = {"name": "tail", "in": "query", "required": False,
            "schema": integer_schema("Past lines to send first.", 0, TAIL_MAX, TAIL_DEFAULT)}
    offset = {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {
        "type": "string", "pattern": f"^[0-9]{{0,{OFFSET_MAX_DIGITS}}}$",
        "description": "The byte offset of the last line the client has."}}
    return {
        "/api/logs": {"get": {"summary": "The names of the logs that can be followed.",
                              "responses": {"200": json_content({"type": "object"}, "Names.")}}},
        "/sse/logs/{name}": _sse("A log's lines as they are written.", 400, 404, 429, 503,
                                 parameters=[name, tail, offset]),
    }


def _pages() -> dict:
    static = page("A static file of the pages (CSS, JavaScript modules).", "*/*")
    static["get"]["parameters"] = [{"name": "filename", "in": "path", "required": True,
                                    "schema": {"type": "string"}}]
    static["get"]["responses"].update(errors(404))
    pages = {path: page(f"The {name} page.", "text/html") for path, name in (
        ("/", "playground"), ("/chat", "chat"), ("/tts", "speech"), ("/tasks", "tasks"),
        ("/logs", "logs"), ("/channels", "channels"), ("/proxy", "proxy"))}
    return {**pages, "/static/{filename}": static}


def document() -> dict:
    """The whole OpenAPI 3.1 document."""
    anything = {"type": "object"}
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
            **_broker_paths(),
            **_generation_paths(),
            **_log_paths(),
            **_pages(),
            "/healthz": {"get": {"summary": "Liveness, and whether gevent patched the worker.",
                                 "responses": {"200": json_content(anything, "Healthy.")}}},
            "/metrics": page("Prometheus metrics of every worker.", "text/plain"),
            "/openapi.json": {"get": {"summary": "This document.",
                                      "responses": {"200": json_content(anything, "It.")}}},
        },
        "components": {"schemas": SCHEMAS, "responses": error_responses()},
    }
