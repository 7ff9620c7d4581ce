"""The benchmark load client counts what the server sends, so its figures can be trusted."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import requests

from auth import mint_token
from testbed.live_server import ROOT
from tests.support.clients import wait_until


@pytest.fixture(scope="module")
def loadgen(tmp_path_factory):
    binary = tmp_path_factory.mktemp("loadgen") / "loadgen"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(ROOT / "bench" / "loadgen.c")],
                   check=True, capture_output=True)
    return binary


def run(loadgen, *args) -> dict:
    done = subprocess.run([str(loadgen), *args], capture_output=True, text=True, timeout=60,
                          check=True)
    return json.loads(done.stdout)


def test_generations_counts_every_token(loadgen, server):
    result = run(loadgen, "generations", "--url",
                 server.url + "/sse/chat?prompt=count&tokens=40&delay_ms=5", "--conns", "7")
    assert (result["ok"], result["errors"]) == (7, 0)
    assert result["tokens_total"] == 7 * 40
    assert result["end_events"] == 7
    assert result["first_token_ms"]["p50"] < result["completion_ms"]["p50"]


def test_throughput_counts_events(loadgen, server):
    result = run(loadgen, "throughput", "--url",
                 server.url + "/sse/chat?prompt=count&tokens=3000&delay_ms=0")
    assert result["tokens"] == 3000
    assert result["events"] == 3002  # the start and end events carry data too


def _subscribed(loadgen, server, channel: str, ready: Path, *args: str) -> subprocess.Popen:
    """The load client's `fanout` on `channel`, once every subscription is open."""
    client = subprocess.Popen(
        [str(loadgen), "fanout", "--url", f"{server.url}/sse/channels/{channel}",
         "--ready-file", str(ready), *args], stdout=subprocess.PIPE, text=True)
    try:
        wait_until(ready.exists, 20, interval=0.05)
    except AssertionError:
        client.kill()
        raise
    return client


def _publish_ticks(server, channel: str, count: int) -> None:
    for n in range(count):
        requests.post(f"{server.url}/api/channels/{channel}", timeout=10,
                      json={"event": "tick", "data": {"t": time.time(), "n": n}})


def test_fanout_counts_each_subscribers_events_and_their_latency(loadgen, server, tmp_path):
    client = _subscribed(loadgen, server, "loadgen", tmp_path / "ready", "--conns", "4",
                         "--hold", "3")
    _publish_ticks(server, "loadgen", 5)
    result = json.loads(client.communicate(timeout=30)[0])
    assert (result["opened"], result["events_total"]) == (4, 20)
    assert (result["events_min"], result["events_max"]) == (5, 5)
    assert result["latency_ms"]["n"] == 20
    assert 0 <= result["latency_ms"]["p50"] < 3000


def test_fanout_hold_ends_a_grace_after_the_stop_file(loadgen, server, tmp_path):
    stop = tmp_path / "stop"
    client = _subscribed(loadgen, server, "stopfile", tmp_path / "ready", "--conns", "2",
                         "--hold", "120", "--stop-file", str(stop), "--grace", "0.5")
    _publish_ticks(server, "stopfile", 3)
    stop.touch()
    result = json.loads(client.communicate(timeout=60)[0])
    assert (result["events_min"], result["events_max"]) == (3, 3)
    assert result["hold_s"] < 60  # ended by the stop file, long before --hold


def test_concurrency_one_runs_streams_one_after_another(loadgen, server):
    # Each stream lasts at least 5 x 10 ms: one after another, five cannot end sooner than 250 ms.
    result = run(loadgen, "generations", "--url",
                 server.url + "/sse/chat?prompt=seq&tokens=5&delay_ms=10", "--conns", "5",
                 "--concurrency", "1")
    assert (result["ok"], result["tokens_total"]) == (5, 25)
    assert result["wall_s"] >= 0.25
    assert result["head_ms"]["n"] == 5
    assert result["head_ms"]["p50"] <= result["first_token_ms"]["p50"]


def test_websocket_handshakes_without_a_message(loadgen, server):
    result = run(loadgen, "generations", "--url", server.url + "/ws/chat", "--mode", "ws",
                 "--conns", "3", "--concurrency", "1")
    assert (result["ok"], result["errors"], result["tokens_total"]) == (3, 0, 0)
    assert result["head_ms"]["n"] == 3


def test_raw_out_has_a_row_per_stream(loadgen, server, tmp_path):
    raw = tmp_path / "raw.csv"
    run(loadgen, "generations", "--url", server.url + "/sse/chat?prompt=raw&tokens=3&delay_ms=1",
        "--conns", "4", "--raw-out", str(raw))
    header, *rows = raw.read_text().splitlines()
    assert header == "head_ms,first_token_ms,completion_ms"
    assert len(rows) == 4
    assert all(float(row.split(",")[1]) > 0 for row in rows)


def test_header_file_gives_each_connection_its_own_line(loadgen, start_server, tmp_path):
    secret = "loadgen-header-file-secret-of-32-bytes+"
    server = start_server(env={"AUTH_SECRET": secret})
    lines = tmp_path / "headers"
    # A valid token, then a refused one: cycling over 4 connections, two of each.
    lines.write_text(f"Authorization: Bearer {mint_token(secret, scope=['chat'])}\n"
                     "Authorization: Bearer not-a-token\n")
    result = run(loadgen, "generations", "--url",
                 server.url + "/sse/chat?prompt=own&tokens=2&delay_ms=1", "--conns", "4",
                 "--header-file", str(lines))
    assert (result["ok"], result["errors"]) == (2, 2)
    assert result["error_kinds"] == {"status": 2}
