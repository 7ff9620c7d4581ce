"""streaming/metrics.py: stream starts and ends, written once per turn of the event loop."""

from __future__ import annotations

import gevent
import pytest
from prometheus_client.values import MultiProcessValue

from streaming.metrics import Metrics


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_turns_starts_and_ends_are_written_when_it_ends():
    metrics = Metrics()
    for _ in range(100):
        metrics.started("sse")
    metrics.ended("sse", 0.5, disconnected=True)
    assert value(metrics, "streams_active", transport="sse") == 0  # not yet: same turn
    gevent.sleep(0)  # the hub runs the write at the end of the turn
    assert value(metrics, "streams_active", transport="sse") == 99
    assert value(metrics, "stream_duration_seconds_count", transport="sse") == 1
    assert value(metrics, "stream_disconnects_total", transport="sse") == 1


def test_exposition_writes_what_is_pending_first(monkeypatch):
    # The environment's directory (another test may have left gunicorn.conf.py's) is not read.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/nonexistent")
    metrics = Metrics()
    metrics.started("ws")
    body, _ = metrics.exposition()
    assert b'streams_active{transport="ws"} 1.0' in body


@pytest.fixture
def multiprocess_writes(tmp_path, monkeypatch):
    """Counts the mmap writes of prometheus_client's multiprocess values."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    writes = []
    value_class = MultiProcessValue()
    original = value_class.inc

    def counting_inc(self, amount):
        writes.append(amount)
        original(self, amount)

    monkeypatch.setattr(value_class, "inc", counting_inc)
    monkeypatch.setattr("prometheus_client.metrics.values.ValueClass", value_class)
    return writes


def test_exposition_reads_every_worker_from_the_multiprocess_dir(multiprocess_writes, tmp_path):
    metrics = Metrics(multiprocess_dir=str(tmp_path))
    metrics.started("sse")
    other_worker = Metrics(multiprocess_dir=str(tmp_path))
    other_worker.started("sse")
    gevent.sleep(0)
    body, _ = metrics.exposition()
    assert b'streams_active{transport="sse"} 2.0' in body


def test_a_burst_of_starts_is_one_write(multiprocess_writes):
    metrics = Metrics()
    multiprocess_writes.clear()
    for _ in range(100):
        metrics.started("sse")
    gevent.sleep(0)
    assert multiprocess_writes == [100]
