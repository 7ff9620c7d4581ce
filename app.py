"""The application factory: configuration, metrics, error handlers, blueprints."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.exceptions import HTTPException

import config
from blueprints import chat, guards, mock_openai, openapi, ops, pages, proxy, ws
from blueprints.common import ApiError
from llm.upstream import Upstream
from streaming.metrics import Metrics
from streaming.shutdown import Lifetimes
from streaming.validation import InvalidParameter

log = logging.getLogger(__name__)


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from the environment's settings, overridden by `test_config`."""
    app = Flask(__name__)
    app.config.from_mapping(config.load())
    if test_config:
        app.config.from_mapping(test_config)
    app.extensions["metrics"] = Metrics()
    app.extensions["lifetimes"] = Lifetimes(app.config["STREAM_MAX_AGE_SECONDS"])
    Upstream().init_app(app)
    _register_errors(app)
    guards.init_app(app)
    for blueprint in (chat.bp, ops.bp, pages.bp, mock_openai.bp, proxy.bp, ws.bp, openapi.bp):
        app.register_blueprint(blueprint)
    return app


def _register_errors(app: Flask) -> None:
    """Every error, expected or not, is answered in the one JSON shape, never a traceback."""

    @app.errorhandler(ApiError)
    def api_error(error: ApiError):
        return error.response()

    @app.errorhandler(InvalidParameter)
    def invalid_parameter(error: InvalidParameter):
        return ApiError(400, "invalid_request", error.message, error.param).response()

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
