"""What a view reads from the request: its body (within the route's limit), a JSON object body,
and the id a resuming client sends."""

from __future__ import annotations

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from http_policy.json_body import InvalidJSON, parse_json
from http_policy.validation import is_unicode
from streaming.encoding import compact_json

from .errors import ApiError


def read_body() -> bytes:
    """The request body; RequestEntityTooLarge (413) past `request.max_content_length`.

    werkzeug stops reading a body of undeclared length (chunked) at the maximum and returns it
    cut short (`wsgi.LimitedStream.readall`), so it is read one byte past the maximum: a body of
    exactly the maximum is then told from a longer one.
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
