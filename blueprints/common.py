"""What every blueprint shapes the same way: JSON errors and streaming responses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from flask import Response, current_app, jsonify, request
from werkzeug.datastructures import Headers

from llm.wire import OpenAIError
from streaming.cancellation import Cancellation
from streaming.encoded import EncodedSSEFormat
from streaming.encoding import compact_json
from streaming.pipeline import EventStream, Format, Source

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


def json_object() -> dict:
    """The request's JSON object body, or an ApiError (415 for another content type, else 400)."""
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type",
                       "the request body must be JSON (Content-Type: application/json)")
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "invalid_json", "the request body is not valid JSON")
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the request body must be a JSON object")
    return body


def last_event_id() -> str | None:
    """The id a resuming client sends: `Last-Event-ID` (EventSource), or `?last_event_id=` for
    clients that cannot set headers."""
    return request.headers.get("Last-Event-ID", request.args.get("last_event_id"))


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
    # werkzeug parks the Request in the environ, which gunicorn keeps for the stream's whole
    # life: drop it, so an idle stream does not hold the parsed request (KBs per stream).
    request.environ.pop("werkzeug.request", None)
    body = EventStream(source, fmt, environ=request.environ,
                       heartbeat=current_app.config["HEARTBEAT_SECONDS"], transport=transport,
                       metrics=current_app.extensions["metrics"], cancellation=cancellation)
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
