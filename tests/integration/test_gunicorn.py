"""The gunicorn configuration, checked on real servers."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import requests

from testbed.live_server import LiveServer
from tests.support.clients import Stream, metric, wait_until

CONFIG = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"


def test_settings_suit_long_lived_streams():
    settings = runpy.run_path(str(CONFIG))
    assert settings["worker_class"] == "serving.worker.GeventWorker"  # gevent's, JSON errors
    assert settings["worker_connections"] >= 10_000
    assert settings["max_requests"] == 0
    assert settings["preload_app"] is False
    assert settings["bind"] == "127.0.0.1:8000"
    assert settings["logger_class"] == "serving.access_log.AccessLogger"


def test_the_running_worker_is_patched(server):
    health = requests.get(server.url + "/healthz", timeout=5).json()
    assert health["status"] == "ok"
    assert health["gevent_patched"] == {"socket": True, "ssl": True, "time": True}
    assert "MonkeyPatchWarning" not in server.log()


def test_a_late_monkey_patch_fails_the_boot():
    server = LiveServer(app="tests.support.late_patch_app:app", args=("--preload",))
    try:
        with pytest.raises(RuntimeError) as caught:
            server.wait_ready(timeout=15)
        assert "MonkeyPatchWarning" in str(caught.value)
        # gunicorn's worker_exit hook runs for it too, with no app loaded.
        assert "AttributeError" not in str(caught.value)
    finally:
        server.stop()


def test_metrics_cover_every_worker(start_server):
    two = start_server(env={"WEB_CONCURRENCY": "2"})
    streams = []
    try:
        # Open streams until both workers hold some (the kernel picks the accepting worker).
        while len(streams) < 6 or min(two.connections_by_worker().values()) == 0:
            assert len(streams) < 60, two.connections_by_worker()
            streams.append(Stream(two.url, "/sse/chat?prompt=w&tokens=2&delay_ms=10000"))
            next(streams[-1].chunks())
        assert len(two.worker_pids()) == 2
        # Whichever worker answers, it reports both workers' streams.
        readings = [metric(two.url, "streams_active", transport="sse") for _ in range(8)]
        assert readings == [float(len(streams))] * 8, two.connections_by_worker()
    finally:
        for stream in streams:
            stream.close()
    wait_until(lambda: metric(two.url, "streams_active", transport="sse") == 0, timeout=2)


def _listening_sockets(port: int) -> int:
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # LISTEN
                count += 1
    return count


def test_each_worker_listens_on_its_own_socket_and_gets_its_share(start_server):
    two = start_server(env={"WEB_CONCURRENCY": "2"})
    # REUSE_PORT (the default): the kernel hashes each new connection to one worker's socket.
    assert _listening_sockets(two.port) == 2
    streams = [Stream(two.url, "/sse/chat?prompt=s&tokens=2&delay_ms=10000") for _ in range(40)]
    try:
        for stream in streams:
            next(stream.chunks())
        held = two.connections_by_worker()
        # Even spreading: a worker with fewer than 8 of 40 is a 1-in-30,000 draw.
        assert sorted(held.values())[0] >= 8, held
    finally:
        for stream in streams:
            stream.close()


def test_one_shared_socket_without_reuse_port(start_server):
    two = start_server(env={"WEB_CONCURRENCY": "2", "REUSE_PORT": "0"})
    assert _listening_sockets(two.port) == 1
