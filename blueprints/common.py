"""What every blueprint shapes the same way: JSON errors and streaming responses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.datastructures import Headers
from werkzeug.exceptions import RequestEntityTooLarge

from http_policy.json_body import InvalidJSON, parse_json
from llm.wire import OpenAIError
from streaming.cancellation import Cancellation
from streaming.encoded import EncodedSSEFormat
from streaming.encoding import compact_json
from streaming.limits import SERVER, StreamLimitReached
from streaming.pipeline import EventStream, Format, Source
from streaming.validation import is_unicode

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

CLIENT_CLOSED = 499
"""The status nginx logs for a client that left before the answer: nobody reads this one."""

STREAM_HEADERS = {
    # Proxies and browsers must not cache or hold back a stream; nginx honours the second.
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


class ApiError(Exception):
    """An error answered as `{"error": {"type", "message"[, "param"]}}` with `status`."""

    def __init__(self, status: int, type_: str, message: str, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.param = param
        self.headers = headers or {}

    def response(self) -> Response:
        error = {"type": self.type, "message": self.message}
        if self.param is not None:
            error["param"] = self.param
        response = jsonify(error=error)
        response.status_code = self.status
        response.headers.update(self.headers)
        return response


def json_response(body: dict, status: int = 200) -> Response:
    """`body` as JSON in its own key order (Flask's jsonify would sort the keys)."""
    return Response(compact_json(body), status, mimetype="application/json")


def openai_error(error: OpenAIError) -> Response:
    """An OpenAIError answered as OpenAI does: its status, `{"error": {message, type, ...}}`."""
    return json_response(error.body(), error.status)


def read_body() -> bytes:
    """The request body; RequestEntityTooLarge (413) past `request.max_content_length`.

    werkzeug stops reading a body of undeclared length (chunked) at the maximum and returns it
    cut short (`wsgi.LimitedStream.readall`), so it is read one byte past the maximum: a body of
    exactly the maximum is then told from a longer one. Kept, so `get_json` parses this copy.
    """
    limit = request.max_content_length
    request.max_content_length = None if limit is None else limit + 1
    try:
        body = request.get_data()
    finally:
        request.max_content_length = limit
    if limit is not None and len(body) > limit:
        raise RequestEntityTooLarge()
    return body


def json_object() -> dict:
    """The request's JSON object body, or an ApiError (415 for another content type, else 400)."""
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type",
                       "the request body must be JSON (Content-Type: application/json)")
    try:
        body = parse_json(read_body())
    except InvalidJSON as exc:
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {exc}") from None
    if not is_unicode(compact_json(body)):  # a "\ud800" escape: echoed, it would fail as UTF-8
        raise ApiError(400, "invalid_json", "the request body has a lone surrogate escape")
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the request body must be a JSON object")
    return body


def last_event_id() -> str | None:
    """The id a resuming client sends: `Last-Event-ID` (EventSource), or `?last_event_id=` for
    clients that cannot set headers."""
    return request.headers.get("Last-Event-ID", request.args.get("last_event_id"))


def take_stream_slot() -> None:
    """Count this request as one of the worker's streams (StreamLimitReached past a limit).

    The slot is given back when the request ends, unless `claim_stream_slot` handed it to a
    streaming response, which gives it back the moment its body closes. Taking it twice in one
    request takes one slot.
    """
    if "stream_slot" not in g:
        g.stream_slot = current_app.extensions["slots"].acquire(request.remote_addr or "")


def claim_stream_slot(body: EventStream) -> None:
    """Tie this request's slot to a streaming body: released the moment the body is closed."""
    slot = g.pop("stream_slot", None)
    if slot is not None:
        body.call_on_close(slot.release)


def release_unclaimed_slot(exc: BaseException | None = None) -> None:
    """The request ended without a streaming response taking its slot (teardown_request)."""
    slot = g.pop("stream_slot", None)
    if slot is not None:
        slot.release()


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


def stream_response(source: Source, fmt: Format, transport: str, *, status: int = 200,
                    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
                    cancellation: Cancellation | None = None) -> Response:
    """A response streaming `source` in `fmt`: no Content-Length, nothing buffered on the way.

    `headers` replace STREAM_HEADERS (a relay passes the upstream's); a Content-Type among them
    is kept as it is, otherwise the type is `fmt.media_type` (none at all if that is empty).
    `cancellation` is for a view that already watched the client before the stream existed.
    `direct_passthrough` hands the EventStream to gunicorn as is, so nothing (no ETag, no
    `response.data`) ever collects the body.
    """
    take_stream_slot()
    # werkzeug parks the Request in the environ, which gunicorn keeps for the stream's whole
    # life: drop it, so an idle stream does not hold the parsed request (KBs per stream).
    request.environ.pop("werkzeug.request", None)
    body = EventStream(source, fmt, environ=request.environ,
                       heartbeat=current_app.config["HEARTBEAT_SECONDS"], transport=transport,
                       metrics=current_app.extensions["metrics"], cancellation=cancellation,
                       lifetimes=current_app.extensions["lifetimes"],
                       send_timeout=current_app.config["SEND_TIMEOUT_SECONDS"])
    claim_stream_slot(body)
    given = Headers(STREAM_HEADERS if headers is None else headers)
    typed = "Content-Type" in given
    response = Response(body, status=status, headers=given,
                        mimetype=None if typed else fmt.media_type or None,
                        direct_passthrough=True)
    if not typed and not fmt.media_type:  # werkzeug's default, text/html, would be a lie
        del response.headers["Content-Type"]
    return response


def encoded_sse_response(source: Source,
                         fmt: type[EncodedSSEFormat] = EncodedSSEFormat) -> Response:
    """`source`'s pre-encoded events (a fan-out's) as an SSE stream with the app's `retry`."""
    return stream_response(source, fmt(current_app.config["SSE_RETRY_MS"]), "sse")
