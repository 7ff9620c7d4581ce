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
    generations,
    guards,
    logs,
    mock_openai,
    openapi,
    ops,
    pages,
    proxy,
    tasks,
    tokens,
    ws,
)
from blueprints.errors import ApiError
from broker import BrokerUnavailable
from http_policy.forwarded import TrustedProxies
from http_policy.validation import InvalidParameter
from services import Services
from streaming.websocket import server_options

log = logging.getLogger(__name__)


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from the environment's settings, overridden by `test_config`."""
    app = Flask(__name__)
    app.config.from_mapping(config.load())
    server = config.server_settings()
    app.config["FORWARDED_ALLOW_IPS"] = server["FORWARDED_ALLOW_IPS"]
    app.config["WEB_CONCURRENCY"] = server["WEB_CONCURRENCY"]
    if test_config:
        app.config.from_mapping(config.override(app.config, test_config))
    # gunicorn never sets REMOTE_ADDR from X-Forwarded-For: the client behind nginx is found here.
    app.wsgi_app = TrustedProxies(app.wsgi_app, app.config["FORWARDED_ALLOW_IPS"])
    # flask-sock builds every WebSocket server with these: the inline reader ws_session needs.
    app.config.setdefault("SOCK_SERVER_OPTIONS", server_options(app.config["WS_PING_SECONDS"]))
    Services.from_settings(app.config).init_app(app)
    _register_errors(app)
    guards.init_app(app)
    for blueprint in (chat.bp, ops.bp, pages.bp, mock_openai.bp, proxy.bp, ws.bp, logs.bp,
                      channels.bp, tasks.bp, generations.bp, openapi.bp, tokens.bp):
        app.register_blueprint(blueprint)
    _compile_templates(app)
    return app


def _compile_templates(app: Flask) -> None:
    """Compile every template now, into Jinja's cache: compiling one on a page's first view
    (~30 ms for chat.html) holds the event loop, and so every stream of the worker."""
    for name in app.jinja_env.list_templates():
        app.jinja_env.get_template(name)


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
