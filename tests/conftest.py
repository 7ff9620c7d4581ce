"""Shared fixtures: the app for unit tests, and real gunicorn servers for integration tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app import create_app
from testbed.live_server import MAX_BLOCKING_SECONDS, LiveServer, stop_all
from testbed.tls import Certificate, self_signed
from tests.support.browser import browser, console, page  # noqa: F401  (fixtures of the page tests)
from tests.support.fakes import RecordingMetrics
from tests.support.nginx_front import NginxFront

pytest_plugins = ["tests.support.redis_fixtures"]  # redis_url, private_redis


def pytest_collection_modifyitems(items) -> None:
    # With two processes (pytest-xdist) the run lasts as long as the busier one: a test of
    # minutes handed out last would run alone while the other process idles. Stable, so each
    # file's own order stays.
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture
def app():
    return create_app({"TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def stream_metrics() -> RecordingMetrics:
    """Metrics for a stream under test, recording what it reports."""
    return RecordingMetrics()


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


# Who starts a server decides how long it lives (start_server): a test's body, or the fixture
# being set up. This conftest's hooks see the fixtures of nodes under tests/ only, so a
# session fixture is what starts a server outside both.
_fixtures_being_set_up: list[pytest.FixtureRequest] = []  # innermost last
_in_a_test_body = False


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef, request):
    _fixtures_being_set_up.append(request)
    try:
        return (yield)
    finally:
        _fixtures_being_set_up.pop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    global _in_a_test_body
    _in_a_test_body = True
    try:
        return (yield)
    finally:
        _in_a_test_body = False


def _scope_of_the_starter() -> str:
    if _fixtures_being_set_up:
        return _fixtures_being_set_up[-1].scope
    return "function" if _in_a_test_body else "session"


@pytest.fixture(scope="session")
def start_server() -> Iterator[Callable[..., LiveServer]]:
    """A factory: `start_server(env={...})` starts a real server, stopped when its starter is
    done: the test (its body or a function fixture), the module or class fixture, the session.

    An idle server is not free: its workers' blocking monitors wake 50 times a second (about
    3% of a core each), so a run that kept every server to the end spent a core on them."""
    servers: list[LiveServer] = []
    of_this_test: list[LiveServer] = []

    def start(**kwargs) -> LiveServer:
        server = LiveServer(**kwargs)
        servers.append(server)
        scope = _scope_of_the_starter()
        if scope == "function":
            of_this_test.append(server)
        elif scope != "session":
            _fixtures_being_set_up[-1].addfinalizer(lambda: _stop_unless_blocked([server]))
        return server.wait_ready()

    start.servers = servers  # for loop_never_blocked
    start.of_this_test = of_this_test
    yield start
    _stop_unless_blocked(servers)


def _stop_unless_blocked(servers: list[LiveServer]) -> None:
    reports = [report for server in servers for report in server.blocking_reports()]
    stop_all(servers)
    _fail_if_blocked(reports)


@pytest.fixture(autouse=True)
def loop_never_blocked(request) -> Iterator[None]:
    """Fails a test during which a test server's greenlet held the event loop too long; then
    stops the servers the test started."""
    yield
    if "start_server" in request.fixturenames:
        factory = request.getfixturevalue("start_server")
        ended, factory.of_this_test[:] = list(factory.of_this_test), []
        reports = [report for server in factory.servers for report in server.blocking_reports()]
        stop_all(ended)
        _fail_if_blocked(reports)


def _fail_if_blocked(reports: list[str]) -> None:
    if reports:
        pytest.fail(f"a greenlet held a test server's event loop for more than "
                    f"{MAX_BLOCKING_SECONDS * 1000:.0f} ms (gevent's report):\n\n"
                    + "\n\n".join(reports), pytrace=False)


@pytest.fixture(scope="session")
def failing_server(start_server) -> LiveServer:
    """The real app plus routes that fail on purpose (tests/support/failing_app.py)."""
    return start_server(app="tests.support.failing_app:app")


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
