"""The benchmark load client counts what the server sends, so its figures can be trusted."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.live_server import ROOT


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
