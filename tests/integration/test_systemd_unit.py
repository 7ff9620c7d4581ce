"""deploy/streaming-service.service: valid for systemd, and its limits fit gunicorn's settings.

`systemd-analyze verify` checks the unit offline (no running systemd needed): syntax, known
keys, values, and that ExecStart's program exists, hence the checkout's path in place of
/opt/streaming-service. It prints problems as warnings and still exits 0, so any output fails
the test. .ci/run installs systemd for it and sets REQUIRE_SYSTEMD=1; on a machine without the
tool the check is a no-op, as docs/deploying.md says.
"""

from __future__ import annotations

import configparser
import os
import runpy
import shutil
import subprocess

import pytest

import config
from testbed.live_server import ROOT

UNIT = ROOT / "deploy" / "streaming-service.service"
INSTALL_DIR = "/opt/streaming-service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def _service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser["Service"]


def test_systemd_analyze_verify_finds_nothing(tmp_path):
    if SYSTEMD_ANALYZE is None:
        if os.environ.get("REQUIRE_SYSTEMD") == "1":
            pytest.fail("REQUIRE_SYSTEMD=1 but systemd-analyze is not installed")
        # The documented no-op: nothing to run the check with here, and the deploying page says so.
        assert "systemd-analyze" in (ROOT / "docs" / "deploying.md").read_text()
        return
    text = UNIT.read_text()
    assert INSTALL_DIR in text
    rendered = tmp_path / UNIT.name
    rendered.write_text(text.replace(INSTALL_DIR, str(ROOT)))
    result = subprocess.run([SYSTEMD_ANALYZE, "verify", str(rendered)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and not result.stdout and not result.stderr, (
        result.stdout + result.stderr)


def test_runs_the_documented_command_and_reloads_with_sighup():
    service = _service()
    assert service["ExecStart"] == f"{INSTALL_DIR}/.venv/bin/gunicorn -c gunicorn.conf.py wsgi:app"
    assert service["WorkingDirectory"] == INSTALL_DIR
    assert service["Type"] == "notify"  # gunicorn's arbiter sends READY=1
    assert service["ExecReload"] == "/bin/kill -s HUP $MAINPID"


def test_stop_outlasts_gunicorns_graceful_timeout():
    service = _service()
    graceful = runpy.run_path(str(ROOT / "gunicorn.conf.py"))["graceful_timeout"]
    assert graceful == config.server_settings({})["GRACEFUL_TIMEOUT"]
    # SIGTERM to the master only; the workers are the master's to stop within graceful_timeout.
    assert service["KillMode"] == "mixed"
    assert int(service["TimeoutStopSec"]) > graceful + 5


def test_descriptor_limit_covers_every_connection_a_worker_accepts():
    worker_connections = config.server_settings({})["WORKER_CONNECTIONS"]
    # A proxied stream holds two descriptors (client and upstream).
    assert int(_service()["LimitNOFILE"]) >= 2 * worker_connections + 1024
