"""Issues 3 and 8's scenarios: /ws/chat on our server beside a naive flask-sock app (gevent).

Memory and the handshake ramps run on a fresh server per app; the 500-generation burst runs in
alternating rounds on servers started together (`harness.burst_rounds`).
"""

from __future__ import annotations

import json
from contextlib import ExitStack

from bench.harness import (
    Size,
    burst_rounds,
    idle_rss_per_stream,
    kb_per_stream,
    loadgen,
    markdown_table,
    naive_gevent,
    ours,
    p50_p99,
    repeated_throughput,
    serving,
)


def prompt(tokens: int, delay_ms: int, **extra) -> str:
    return json.dumps({"type": "prompt", "prompt": "bench", "tokens": tokens,
                       "delay_ms": delay_ms, **extra})


APPS = {
    "ours (gevent)": ours,
    "naive flask-sock (gevent)": lambda: naive_gevent("bench.naive_ws_app:app"),
}


def _memory(factory, size: Size) -> dict:
    connections, settle = size.pick(5_000, 2_000, 20), size.pick(1.0, 1.0, 0.2)
    figures = {}
    with serving(factory) as server:
        figures["idle"] = idle_rss_per_stream(server, "/ws/chat", connections, "--ws",
                                              settle=settle)
    with serving(factory) as server:
        # What one worker sustains: about 1,000 handshakes a second on the machine measured.
        figures["idle_slow_ramp"] = idle_rss_per_stream(server, "/ws/chat", connections, "--ws",
                                                        ramp=1000, settle=settle)
    return figures


def _steady(server, size: Size) -> dict:
    url = server.url + "/ws/chat"
    cancel = loadgen("cancel", url, "--cancel-after", "3", "--repeat",
                     str(size.pick(100, 20, 2)),
                     "--ws-message", prompt(1000, size.pick(200, 200, 50), cancellable=True))
    return {"throughput": repeated_throughput(url, size.pick(20, 5, 1), "--mode", "ws",
                                              "--ws-message", prompt(10_000, 0)),
            "cancel": {"ms": cancel["cancel_ms"], "tokens_after_end": cancel["tokens_after_end"]}}


def run(size: Size) -> dict:
    results = {name: _memory(factory, size) for name, factory in APPS.items()}
    with ExitStack() as stack:
        servers = {name: stack.enter_context(serving(factory)) for name, factory in APPS.items()}
        for name, server in servers.items():
            results[name].update(_steady(server, size))
        urls = {name: server.url + "/ws/chat" for name, server in servers.items()}
        bursts = burst_rounds(urls, size.ideal_ms(), size.pick(500, 500, 20),
                              size.pick(5, 1, 1), size, "ws", "--mode", "ws",
                              "--ws-message", prompt(size.paced_tokens, 20))
    for name, figures in bursts.items():
        results[name]["generations"] = figures
    return results


def table(results: dict) -> str:
    rows = [
        ("RSS per idle connection (connections open)", lambda f: kb_per_stream(f["idle"])),
        ("handshake p99 while they connect at 2,000/s; at 1,000/s",
         lambda f: f"{f['idle']['handshake_ms']['p99']:,.0f} ms; "
                   f"{f['idle_slow_ramp']['handshake_ms']['p99']:,.0f} ms"),
        ("500 x 100 x 20 ms: first token p50 / p99",
         lambda f: p50_p99(f["generations"]["first_token_ms"])),
        ("500 x 100 x 20 ms: completion p50 / ideal",
         lambda f: f"{f['generations']['completion_ratio']:.2f}"),
        ("cancel -> cancelled end: p50 / p99 (tokens after end)",
         lambda f: f"{p50_p99(f['cancel']['ms'], 1)} ({f['cancel']['tokens_after_end']})"),
        ("one connection at delay_ms=0: tokens/s",
         lambda f: f"{f['throughput']['events_per_s']:,.0f}"),
    ]
    return markdown_table(results, rows)
