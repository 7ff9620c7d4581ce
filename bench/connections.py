"""What a new connection costs the server, layer by layer, and a burst on
two workers.

- Layers (`layers.py`): N short SSE streams one after another (`loadgen generations
  --concurrency 1`), on a gunicorn gevent worker serving a bare WSGI app, then Flask, then our
  view, metrics, access log, disconnect watcher. The figure is the worker's CPU time (the
  scheduler's count, `/proc/PID/schedstat`) divided by N. Rounds alternate the servers, which
  all run for the whole scenario, and each figure is the median of its rounds, so a neighbour's
  burst of load on this shared machine moves one round, not one layer.
- WebSocket handshakes: N handshakes one after another (upgrade, then close), the same way.
- Profiles: cProfile over the whole worker while it serves N streams, then N handshakes; the
  tables go to `results/profile_sse_stream.txt` and `results/profile_ws_handshake.txt`.
- Burst on two workers: 500 simultaneous paced generations on one worker, on two sharing one
  listening socket, and on two with `REUSE_PORT` (a socket each, the kernel spreading new
  connections); how many connections each worker held mid-burst shows the spread.
"""

from __future__ import annotations

import pstats
import statistics
import tempfile
import time
from io import StringIO
from pathlib import Path

from bench.harness import (
    Size,
    cpu_ns,
    loadgen,
    loadgen_result,
    loadgen_started,
    markdown_table,
    naive_gevent,
    p50_p99,
    start,
    stop_soon,
    worker_pid,
)
from testbed.live_server import LiveServer

SHORT = "/sse/chat?prompt=short&tokens=5&delay_ms=0"
CONFIG = "bench/gunicorn_layers.py"

# (label, app in layers.py, access log)
LAYERS = (
    ("gunicorn gevent worker + bare WSGI app", "bare", False),
    ("+ Flask (routing, Request, Response)", "flask", False),
    ("+ our view: validation, demo model, pipeline", "view", False),
    ("+ metrics (prometheus_client multiprocess)", "metrics", False),
    ("+ access log", "metrics", True),
    ("+ disconnect watcher (= the service)", "full", True),
)


def layer_server(app: str, access_log: bool = True, **env: str) -> LiveServer:
    return start(app=f'bench.layers:layer("{app}")', config=CONFIG,
                 env={"LOG_LEVEL": "warning", "BENCH_ACCESS_LOG": "on" if access_log else "off",
                      **env})


def cpu_per_stream(server: LiveServer, url: str, count: int, *extra: str) -> dict:
    """The worker's CPU time per stream over `count` streams to `url`, one after another."""
    pid = worker_pid(server)
    before = cpu_ns(pid)
    result = loadgen("generations", url, "--conns", str(count), "--concurrency", "1", *extra)
    used = cpu_ns(pid) - before
    return {"cpu_us": used / count / 1000, "errors": result["errors"],
            "latency_p50_ms": result["completion_ms"]["p50"]}


def cpu_rounds(servers: dict, measure, rounds: int) -> dict:
    """`measure(server)` for every server, `rounds` times in alternating order; medians."""
    samples: dict = {name: [] for name in servers}
    names = list(servers)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else reversed(names):
            samples[name].append(measure(servers[name]))
    return {name: {"cpu_us": statistics.median(s["cpu_us"] for s in runs),
                   "cpu_us_rounds": [round(s["cpu_us"], 1) for s in runs],
                   "latency_p50_ms": statistics.median(s["latency_p50_ms"] for s in runs),
                   "errors": sum(s["errors"] for s in runs)}
            for name, runs in samples.items()}


def layers(size: Size) -> dict:
    servers: dict = {}
    try:
        for label, app, access_log in LAYERS:
            servers[label] = layer_server(app, access_log)
        servers["naive Flask generator (reference)"] = naive_gevent()
        count = size.pick(2000, 500, 20)
        return cpu_rounds(servers, lambda s: cpu_per_stream(s, s.url + SHORT, count),
                          size.pick(7, 3, 1))
    finally:
        for server in servers.values():
            stop_soon(server)


def handshakes(size: Size) -> dict:
    servers: dict = {}
    try:
        servers["naive flask-sock"] = naive_gevent("bench.naive_ws_app:app")
        servers["ours, access log off"] = layer_server("full", access_log=False)
        servers["ours"] = layer_server("full")
        count = size.pick(2000, 500, 20)
        return cpu_rounds(servers, lambda s: cpu_per_stream(s, s.url + "/ws/chat", count,
                                                            "--mode", "ws"), size.pick(7, 3, 1))
    finally:
        for server in servers.values():
            stop_soon(server)


def profile(size: Size, path: str, *extra: str, top: int = 40, app: str = "full",
            env: dict[str, str] | None = None) -> str:
    """cProfile's tables (by own, then cumulative CPU time) of one worker of `app` (with `env`
    added to its environment) serving N requests to `path`, one after another."""
    count = size.pick(2000, 500, 20)
    with tempfile.TemporaryDirectory() as scratch:
        prefix = str(Path(scratch) / "profile")
        server = layer_server(app, BENCH_PROFILE=prefix, **(env or {}))
        try:
            loadgen("generations", server.url + path, "--conns", str(count),
                    "--concurrency", "1", *extra)
        finally:
            server.stop()  # now: the worker writes its profile as it exits
        text = StringIO()
        stats = pstats.Stats(*map(str, Path(scratch).glob("profile.*")), stream=text)
        stats.strip_dirs().sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)
    return (f"cProfile (thread CPU time) over one worker ({app}) serving {count} x {path} "
            f"{' '.join(extra)}, one after another (bench/connections.py)\n" + text.getvalue())


def _spread(server: LiveServer, size: Size) -> dict:
    """Run the burst; halfway through, count the connections each worker holds."""
    url = f"{server.url}/sse/chat?prompt=paced&tokens={size.paced_tokens}&delay_ms=20"
    process = loadgen_started("generations", url, "--conns", str(size.pick(500, 500, 20)))
    time.sleep(size.ideal_ms() / 1000 / 2)
    held = sorted(server.connections_by_worker().values(), reverse=True)
    return {"held_by_worker": held, **_burst_figures(loadgen_result(process), size)}


def _burst_figures(result: dict, size: Size) -> dict:
    return {"first_token_ms": result["first_token_ms"], "head_ms": result["head_ms"],
            "completion_ratio": result["completion_ms"]["p50"] / size.ideal_ms(),
            "errors": result["errors"]}


def two_workers(size: Size) -> dict:
    setups = {
        "1 worker": ({"WEB_CONCURRENCY": "1"}, True),
        "2 workers, one shared socket": ({"WEB_CONCURRENCY": "2", "REUSE_PORT": "0"}, False),
        "2 workers, REUSE_PORT": ({"WEB_CONCURRENCY": "2", "REUSE_PORT": "1"}, False),
    }
    results: dict = {}
    for name, (env, pin) in setups.items():
        server = start(pin=pin, env={"LOG_LEVEL": "warning", **env})
        try:
            runs = [_spread(server, size) for _ in range(size.pick(3, 1, 1))]
        finally:
            stop_soon(server)
        results[name] = min(runs, key=lambda r: r["first_token_ms"]["p99"])
    return results


def run(size: Size) -> dict:
    results = {"layers": layers(size), "handshakes": handshakes(size),
               "two_workers": two_workers(size)}
    (size.results / "profile_sse_stream.txt").write_text(profile(size, SHORT))
    (size.results / "profile_ws_handshake.txt").write_text(
        profile(size, "/ws/chat", "--mode", "ws"))
    return results


def table(results: dict) -> str:
    layer_rows = ["| layer | server CPU per stream | added | stream latency p50 |",
                  "|---|---|---|---|"]
    previous = None
    for name, figures in results["layers"].items():
        added = ("" if previous is None or name.endswith("(reference)")
                 else f"{figures['cpu_us'] - previous:+.0f} µs")
        layer_rows.append(f"| {name} | {figures['cpu_us']:.0f} µs | {added} | "
                          f"{figures['latency_p50_ms']:.2f} ms |")
        if not name.endswith("(reference)"):
            previous = figures["cpu_us"]
    handshake_rows = ["| WebSocket handshake, one after another | server CPU | latency p50 |",
                      "|---|---|---|"]
    for name, figures in results["handshakes"].items():
        handshake_rows.append(f"| {name} | {figures['cpu_us']:.0f} µs | "
                              f"{figures['latency_p50_ms']:.2f} ms |")
    burst = markdown_table(results["two_workers"], [
        ("500 x 100 x 20 ms: first token p50 / p99",
         lambda f: p50_p99(f["first_token_ms"])),
        ("response head p50 / p99",
         lambda f: p50_p99(f["head_ms"])),
        ("completion p50 / ideal", lambda f: f"{f['completion_ratio']:.2f}"),
        ("streams held by each worker mid-burst",
         lambda f: " / ".join(map(str, f["held_by_worker"]))),
    ])
    return "\n".join(layer_rows) + "\n\n" + "\n".join(handshake_rows) + "\n\n" + burst
