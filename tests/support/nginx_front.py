"""Run nginx with deploy/nginx.conf in front of real servers, as tests need it.

The committed file is the one deployed; `render` replaces only the deployment values its header
lists (ports, upstream servers, certificate, paths, `user`), and fails if one is missing, so the
file cannot drift from what the tests run. nginx runs in the foreground (`daemon off`) in its own
process group with everything it writes under a temporary prefix, and is stopped by its PID.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import httpx
import pytest

from testbed.live_server import ROOT, free_port
from testbed.tls import Certificate

CONFIG = ROOT / "deploy" / "nginx.conf"
# Debian installs it in /usr/sbin, which is not on every user's PATH.
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def require_nginx() -> str:
    """nginx's path; a failure in CI (REQUIRE_NGINX=1, set by .ci/run), a skip elsewhere."""
    if NGINX is None:
        if os.environ.get("REQUIRE_NGINX") == "1":
            pytest.fail("REQUIRE_NGINX=1 but nginx is not installed")
        pytest.skip("nginx is not installed (CI installs it and sets REQUIRE_NGINX=1)")
    return NGINX


def render(text: str, *, prefix: Path, tls_port: int, http_port: int,
           upstream_ports: Iterable[int], certificate: Certificate) -> str:
    """deploy/nginx.conf with the test's ports, upstreams, certificate and paths."""
    servers = "".join(f"        server 127.0.0.1:{port};\n" for port in upstream_ports)
    replacements = [
        ("user www-data;", f"user {getpass.getuser()};"),
        ("pid /run/nginx.pid;", f"pid {prefix}/nginx.pid;"),
        ("/var/log/nginx/", f"{prefix}/logs/"),
        ("/var/lib/nginx/", f"{prefix}/tmp/"),
        ("        server 127.0.0.1:8000;\n", servers),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{tls_port} ssl http2;"),
        ("listen [::]:443 ssl http2;", "# (no IPv6 listener in tests)"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen [::]:80;", "# (no IPv6 listener in tests)"),
        ("/etc/ssl/certs/streaming-service.pem", str(certificate.cert)),
        ("/etc/ssl/private/streaming-service.key", str(certificate.key)),
        ("/opt/streaming-service/", f"{ROOT}/"),
    ]
    for old, new in replacements:
        assert old in text, f"deploy/nginx.conf no longer contains {old!r}"
        text = text.replace(old, new)
    return text


class NginxFront:
    """One nginx master and its workers in front of gunicorn instances on `upstream_ports`."""

    def __init__(self, upstream_ports: Iterable[int], certificate: Certificate,
                 prefix: Path) -> None:
        nginx = require_nginx()
        self.certificate = certificate
        self.prefix = prefix
        self.tls_port, self.http_port = free_port(), free_port()
        self.url = f"https://127.0.0.1:{self.tls_port}"
        (prefix / "logs").mkdir()
        (prefix / "tmp").mkdir()
        config = prefix / "nginx.conf"
        config.write_text(render(CONFIG.read_text(), prefix=prefix, tls_port=self.tls_port,
                                 http_port=self.http_port, upstream_ports=upstream_ports,
                                 certificate=certificate))
        self._output = prefix / "logs" / "output.log"
        with self._output.open("wb") as output:
            self.process = subprocess.Popen(
                [nginx, "-p", str(prefix), "-c", str(config), "-e", str(self.error_log_path),
                 "-g", "daemon off;"],
                stdout=output, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def error_log_path(self) -> Path:
        return self.prefix / "logs" / "error.log"

    def client(self, **options) -> httpx.Client:
        """An httpx client that trusts this front's certificate."""
        return httpx.Client(base_url=self.url, verify=self.certificate.client_context(),
                            timeout=30, **options)

    def access_log(self) -> list[str]:
        path = self.prefix / "logs" / "access.log"
        return path.read_text().splitlines() if path.exists() else []

    def logs(self) -> str:
        """nginx's own output and error log, for failure messages."""
        parts = [self._output, self.error_log_path]
        return "\n".join(path.read_text(errors="replace") for path in parts if path.exists())

    def wait_ready(self, timeout: float = 20.0) -> NginxFront:
        """Wait until nginx answers a request (a 502 too: an upstream may be down on purpose)."""
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"nginx exited with {self.process.returncode}:\n"
                                       f"{self.logs()}")
                try:
                    client.get("/healthz")
                    return self
                except httpx.TransportError:
                    time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not answer within {timeout}s:\n{self.logs()}")

    def stop(self) -> None:
        """SIGTERM (nginx's fast shutdown) to the master, SIGKILL to its group if it lingers."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
