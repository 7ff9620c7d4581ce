"""Publish throughput without subscribers: one worker, the memory broker, keep-alive
connections with 32 requests in flight, single events against batches of 1,000.

`python -m bench.publish_rate [--seconds 10]` prints a table. The client is a gevent process
of raw sockets (`client`), one request in flight per connection, pinned as the other
benchmarks' clients are; its own CPU bounds what it can show, which it reports.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from bench.harness import _client_cpu, markdown_table, ours, serving

CHANNEL = "bench-publish"
IN_FLIGHT = 32
BATCH = 1000


def client(port: int, body: bytes, seconds: float, connections: int) -> dict:
    """Runs in its own process: POST `body` over `connections` keep-alive sockets."""
    from gevent import monkey

    monkey.patch_all()
    import socket

    import gevent

    request = (f"POST /api/channels/{CHANNEL} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
               ).encode() + body
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    deadline = time.monotonic() + seconds

    def one_connection() -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        buffered = b""
        while time.monotonic() < deadline:
            began = time.perf_counter()
            sock.sendall(request)
            while b"\r\n\r\n" not in buffered:
                buffered += sock.recv(65536)
            head, _, buffered = buffered.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            while len(buffered) < length:
                buffered += sock.recv(65536)
            buffered = buffered[length:]
            latencies.append(time.perf_counter() - began)
            status = head.split(b" ", 2)[1].decode()
            statuses[status] = statuses.get(status, 0) + 1
        sock.close()

    cpu = time.process_time()
    began = time.monotonic()
    gevent.joinall([gevent.spawn(one_connection) for _ in range(connections)])
    took = time.monotonic() - began
    latencies.sort()
    return {"requests": len(latencies), "requests_per_s": len(latencies) / took,
            "p50_ms": latencies[len(latencies) // 2] * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000, "statuses": statuses,
            "client_cpu_share": (time.process_time() - cpu) / took}


def measure(port: int, body: dict, events: int, seconds: float) -> dict:
    done = subprocess.run([sys.executable, "-m", "bench.publish_rate", "client", str(port),
                           json.dumps(body), str(seconds)], capture_output=True, text=True,
                          timeout=seconds + 60, check=True, preexec_fn=_client_cpu)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["events_per_s"] = figures["requests_per_s"] * events
    return figures


def run(seconds: float) -> dict:
    single = {"event": "tick", "data": {"n": 1}}
    batch = {"events": [single] * BATCH}
    with serving(lambda: ours()) as server:
        return {"single events": measure(server.port, single, 1, seconds),
                f"batches of {BATCH}": measure(server.port, batch, BATCH, seconds)}


def table(results: dict) -> str:
    return markdown_table(results, [
        ("requests/s", lambda f: f"{f['requests_per_s']:,.0f}"),
        ("events/s", lambda f: f"{f['events_per_s']:,.0f}"),
        ("answer p50 / p99 ms", lambda f: f"{f['p50_ms']:.1f} / {f['p99_ms']:.1f}"),
        ("statuses", lambda f: json.dumps(f["statuses"])),
        ("client CPU (share of one core)", lambda f: f"{f['client_cpu_share']:.0%}"),
    ])


def main() -> None:
    if sys.argv[1:2] == ["client"]:
        port, body, seconds = sys.argv[2:5]
        print(json.dumps(client(int(port), body.encode(), float(seconds), IN_FLIGHT)))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    print(table(run(parser.parse_args().seconds)))


if __name__ == "__main__":
    main()
