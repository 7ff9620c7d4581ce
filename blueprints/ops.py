"""Operations: `GET /healthz` and `GET /metrics` (Prometheus text, all workers)."""

from __future__ import annotations

import os

from flask import Blueprint, Response, current_app, jsonify
from gevent import monkey

from config import broker_warning
from services import services

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    # Whether gevent patched the worker before the app loaded: a stream on an unpatched socket
    # would block the whole worker.
    patched = {name: monkey.is_module_patched(name) for name in ("socket", "ssl", "time")}
    return jsonify(status="ok", pid=os.getpid(), gevent_patched=patched, broker=_broker(),
                   auth="on" if services().tokens is not None else "off")


def _broker() -> dict:
    """Which broker serves channels and tasks, and a warning if workers do not share it."""
    broker = services().broker
    status = {"backend": broker.kind, "shared": broker.shared,
              "subscribers": broker.subscribers()}
    warning = broker_warning(current_app.config["WEB_CONCURRENCY"], current_app.config["REDIS_URL"])
    if warning:
        status["warning"] = warning
    return status


@bp.get("/metrics")
def metrics():
    body, content_type = services().metrics.exposition()
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-cache"})
