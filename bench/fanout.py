"""Fan-out: 1,000 subscribers of one channel, a publisher at 100 events/s for 10 s.

The subscribers are the C load client (`loadgen fanout`), which stamps each event's arrival
against the publisher's `"t"` (its `time.time()`); the publisher is this process, posting over
one keep-alive connection on a fixed schedule, so a server that answers slowly holds its rate
down. Delivery is the events received over the events published times the subscribers: the
client keeps reading until `grace` seconds after the last publish (its stop file), however long
a held-down publisher took, so a shortfall is an event lost or later than the grace, never the
measurement ending first.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from bench.harness import (
    LOADGEN,
    Size,
    _client_cpu,
    markdown_table,
    naive_gevent,
    ours,
    p50_p99,
    serving,
    start,
)
from testbed.redis_server import RedisServer

CHANNEL = "bench"
PATH = f"/sse/channels/{CHANNEL}"
SUBSCRIBERS, RATE, SECONDS = 1000, 100, 10
CROWD, CROWD_RATE = 10_000, 10
"""Issue 18's second row: ten thousand subscribers of one channel in one worker, 10 events/s."""


def worker_rss_bytes(pids: list[int]) -> int:
    page = os.sysconf("SC_PAGE_SIZE")
    return sum(int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page for pid in pids)


def _enough_descriptors(count: int) -> None:
    """The load client holds one descriptor per subscriber: raise this process's soft limit,
    which it inherits, as far as the hard one allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 1000:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 1000), hard))


def worker_cpu_seconds(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def publish_paced(url: str, rate: float, seconds: float) -> tuple[int, float]:
    """POST `{"t": now}` events on a fixed schedule; (published, seconds it took)."""
    session = requests.Session()
    began = time.monotonic()
    sent = 0
    while sent < rate * seconds:
        due = began + sent / rate
        if (wait := due - time.monotonic()) > 0:
            time.sleep(wait)
        response = session.post(f"{url}/api/channels/{CHANNEL}", timeout=30,
                                json={"event": "tick", "data": {"t": time.time(), "n": sent}})
        response.raise_for_status()
        sent += 1
    return sent, time.monotonic() - began


def measure(server, subscribers: int = SUBSCRIBERS, rate: float = RATE,
            seconds: float = SECONDS, grace: float = 5) -> dict:
    pids = server.worker_pids()
    _enough_descriptors(subscribers)
    rss_before = worker_rss_bytes(pids)
    with tempfile.TemporaryDirectory() as scratch:
        ready, stop = Path(scratch) / "ready", Path(scratch) / "stop"
        # The hold is only a bound: it ends `grace` seconds after the publisher's last event.
        client = subprocess.Popen(
            [str(LOADGEN), "fanout", "--url", server.url + PATH, "--conns", str(subscribers),
             "--hold", str(4 * seconds + grace), "--stop-file", str(stop),
             "--grace", str(grace), "--ready-file", str(ready)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            preexec_fn=_client_cpu)
        deadline = time.monotonic() + 120
        while not ready.exists() and time.monotonic() < deadline and client.poll() is None:
            time.sleep(0.1)
        time.sleep(1.0)
        # Every subscription open, none yet sent an event: what an idle subscriber costs.
        rss_idle = worker_rss_bytes(pids) - rss_before
        cpu_before = worker_cpu_seconds(pids)
        published, took = publish_paced(server.url, rate, seconds)
        worker_cpu = worker_cpu_seconds(pids) - cpu_before
        stop.touch()
        out, _ = client.communicate(timeout=4 * seconds + 120)
    result = json.loads(out.strip().splitlines()[-1])
    return {"published": published, "rate": rate, "publish_rate": published / took,
            "delivery": result["events_total"] / (published * subscribers),
            # Below `published`: some subscriber lost events, or got them after the grace.
            "events_min": result["events_min"],
            "latency_ms": result["latency_ms"], "worker_cpu_share": worker_cpu / took,
            "opened": result["opened"], "error_kinds": result["error_kinds"],
            "client_cpu_share": result["client_cpu_share"],
            "rss_per_idle_subscriber_kb": rss_idle / max(1, result["opened"]) / 1024}


def redis_connections(url: str, pids: list[int]) -> int:
    import redis

    client = redis.Redis.from_url(url, decode_responses=True)
    names = [c["name"] for c in client.client_list()]
    client.close()
    return max(sum(name.startswith(f"sse:{pid}:") for name in names) for pid in pids)


def run(size: Size) -> dict:
    subscribers = size.pick(SUBSCRIBERS, 200, 20)
    seconds, grace = size.pick(SECONDS, SECONDS, 1), size.pick(5, 5, 1)
    # A subscriber counts as connected at its first body bytes: our channel streams send none
    # before the first event or heartbeat, so a smoke run shortens the heartbeat.
    quick_start = {"HEARTBEAT_SECONDS": "1"} if size.name == "smoke" else {}
    figures = {}
    with serving(lambda: ours(**quick_start)) as server:
        figures["ours, in memory (1 worker)"] = measure(server, subscribers, RATE, seconds, grace)
    crowd = size.pick(CROWD, 2000, 50)
    with serving(lambda: ours(WORKER_CONNECTIONS=str(crowd + 1000), **quick_start)) as server:
        figures[f"ours, in memory, {crowd:,} subscribers x {CROWD_RATE}/s (1 worker)"] = measure(
            server, crowd, CROWD_RATE, seconds, grace)
    redis_server = RedisServer().start()
    try:
        # Two workers share the two cores with the client: not pinned.
        def two_workers():
            return start(pin=False, env={"LOG_LEVEL": "warning", "WEB_CONCURRENCY": "2",
                                         "REDIS_URL": redis_server.url, **quick_start})
        with serving(two_workers) as server:
            measured = measure(server, subscribers, RATE, seconds, grace)
            measured["redis_connections_per_worker"] = redis_connections(
                redis_server.url, server.worker_pids())
            figures["ours, Redis (2 workers)"] = measured
    finally:
        redis_server.remove()
    with serving(lambda: naive_gevent("bench.naive_fanout_app:app")) as server:
        figures["naive generator (gevent)"] = measure(server, subscribers, RATE, seconds, grace)
    return figures


def table(results: dict) -> str:
    rows = [
        ("publisher: events/s achieved, of those asked",
         lambda f: f"{f['publish_rate']:.0f} of {f['rate']:.0f}"),
        ("delivered", lambda f: f"{f['delivery']:.1%}"),
        ("latency p50 / p99", lambda f: p50_p99(f["latency_ms"], 1)),
        ("worker CPU (all workers, share of one core)",
         lambda f: f"{f['worker_cpu_share']:.0%}"),
        ("worker RSS per idle subscriber",
         lambda f: f"{f['rss_per_idle_subscriber_kb']:.1f} KB"),
        ("Redis connections per worker",
         lambda f: str(f.get("redis_connections_per_worker", "-"))),
    ]
    return markdown_table(results, rows)
