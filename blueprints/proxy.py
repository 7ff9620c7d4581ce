"""The OpenAI-compatible pass-through proxy: any method under `/v1/` to UPSTREAM_BASE_URL.

The view checks the client's key and body, sends upstream while watching the client socket
(`Upstream.send`), then streams the upstream body as it arrives (`streaming/relay.py`). Its own
errors are in OpenAI's shape; the upstream's errors are relayed as they are.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from llm.openai_wire import OpenAIError
from llm.relay import Relay
from llm.upstream import self_base_url, upstream_target
from streaming.cancellation import Cancellation
from streaming.pipeline import EventStream, watching

from .common import STREAM_HEADERS, claim_stream_slot, read_body, take_stream_slot
from .mock_openai import ALL_METHODS, CLIENT_CLOSED, openai_error, openai_guard_errors

PREFIX = "/v1"

bp = Blueprint("proxy", __name__)
bp.register_error_handler(OpenAIError, openai_error)
openai_guard_errors(bp)


@bp.route(f"{PREFIX}/<path:path>", methods=ALL_METHODS)
def relay(path: str):
    upstream = current_app.extensions["upstream"]
    if not upstream.authorized(request.headers.get("Authorization")):
        raise OpenAIError(401, "Incorrect API key provided.", code="invalid_api_key")
    body = _body()
    take_stream_slot()  # before the upstream is asked: a refused client costs it nothing
    url = (upstream.base_url or self_base_url(request.environ)) + upstream_target(
        request.environ, PREFIX)
    headers = upstream.request_headers(request.headers.items())
    cancellation = Cancellation()
    with watching(request.environ, cancellation):
        response = upstream.send(request.method, url, headers, body, cancellation)
    if response is None:
        return Response(status=CLIENT_CLOSED)
    return _relayed(Relay(response), cancellation)


def _body() -> bytes:
    """The request body, at most PROXY_MAX_BODY bytes; JSON where its type says JSON."""
    limit = request.max_content_length = current_app.config["PROXY_MAX_BODY"]
    try:
        body = read_body()
    except RequestEntityTooLarge:
        raise OpenAIError(413, f"the request body is larger than {limit} bytes",
                          code="request_too_large") from None
    # A body with no type is taken for JSON: OpenAI's other bodies (uploads) declare theirs.
    mimetype = request.mimetype
    if body and (not mimetype or mimetype == "application/json" or mimetype.endswith("+json")):
        try:
            json.loads(body)
        except ValueError:
            raise OpenAIError(400, "We could not parse the JSON body of your request.",
                              code="invalid_json") from None
    return body


def _relayed(relay: Relay, cancellation: Cancellation) -> Response:
    request.environ.pop("werkzeug.request", None)  # as stream_response: not for a stream's life
    stream = EventStream(relay, relay.format, environ=request.environ,
                         heartbeat=current_app.config["HEARTBEAT_SECONDS"], transport="proxy",
                         metrics=current_app.extensions["metrics"], cancellation=cancellation,
                         lifetimes=current_app.extensions["lifetimes"],
                         send_timeout=current_app.config["SEND_TIMEOUT_SECONDS"])
    claim_stream_slot(stream)
    response = Response(stream, status=relay.status, headers=relay.headers,
                        direct_passthrough=True)
    if relay.event_stream:
        response.headers.update(STREAM_HEADERS)
    if not relay.format.media_type:  # werkzeug would add text/html
        del response.headers["Content-Type"]
    # werkzeug skips the body of a HEAD, 204 or 304 response; this then releases the upstream.
    response.call_on_close(relay.close)
    return response
