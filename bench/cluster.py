"""Redis Cluster fan-out: 1,000 subscribers over 30 channels on three masters, 100 events/s in all.

A three-master cluster of our own (testbed/redis_cluster.py, no persistence: the figures are
the service's, not the disk's), two workers sharing the machine with the clients (not pinned).
The subscribers are the C load client, one per channel (`loadgen fanout`, about 33 connections
each); the publisher is this process, posting `{"t": now}` round the channels on a fixed
schedule over one keep-alive connection. Delivered is the events received over those published
times their subscribers; the p99 shown is the worst channel's (each client reports its own).

    python -m bench.cluster [--seconds 10] [--single]

`--single` runs the same load on one Redis (the same keys; its reader's one `XREAD BLOCK`), to
compare the cluster's reader (keyspace notifications, then `XRANGE`) with it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from bench.fanout import worker_cpu_seconds
from bench.harness import LOADGEN, _client_cpu, serving, start
from broker import redis_keys
from testbed.redis_cluster import RedisClusterServers
from testbed.redis_server import RedisServer

CHANNELS, SUBSCRIBERS, RATE, SECONDS = 30, 1000, 100, 10
HOLD_BOUND = 600
"""Seconds the clients hold at most: they end `grace` after the stop file, however long a
held-down publisher took (a shorter bound counted its late events as lost)."""


def measure(server, cluster: RedisClusterServers | None, seconds: float,
            grace: float = 5) -> dict:
    channels = [f"bench-{i}" for i in range(CHANNELS)]
    masters = ({cluster.port_of(redis_keys.stream(f"channel/{c}")) for c in channels}
               if cluster is not None else {0})
    per_channel = [SUBSCRIBERS // CHANNELS + (i < SUBSCRIBERS % CHANNELS)
                   for i in range(CHANNELS)]
    pids = server.worker_pids()
    with tempfile.TemporaryDirectory() as scratch:
        stop = Path(scratch) / "stop"
        clients, readies = [], []
        for i, (channel, conns) in enumerate(zip(channels, per_channel, strict=True)):
            ready = Path(scratch) / f"ready-{i}"
            readies.append(ready)
            clients.append(subprocess.Popen(
                [str(LOADGEN), "fanout", "--url", f"{server.url}/sse/channels/{channel}",
                 "--conns", str(conns), "--hold", str(HOLD_BOUND),
                 "--stop-file", str(stop), "--grace", str(grace), "--ready-file", str(ready)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                preexec_fn=_client_cpu))
        deadline = time.monotonic() + 120
        while not all(r.exists() for r in readies) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        cpu_before = worker_cpu_seconds(pids)
        session = requests.Session()
        began, sent, answers = time.monotonic(), 0, []
        while sent < RATE * seconds:
            due = began + sent / RATE
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            asked = time.monotonic()
            response = session.post(f"{server.url}/api/channels/{channels[sent % CHANNELS]}",
                                    json={"event": "tick", "data": {"t": time.time()}},
                                    timeout=30)
            answers.append(time.monotonic() - asked)
            response.raise_for_status()
            sent += 1
        took = time.monotonic() - began
        worker_cpu = worker_cpu_seconds(pids) - cpu_before
        stop.touch()
        results = [json.loads(c.communicate(timeout=HOLD_BOUND)[0].strip()
                              .splitlines()[-1]) for c in clients]
    expected = sum(conns * len(range(i, sent, CHANNELS)) for i, conns in enumerate(per_channel))
    answers.sort()
    return {"masters_used": len(masters), "published": sent, "publish_rate": sent / took,
            "delivered": sum(r["events_total"] for r in results) / expected,
            "opened": sum(r["opened"] for r in results),
            "p50_ms_worst_channel": max(r["latency_ms"]["p50"] for r in results),
            "p99_ms_worst_channel": max(r["latency_ms"]["p99"] for r in results),
            "publish_answer_p99_ms": 1000 * answers[int(0.99 * (len(answers) - 1))],
            "worker_cpu_share": worker_cpu / took}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--single", action="store_true", help="one Redis, not a cluster")
    args = parser.parse_args()
    redis = (RedisServer(durable=False) if args.single
             else RedisClusterServers(durable=False)).start()
    try:
        def two_workers():
            return start(pin=False, env={"LOG_LEVEL": "warning", "WEB_CONCURRENCY": "2",
                                         "REDIS_URL": redis.url})
        with serving(two_workers) as server:
            cluster = None if args.single else redis
            print(json.dumps(measure(server, cluster, args.seconds), indent=1))
    finally:
        redis.remove()


if __name__ == "__main__":
    main()
