"""Start the real server (`gunicorn -c gunicorn.conf.py wsgi:app`) on a free port, and stop it.

Modelled on gunicorn's own signal integration tests: its own process group, wait until it
answers, fail with the captured log if it does not, stop by group (SIGTERM, then SIGKILL).
Used by tests/conftest.py and by the benchmarks.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """One gunicorn master and its workers, serving `app` (a WSGI `module:name`)."""

    def __init__(self, app: str = "wsgi:app", env: dict[str, str] | None = None,
                 args: tuple[str, ...] = (), config: str | None = "gunicorn.conf.py",
                 ready_path: str = "/healthz", port: int | None = None) -> None:
        self.port = port or free_port()  # a given port: a server taking over from a stopped one
        self.url = f"http://127.0.0.1:{self.port}"
        descriptor, name = tempfile.mkstemp(prefix="gunicorn-", suffix=".log")
        self._log_path = Path(name)
        full_env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port),
                    "GRACEFUL_TIMEOUT": "2",
                    **(env or {})}
        full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.ready_path = ready_path
        config_args = ["-c", config] if config else ["-b", f"127.0.0.1:{self.port}"]
        command = [sys.executable, "-m", "gunicorn", *config_args, *args, app]
        self.process = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=descriptor,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        os.close(descriptor)

    def log(self) -> str:
        return self._log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 20.0) -> LiveServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + self.ready_path, timeout=1).status_code < 500:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer within {timeout}s:\n{self.log()}")

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def connections_by_worker(self) -> dict[int, int]:
        """How many established client connections each worker process holds now."""
        established = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == self.port and fields[3] == "01":  # 01: ESTABLISHED
                    established.add(fields[9])  # the socket's inode
        counts = {}
        for pid in self.worker_pids():
            inodes = set()
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except FileNotFoundError:  # closed since the directory was listed
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
            counts[pid] = len(inodes & established)
        return counts

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            except ProcessLookupError:
                pass
        self._log_path.unlink(missing_ok=True)
