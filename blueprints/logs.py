"""Live log tails: `GET /sse/logs/<name>` (SSE) and `GET /api/logs` (the names)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import NotFound

from auth import LOGS
from logtail.source import LogTailSource, parse_offset, parse_tail
from logtail.tails import LogTails
from services import services

from .access import require_scope
from .bodies import last_event_id
from .responses import encoded_sse_response

bp = Blueprint("logs", __name__)


def _tails() -> LogTails:
    return services().logtails


@bp.get("/api/logs")
def list_logs():
    require_scope(LOGS)
    return jsonify(logs=_tails().names())


# `path:` so that every name, slashes and dots included, reaches the one check below, and no
# merging of `//`: a redirect would answer differently from a 404.
@bp.get("/sse/logs/<path:name>", merge_slashes=False)
def sse_log(name: str):
    require_scope(LOGS)
    tail = parse_tail(request.args)
    resume = parse_offset(last_event_id())
    tails = _tails()
    size = tails.size(name)
    if size is None:
        # Exactly the answer of any unknown URL: nothing tells a missing log from a forbidden
        # one, or from a path that matches no route.
        raise NotFound()
    source = LogTailSource(tails, name, tail=tail, resume=resume, since=size)
    return encoded_sse_response(source)
