"""create_app: the objects it builds from the settings, overridable through test_config."""

from __future__ import annotations

import pytest

from app import create_app
from broker import current_broker
from config import ConfigError
from llm.upstreams import Endpoint
from services import services
from streaming.websocket import InlineReader, server_options


def test_websocket_servers_are_built_for_the_session_from_ws_ping_seconds():
    options = create_app({"WS_PING_SECONDS": 7.5}).config["SOCK_SERVER_OPTIONS"]
    assert options == server_options(7.5)
    assert options["thread_class"] is InlineReader


def test_test_config_may_set_the_websocket_server_options():
    # blueprints/ws.py used to overwrite them when it was registered.
    mine = {**server_options(None), "max_message_size": 10}
    assert create_app({"SOCK_SERVER_OPTIONS": mine}).config["SOCK_SERVER_OPTIONS"] is mine


def test_the_upstream_is_built_from_plain_settings():
    upstream = services(create_app({"UPSTREAM_BASE_URL": "http://up.example/v1/",
                           "UPSTREAM_CONNECT_TIMEOUT": 2.0, "UPSTREAM_READ_TIMEOUT": 9.0,
                           "UPSTREAM_POOL_SIZE": 3})).upstream
    assert (upstream.endpoints, upstream.timeout, upstream.pool_size) == (
        (Endpoint("default", "http://up.example/v1/"),), (2.0, 9.0), 3)


def test_the_broker_package_finds_the_apps_broker_among_its_services():
    # broker.current_broker cannot import `services` (it is above the features): same key.
    app = create_app({"TESTING": True})
    with app.app_context():
        assert current_broker() is services(app).broker


def test_each_app_has_its_own_services():
    first, second = create_app({"TESTING": True}), create_app({"TESTING": True})
    assert services(first).metrics is not services(second).metrics
    assert services(first).channels.broker is services(first).broker


def test_string_overrides_are_parsed_as_the_environment_would_be():
    app = create_app({"TESTING": True, "HEARTBEAT_SECONDS": "0.5", "MAX_STREAMS": ""})
    assert app.config["HEARTBEAT_SECONDS"] == 0.5
    assert app.config["MAX_STREAMS"] is None
    with pytest.raises(ConfigError, match="HEARTBEAT_SECONDS"):
        create_app({"HEARTBEAT_SECONDS": "x"})


def test_typed_overrides_are_taken_as_parsed():
    app = create_app({"TESTING": True, "HEARTBEAT_SECONDS": 0.01, "SSE_RETRY_MS": 5})
    assert app.config["HEARTBEAT_SECONDS"] == 0.01
    assert app.config["SSE_RETRY_MS"] == 5
