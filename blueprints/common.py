"""What every blueprint shapes the same way: JSON errors and streaming responses."""

from __future__ import annotations

from flask import Response, current_app, jsonify, request

from streaming.pipeline import EventStream, Format, Source

STREAM_HEADERS = {
    # Proxies and browsers must not cache or hold back a stream; nginx honours the second.
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


class ApiError(Exception):
    """An error answered as `{"error": {"type", "message"[, "param"]}}` with `status`."""

    def __init__(self, status: int, type_: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.param = param

    def response(self) -> Response:
        error = {"type": self.type, "message": self.message}
        if self.param is not None:
            error["param"] = self.param
        response = jsonify(error=error)
        response.status_code = self.status
        return response


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


def stream_response(source: Source, fmt: Format, transport: str) -> Response:
    """A response streaming `source` in `fmt`: no Content-Length, no caching, no buffering.

    `direct_passthrough` hands the EventStream to gunicorn as is, so nothing (no ETag, no
    `response.data`) ever collects the body.
    """
    # werkzeug parks the Request in the environ, which gunicorn keeps for the stream's whole
    # life: drop it, so an idle stream does not hold the parsed request (KBs per stream).
    request.environ.pop("werkzeug.request", None)
    body = EventStream(source, fmt, environ=request.environ,
                       heartbeat=current_app.config["HEARTBEAT_SECONDS"], transport=transport,
                       metrics=current_app.extensions["metrics"],
                       lifetimes=current_app.extensions["lifetimes"],
                       send_timeout=current_app.config["SEND_TIMEOUT_SECONDS"])
    return Response(body, mimetype=fmt.media_type, headers=STREAM_HEADERS,
                    direct_passthrough=True)
