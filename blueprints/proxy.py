"""The OpenAI-compatible pass-through proxy: any method under `/v1/` to the upstreams in order.

The view checks the client's key, its limits (`llm/limits.py`: OpenAI's x-ratelimit-* headers
go on every answer of a limited key) and the body's size, sends upstream while watching the
client socket (`Upstream.send`, which falls back to the next upstream), then streams the
upstream body as it arrives (`llm/relay.py`), naming the upstream that answered in
`X-Upstream`. Its own
errors are in OpenAI's shape; the upstream's errors are relayed as they are.

The body is not parsed to be checked: whether it is valid JSON is the upstream's to say, as
OpenAI does with a 400 in the same error shape. Parsing up to PROXY_MAX_BODY (10 MiB) here
would hold the event loop for every stream of the worker (json.loads is one C call: a thread
pool would not let the loop run either). Only a chat completion's body of at most
`usage.PARSE_LIMIT` is read, for its usage (`llm/usage.py`).
"""

from __future__ import annotations

from flask import Blueprint, Response, after_this_request, current_app, request
from werkzeug.datastructures import Headers
from werkzeug.exceptions import RequestEntityTooLarge

from llm.keys import ClientKey
from llm.mock_address import self_base_url
from llm.relay import Relay, is_event_stream
from llm.upstream import upstream_target
from llm.usage import Usage, UsageMeter, UsageRequest, plan_usage
from llm.wire import OpenAIError
from services import services
from streaming.cancellation import Cancellation
from streaming.pipeline import watching

from .bodies import read_body
from .openai_errors import ALL_METHODS, openai_error, openai_guard_errors
from .responses import CLIENT_CLOSED, STREAM_HEADERS, stream_response
from .slots import take_stream_slot

PREFIX = "/v1"

bp = Blueprint("proxy", __name__)
bp.register_error_handler(OpenAIError, openai_error)
openai_guard_errors(bp)


@bp.route(f"{PREFIX}/<path:path>", methods=ALL_METHODS)
def relay(path: str):
    upstream = services().upstream
    client = upstream.client_key(request.headers.get("Authorization"))
    if client is None:
        raise OpenAIError(401, "Incorrect API key provided.", code="invalid_api_key")
    _limited(client)
    config = current_app.config
    target = upstream_target(request.environ, PREFIX)
    body, usage = plan_usage(request.method, target, _body(), rewrite=config["PROXY_USAGE"])
    take_stream_slot()  # before the upstream is asked: a refused client costs it nothing
    headers = upstream.request_headers(request.headers.items())
    cancellation = Cancellation()
    with watching(request.environ, cancellation):
        answer = upstream.send(request.method, target, headers, body, cancellation,
                               self_base_url(request.environ))
    if answer is None:
        return Response(status=CLIENT_CLOSED)
    meter = None if usage is None else _meter(usage, client, answer.response)
    keepalive = config["PROXY_KEEPALIVE_SECONDS"]
    response = _relayed(Relay(answer.response, keepalive=keepalive > 0, meter=meter),
                        cancellation, keepalive or None)
    response.headers["X-Upstream"] = answer.endpoint.name
    return response


def _meter(usage: UsageRequest, client: ClientKey, response) -> UsageMeter:
    event_stream = is_event_stream(response.headers.get("Content-Type", ""))
    shared = services()

    def record(used: Usage) -> None:
        shared.usage.record(used)
        # A stream that started is never cut for its tokens: they count against the next.
        shared.limits.record_tokens(used.key, used.prompt_tokens + used.completion_tokens)

    return UsageMeter(usage, client.name, event_stream, record, status=response.status_code)


def _limited(client: ClientKey) -> None:
    """Count the request against the key's limits, or refuse it with a 429."""
    decision = services().limits.check(client)
    if decision is None:
        return
    after_this_request(lambda response: _with_headers(response, decision.headers()))
    if decision.refused:
        raise decision.error()


def _with_headers(response: Response, headers: list[tuple[str, str]]) -> Response:
    response.headers.extend(headers)
    return response


def _body() -> bytes:
    """The request body, at most PROXY_MAX_BODY bytes, as the client sent it."""
    limit = request.max_content_length = current_app.config["PROXY_MAX_BODY"]
    try:
        return read_body()
    except RequestEntityTooLarge:
        raise OpenAIError(413, f"the request body is larger than {limit} bytes",
                          code="request_too_large") from None


def _relayed(relay: Relay, cancellation: Cancellation, keepalive: float | None) -> Response:
    headers = Headers(relay.headers)
    if relay.event_stream:
        headers.update(STREAM_HEADERS)
    response = stream_response(relay, relay.format, "proxy", status=relay.status,
                               headers=headers, cancellation=cancellation, heartbeat=keepalive)
    # werkzeug skips the body of a HEAD, 204 or 304 response; this then releases the upstream.
    response.call_on_close(relay.close)
    return response
