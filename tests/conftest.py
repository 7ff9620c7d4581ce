"""Shared fixtures: the app for unit tests, and real gunicorn servers for integration tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app import create_app
from tests.live_server import LiveServer
from tests.nginx_front import NginxFront
from tests.tls import Certificate, self_signed


@pytest.fixture
def app():
    return create_app({"TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


def _started_until_the_end(make: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """A factory that starts what `make` builds, waits until it is ready, stops it at the end."""
    started = []

    def start(*args, **kwargs):
        process = make(*args, **kwargs)
        started.append(process)  # before waiting, so one that never gets ready is stopped too
        return process.wait_ready()

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="session")
def start_server() -> Iterator[Callable[..., LiveServer]]:
    """A factory: `start_server(env={...})` starts a real server, stopped after the session."""
    yield from _started_until_the_end(LiveServer)


@pytest.fixture(scope="session")
def server(start_server) -> LiveServer:
    """The server most integration tests share: defaults, one worker, short heartbeat."""
    return start_server(env={"HEARTBEAT_SECONDS": "1"})


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory) -> Certificate:
    """A self-signed certificate for 127.0.0.1, for the HTTP/2 and nginx tests."""
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def start_nginx(tls_certificate, tmp_path_factory) -> Iterator[Callable[..., NginxFront]]:
    """A factory: `start_nginx(port, ...)` runs deploy/nginx.conf in front of those ports."""
    yield from _started_until_the_end(lambda *upstream_ports: NginxFront(
        upstream_ports, tls_certificate, tmp_path_factory.mktemp("nginx")))


@pytest.fixture(scope="session")
def nginx(start_nginx, server) -> NginxFront:
    """nginx in front of the shared server."""
    return start_nginx(server.port)
