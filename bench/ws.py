"""Issue 3's scenarios: /ws/chat on our server beside a naive flask-sock app (gevent)."""

from __future__ import annotations

import json

from bench.harness import (
    idle_rss_per_stream,
    loadgen,
    markdown_table,
    naive_gevent,
    ours,
    repeated_throughput,
)
from bench.sse import serving


def prompt(tokens: int, delay_ms: int, **extra) -> str:
    return json.dumps({"type": "prompt", "prompt": "bench", "tokens": tokens,
                       "delay_ms": delay_ms, **extra})


def ws_url(server) -> str:
    return server.url + "/ws/chat"


def measure(factory, quick: bool) -> dict:
    figures = {}
    with serving(factory) as server:
        figures["idle"] = idle_rss_per_stream(server, "/ws/chat", 5_000, "--ws")
    with serving(factory) as server:
        # What one worker sustains: about 1,000 handshakes a second on the machine measured.
        figures["idle_slow_ramp"] = idle_rss_per_stream(server, "/ws/chat", 5_000, "--ws",
                                                        ramp=1000)
    with serving(factory) as server:
        figures["throughput"] = repeated_throughput(
            ws_url(server), 5 if quick else 20, "--mode", "ws",
            "--ws-message", prompt(10_000, 0))
        runs = [loadgen("generations", ws_url(server), "--conns", "500", "--mode", "ws",
                        "--ws-message", prompt(100, 20)) for _ in range(1 if quick else 3)]
        best = min(runs, key=lambda r: r["completion_ms"]["p50"])
        figures["generations"] = {"completion_ratio": best["completion_ms"]["p50"] / 2000,
                                  "first_token_p99_ms": best["first_token_ms"]["p99"],
                                  "errors": best["errors"]}
        cancel = loadgen("cancel", ws_url(server), "--cancel-after", "3",
                         "--repeat", "20" if quick else "100",
                         "--ws-message", prompt(1000, 200, cancellable=True))
        figures["cancel"] = {"ms": cancel["cancel_ms"],
                             "tokens_after_end": cancel["tokens_after_end"]}
    return figures


def run(quick: bool) -> dict:
    return {
        "ours (gevent)": measure(ours, quick),
        "naive flask-sock (gevent)": measure(lambda: naive_gevent("bench.naive_ws_app:app"),
                                             quick),
    }


def table(results: dict) -> str:
    rows = [
        ("RSS per idle connection (5,000 open)",
         lambda f: f"{f['idle']['kb_per_stream']:.1f} KB"),
        ("handshake p99 while 5,000 connect at 2,000/s; at 1,000/s",
         lambda f: f"{f['idle']['handshake_ms']['p99']:.0f} ms; "
                   f"{f['idle_slow_ramp']['handshake_ms']['p99']:.0f} ms"),
        ("500 x 100 x 20 ms: completion p50 / ideal; first token p99",
         lambda f: f"{f['generations']['completion_ratio']:.2f}; "
                   f"{f['generations']['first_token_p99_ms']:.0f} ms"),
        ("cancel -> cancelled end: p50 / p99 (tokens after end)",
         lambda f: f"{f['cancel']['ms']['p50']:.1f} / {f['cancel']['ms']['p99']:.1f} ms "
                   f"({f['cancel']['tokens_after_end']})"),
        ("one connection at delay_ms=0: tokens/s",
         lambda f: f"{f['throughput']['events_per_s']:,.0f}"),
    ]
    return markdown_table(results, rows)
