"""Redis for the tests: the run's shared server, or a private one a test may stop and restart.

`.ci/run` starts a redis-server for the whole run and exports TEST_REDIS_URL and
REQUIRE_REDIS=1. Without TEST_REDIS_URL the session starts its own redis-server, if Debian's
package is installed. Without either, tests needing Redis skip locally, saying why, and fail
when REQUIRE_REDIS=1. Loaded by tests/conftest.py as a plugin; the server itself is
testbed/redis_server.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from testbed.redis_cluster import REDIS_CLI, RedisClusterServers
from testbed.redis_server import REDIS_SERVER, RedisServer


def redis_missing(reason: str) -> None:
    """Fail when Redis is required (CI), skip with `reason` otherwise."""
    if os.environ.get("REQUIRE_REDIS") == "1":
        pytest.fail(f"Redis is required (REQUIRE_REDIS=1): {reason}")
    pytest.skip(f"needs Redis: {reason} (install redis-server or set TEST_REDIS_URL)")


def _start_private() -> RedisServer:
    if not os.path.exists(REDIS_SERVER):
        redis_missing("no redis-server on this machine")
    return RedisServer().start()


def _own_database(url: str) -> str:
    """`url` with a database of this test process: pytest-xdist's processes (gw0, gw1, ...)
    share the server, and a test that counts keys or reads a queue must see only its own."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{int(worker[2:]) + 1}"))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of the run's Redis (TEST_REDIS_URL, else a redis-server of the session), with
    a database of this test process."""
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        url = _own_database(url)
        try:
            redis.Redis.from_url(url, socket_timeout=2).ping()
        except redis.RedisError as exc:
            redis_missing(f"TEST_REDIS_URL={url} does not answer: {exc}")
        yield url
        return
    server = _start_private()
    yield _own_database(server.url)
    server.remove()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test alone, to stop and start again."""
    server = _start_private()
    yield server
    server.remove()


def started_cluster() -> Iterator[RedisClusterServers]:
    """Three masters joined into a cluster (testbed/redis_cluster.py), removed afterwards: the
    body of a cluster fixture of any scope."""
    if not (os.path.exists(REDIS_SERVER) and os.path.exists(REDIS_CLI)):
        redis_missing("no redis-server and redis-cli on this machine")
    cluster = RedisClusterServers().start()
    yield cluster
    cluster.remove()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """A Redis Cluster of three masters for the session."""
    yield from started_cluster()
