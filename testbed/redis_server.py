"""A redis-server subprocess on a free loopback port, for the tests and the benchmarks.

The tests' fixtures around it (the run's shared Redis, or a private one) are in
tests/support/redis_fixtures.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time

import redis

from testbed.live_server import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"



def stop_group(process: subprocess.Popen | None, timeout: float = 10) -> None:
    """Stop `process` (started in a session of its own) and its group: SIGTERM, then SIGKILL
    after `timeout` seconds. Nothing to do for one that is gone already."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)

class RedisServer:
    """A redis-server subprocess on a free loopback port, in its own process group.

    Its append-only file is fsynced on every write, so a restart keeps the history: what a
    restarted production Redis with persistence would do. `durable=False` keeps nothing on
    disk, for a benchmark that measures what the service costs rather than the disk.
    """

    def __init__(self, durable: bool = True) -> None:
        self.durable = durable
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._directory = tempfile.mkdtemp(prefix="test-redis-")
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 10) -> RedisServer:
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.durable
                       else ["--appendonly", "no"])
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                   "--dir", self._directory, "--save", "", *persistence,
                   "--protected-mode", "no"]
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
        stop_group(process)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self._directory, ignore_errors=True)
