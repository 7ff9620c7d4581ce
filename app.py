"""The application factory: configuration, metrics, error handlers, blueprints."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.exceptions import HTTPException

import config
from blueprints import (
    channels,
    chat,
    guards,
    logs,
    mock_openai,
    openapi,
    ops,
    pages,
    proxy,
    tasks,
    ws,
)
from blueprints.errors import ApiError
from broker import BrokerUnavailable, make_broker
from channels import Channels
from llm.upstream import Upstream
from logtail.directory import LogDirectory
from logtail.tails import LogTails
from streaming.forwarded import TrustedProxies
from streaming.metrics import Metrics
from streaming.shutdown import Lifetimes
from streaming.validation import InvalidParameter
from streaming.websocket import server_options
from tasks import Tasks

log = logging.getLogger(__name__)


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from the environment's settings, overridden by `test_config`."""
    app = Flask(__name__)
    app.config.from_mapping(config.load())
    server = config.server_settings()
    app.config["FORWARDED_ALLOW_IPS"] = server["FORWARDED_ALLOW_IPS"]
    app.config["WEB_CONCURRENCY"] = server["WEB_CONCURRENCY"]
    if test_config:
        app.config.from_mapping(test_config)
    # gunicorn never sets REMOTE_ADDR from X-Forwarded-For: the client behind nginx is found here.
    app.wsgi_app = TrustedProxies(app.wsgi_app, app.config["FORWARDED_ALLOW_IPS"])
    # flask-sock builds every WebSocket server with these: the inline reader ws_session needs.
    app.config.setdefault("SOCK_SERVER_OPTIONS", server_options(app.config["WS_PING_SECONDS"]))
    metrics = app.extensions["metrics"] = Metrics()
    app.extensions["lifetimes"] = Lifetimes(app.config["STREAM_MAX_AGE_SECONDS"])
    app.extensions["upstream"] = _upstream(app.config, metrics)
    app.extensions["logtails"] = LogTails(LogDirectory(app.config["LOG_DIR"]),
                                          registry=metrics.registry)
    _init_broker(app)
    _register_errors(app)
    guards.init_app(app)
    for blueprint in (chat.bp, ops.bp, pages.bp, mock_openai.bp, proxy.bp, ws.bp, logs.bp,
                      channels.bp, tasks.bp, openapi.bp):
        app.register_blueprint(blueprint)
    return app


def _upstream(config: Mapping[str, Any], metrics: Metrics) -> Upstream:
    """The proxy's upstream client, from the UPSTREAM_* and PROXY_API_KEYS settings."""
    return Upstream(base_url=config["UPSTREAM_BASE_URL"], api_key=config["UPSTREAM_API_KEY"],
                    client_keys=config["PROXY_API_KEYS"],
                    timeout=(config["UPSTREAM_CONNECT_TIMEOUT"], config["UPSTREAM_READ_TIMEOUT"]),
                    pool_size=config["UPSTREAM_POOL_SIZE"], metrics=metrics)


def _init_broker(app: Flask) -> None:
    """The broker (Redis with REDIS_URL, else in memory) and the features built on it."""
    settings = app.config
    broker = make_broker(settings["REDIS_URL"], settings["CHANNEL_HISTORY"],
                         settings["SUBSCRIBER_QUEUE"], settings["FANOUT_FLUSH_MS"])
    app.extensions["broker"] = broker
    app.extensions["channels"] = Channels(broker)
    app.extensions["tasks"] = Tasks(broker, settings["TASK_LEASE_SECONDS"])


def _register_errors(app: Flask) -> None:
    """Every error, expected or not, is answered in the one JSON shape, never a traceback."""

    @app.errorhandler(ApiError)
    def api_error(error: ApiError):
        return error.response()

    @app.errorhandler(InvalidParameter)
    def invalid_parameter(error: InvalidParameter):
        return ApiError(400, "invalid_request", error.message, error.param).response()

    @app.errorhandler(BrokerUnavailable)
    def broker_unavailable(error: BrokerUnavailable):
        return ApiError(503, "broker_unavailable", "the message broker is unreachable; try again",
                        headers={"Retry-After": "1"}).response()

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        name = (error.name or "error").lower().replace(" ", "_")
        response = ApiError(error.code or 500, name, error.description or name).response()
        if error.code == 405 and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unhandled error")
        return ApiError(500, "internal_error", "the server failed to handle the request").response()
