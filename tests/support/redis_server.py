"""Redis for the tests: the run's shared server, or a private one a test may stop and restart.

`.ci/run` starts a redis-server for the whole run and exports TEST_REDIS_URL and
REQUIRE_REDIS=1. Without TEST_REDIS_URL the session starts its own redis-server, if Debian's
package is installed. Without either, tests needing Redis skip locally, saying why, and fail
when REQUIRE_REDIS=1. Loaded by tests/conftest.py as a plugin.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
import redis

from tests.support.live_server import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def redis_missing(reason: str) -> None:
    """Fail when Redis is required (CI), skip with `reason` otherwise."""
    if os.environ.get("REQUIRE_REDIS") == "1":
        pytest.fail(f"Redis is required (REQUIRE_REDIS=1): {reason}")
    pytest.skip(f"needs Redis: {reason} (install redis-server or set TEST_REDIS_URL)")


class RedisServer:
    """A redis-server subprocess on a free loopback port, in its own process group.

    Its append-only file is fsynced on every write, so a restart keeps the history: what a
    restarted production Redis with persistence would do.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._directory = tempfile.mkdtemp(prefix="test-redis-")
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 10) -> RedisServer:
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                   "--dir", self._directory, "--save", "", "--appendonly", "yes",
                   "--appendfsync", "always", "--protected-mode", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                client.close()
                return self
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self._directory, ignore_errors=True)


def _start_private() -> RedisServer:
    if not os.path.exists(REDIS_SERVER):
        redis_missing("no redis-server on this machine")
    return RedisServer().start()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of the run's Redis (TEST_REDIS_URL, else a redis-server of the session)."""
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        try:
            redis.Redis.from_url(url, socket_timeout=2).ping()
        except redis.RedisError as exc:
            redis_missing(f"TEST_REDIS_URL={url} does not answer: {exc}")
        yield url
        return
    server = _start_private()
    yield server.url
    server.remove()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test alone, to stop and start again."""
    server = _start_private()
    yield server
    server.remove()
