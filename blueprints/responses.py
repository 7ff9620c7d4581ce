"""Streaming responses as every blueprint builds them: `stream_response` and, for a fan-out's
pre-encoded events, `encoded_sse_response`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from flask import Response, current_app, request
from werkzeug.datastructures import Headers

from services import services
from streaming.cancellation import Cancellation
from streaming.encoded import EncodedSSEFormat
from streaming.pipeline import EventStream, Format, Source

from .access import stream_deadline
from .slots import claim_stream_slot, take_stream_slot

CLIENT_CLOSED = 499
"""The status nginx logs for a client that left before the answer: nobody reads this one."""

STREAM_HEADERS = {
    # Proxies and browsers must not cache or hold back a stream; nginx honours the second.
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def stream_response(source: Source, fmt: Format, transport: str, *, status: int = 200,
                    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
                    cancellation: Cancellation | None = None,
                    heartbeat: float | None = None) -> Response:
    """A response streaming `source` in `fmt`: no Content-Length, nothing buffered on the way.

    `headers` replace STREAM_HEADERS (a relay passes the upstream's); a Content-Type among them
    is kept as it is, otherwise the type is `fmt.media_type` (none at all if that is empty).
    `cancellation` is for a view that already watched the client before the stream existed;
    `heartbeat` replaces HEARTBEAT_SECONDS (the relay's keepalive period).
    A stream opened with a token ends when the token does (`access.stream_deadline`).
    `direct_passthrough` hands the EventStream to gunicorn as is, so nothing (no ETag, no
    `response.data`) ever collects the body.
    """
    take_stream_slot()
    # werkzeug parks the Request in the environ, which gunicorn keeps for the stream's whole
    # life: drop it, so an idle stream does not hold the parsed request (KBs per stream).
    request.environ.pop("werkzeug.request", None)
    shared = services()
    body = EventStream(source, fmt, environ=request.environ,
                       heartbeat=heartbeat or current_app.config["HEARTBEAT_SECONDS"],
                       transport=transport,
                       metrics=shared.metrics, cancellation=cancellation,
                       lifetimes=shared.lifetimes,
                       send_timeout=current_app.config["SEND_TIMEOUT_SECONDS"],
                    expires_at=stream_deadline())
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
