"""Shared fixtures: the app for unit tests, and real gunicorn servers for integration tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from app import create_app
from tests.browser import browser, console, page  # noqa: F401  (fixtures of the page tests)
from tests.live_server import LiveServer


@pytest.fixture
def app():
    return create_app({"TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def start_server() -> Iterator[Callable[..., LiveServer]]:
    """A factory: `start_server(env={...})` starts a real server, stopped after the session."""
    servers: list[LiveServer] = []

    def start(**kwargs) -> LiveServer:
        server = LiveServer(**kwargs)
        servers.append(server)
        return server.wait_ready()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def server(start_server) -> LiveServer:
    """The server most integration tests share: defaults, one worker, short heartbeat."""
    return start_server(env={"HEARTBEAT_SECONDS": "1"})
