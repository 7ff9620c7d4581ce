"""What every blueprint shapes the same way: JSON errors and streaming responses."""

from __future__ import annotations

from flask import Response, current_app, g, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from streaming.encoding import compact_json
from streaming.pipeline import EventStream, Format, Source
from streaming.validation import is_unicode

STREAM_HEADERS = {
    # Proxies and browsers must not cache or hold back a stream; nginx honours the second.
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


class ApiError(Exception):
    """An error answered as `{"error": {"type", "message"[, "param"]}}` with `status`
    (and `headers`, such as Retry-After)."""

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
    read_body()
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "invalid_json", "the request body is not valid JSON")
    if not is_unicode(compact_json(body)):  # a "\ud800" escape: echoed, it would fail as UTF-8
        raise ApiError(400, "invalid_json", "the request body has a lone surrogate escape")
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the request body must be a JSON object")
    return body


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


def stream_response(source: Source, fmt: Format, transport: str) -> Response:
    """A response streaming `source` in `fmt`: no Content-Length, no caching, no buffering.

    `direct_passthrough` hands the EventStream to gunicorn as is, so nothing (no ETag, no
    `response.data`) ever collects the body.
    """
    take_stream_slot()
    # werkzeug parks the Request in the environ, which gunicorn keeps for the stream's whole
    # life: drop it, so an idle stream does not hold the parsed request (KBs per stream).
    request.environ.pop("werkzeug.request", None)
    body = EventStream(source, fmt, environ=request.environ,
                       heartbeat=current_app.config["HEARTBEAT_SECONDS"], transport=transport,
                       metrics=current_app.extensions["metrics"],
                       lifetimes=current_app.extensions["lifetimes"],
                       send_timeout=current_app.config["SEND_TIMEOUT_SECONDS"])
    claim_stream_slot(body)
    return Response(body, mimetype=fmt.media_type, headers=STREAM_HEADERS,
                    direct_passthrough=True)
