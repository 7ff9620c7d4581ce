"""Start the real server (`gunicorn -c gunicorn.conf.py wsgi:app`) on a free port, and stop it.

Modelled on gunicorn's own signal integration tests: its own process group, wait until it
answers, fail with the captured log if it does not, stop by group (SIGTERM, then SIGKILL).
Used by tests/conftest.py and by the benchmarks.

Test servers run gevent's blocking monitor: a thread in each worker that reports, with its
stack, any greenlet that runs for `max_blocking` seconds without yielding to the event loop
(every other stream of the worker waits meanwhile). `blocking_reports()` finds them in the log;
conftest.py fails the test during which one appeared.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from testbed.tls import Certificate

ROOT = Path(__file__).resolve().parents[1]

MAX_BLOCKING_SECONDS = 0.02
"""The longest a test server's greenlet may hold the event loop before gevent reports it."""

MONITORED_CONFIG = "tests/support/gunicorn_monitored.conf.py"
"""gunicorn.conf.py plus the CPU check of blocking reports (tests/support/blocking_monitor.py)."""

_REPORT_START = "=" * 80  # gevent/_tracer.py, did_block_hub_report
_BLOCKED = "appears to be blocked"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class LiveServer:
    """One gunicorn master and its workers, serving `app` (a WSGI `module:name`)."""

    def __init__(self, app: str = "wsgi:app", env: dict[str, str] | None = None,
                 args: tuple[str, ...] = (), config: str | None = "gunicorn.conf.py",
                 ready_path: str = "/healthz",
                 max_blocking: float | None = MAX_BLOCKING_SECONDS,
                 tls: Certificate | None = None, port: int | None = None,
                 host: str = "127.0.0.1") -> None:
        """`max_blocking`: seconds for gevent's blocking monitor, None to run without it (the
        benchmarks: its tracer hooks every greenlet switch). `host`: the address it binds, a
        loopback one unless a test made another (testbed/netns.py)."""
        self.port = port or free_port(host)  # a given port: a server taking over from a stopped one
        self.host = host
        shown = f"[{host}]" if ":" in host else host
        self.url = f"{'https' if tls else 'http'}://{shown}:{self.port}"
        # Served over TLS with `tls`; the readiness check trusts that certificate alone.
        self._verify: str | bool = str(tls.cert) if tls else True
        if tls:
            args = (*args, "--certfile", str(tls.cert), "--keyfile", str(tls.key))
        descriptor, name = tempfile.mkstemp(prefix="gunicorn-", suffix=".log")
        self._log_path = Path(name)
        self._log_checked = 0  # bytes of the log blocking_reports() has looked at
        if max_blocking is not None and config == "gunicorn.conf.py":
            config = MONITORED_CONFIG
        full_env = {**os.environ, "HOST": host, "PORT": str(self.port),
                    "GRACEFUL_TIMEOUT": "2", **_monitor_env(max_blocking),
                    **(env or {})}
        full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.ready_path = ready_path
        config_args = ["-c", config] if config else ["-b", f"{shown}:{self.port}"]
        command = [sys.executable, "-m", "gunicorn", *config_args, *args, app]
        self.process = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=descriptor,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        os.close(descriptor)

    def log(self) -> str:
        return self._log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> LiveServer:
        """Wait until the server answers. A worker boots in about a second, but on a machine
        shared with other runs (load average 20 on 2 cores) it took over 20 s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + self.ready_path, timeout=1,
                                verify=self._verify).status_code < 500:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        log = self.log()  # stop() removes it
        self.stop()
        raise RuntimeError(f"server did not answer within {timeout}s:\n{log}")

    def blocking_reports(self) -> list[str]:
        """gevent's reports of a greenlet that held the event loop too long, each with the
        blocked stack, that appeared in the log since the last call."""
        text = self._unchecked_log()
        if _BLOCKED not in text:
            return []
        time.sleep(0.2)  # the monitor thread prints a report line by line: let it finish
        text += self._unchecked_log()
        # A report is the separator, the greenlet, the stack, then "Info:" and the greenlet
        # tree, which says nothing about who blocked.
        # tree, which says nothing about who blocked. One block spanning several of the
        # monitor's periods is reported once per period: keep each stack once.
        reports = {}
        for chunk in text.split(_REPORT_START):
            if _BLOCKED in chunk:
                report = chunk.split("\nInfo:")[0].strip()
                reports.setdefault(report.partition("Blocked Stack")[2], report)
        return list(reports.values())

    def _unchecked_log(self) -> str:
        if not self._log_path.exists():  # stopped
            return ""
        with self._log_path.open("rb") as log:
            log.seek(self._log_checked)
            data = log.read()
        self._log_checked += len(data)
        return data.decode(errors="replace")

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
        stop_all([self])

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # the group is gone already
            os.killpg(self.process.pid, signum)


def stop_all(servers: list[LiveServer], timeout: float = 10.0) -> None:
    """Stop `servers` together: SIGTERM to every group at once, SIGKILL to any group still
    there after `timeout`. One at a time, each waits out its graceful timeout in turn."""
    running = [server for server in servers if server.process.poll() is None]
    for server in running:
        server._signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for server in running:
        try:
            server.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            server._signal(signal.SIGKILL)
            server.process.wait(timeout=10)
    for server in servers:
        server._log_path.unlink(missing_ok=True)


def _monitor_env(max_blocking: float | None) -> dict[str, str]:
    """gevent's settings (gevent/_config.py) for its monitor thread in every worker."""
    if max_blocking is None:
        return {}
    # Without psutil the monitor warns at start that it cannot watch memory, which is not
    # asked of it; the warning would only clutter the log.
    warnings = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"),
                                      "ignore:Unable to monitor memory usage"]))
    return {"GEVENT_MONITOR_THREAD_ENABLE": "true", "GEVENT_MAX_BLOCKING_TIME": str(max_blocking),
            # tests/support/blocking_monitor.py prints the reports that survive its CPU check.
            "GEVENT_MONITOR_PRINT_BLOCKING_REPORTS": "false", "PYTHONWARNINGS": warnings}
