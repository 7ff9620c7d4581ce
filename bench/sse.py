"""Issue 2's scenarios: SSE on our server beside the naive Flask generator (gevent, gthread)."""

from __future__ import annotations

from contextlib import contextmanager

from bench.harness import (
    idle_rss_per_stream,
    loadgen,
    markdown_table,
    naive_gevent,
    naive_gthread,
    ours,
    repeated_throughput,
)

IDLE = "/sse/chat?prompt=idle&tokens=2&delay_ms=10000"
FAST = "/sse/chat?prompt=fast&tokens=10000&delay_ms=0"
PACED = "/sse/chat?prompt=paced&tokens=100&delay_ms=20"
IDEAL_MS = 100 * 20


@contextmanager
def serving(factory):
    server = factory()
    try:
        yield server
    finally:
        server.stop()


def measure(factory, idle_streams: int, quick: bool) -> dict:
    figures = {}
    with serving(factory) as server:
        figures["idle"] = idle_rss_per_stream(server, IDLE, idle_streams)
    with serving(factory) as server:
        figures["throughput"] = repeated_throughput(server.url + FAST, 5 if quick else 20)
        runs = [loadgen("generations", server.url + PACED, "--conns", "500")
                for _ in range(1 if quick else 3)]
        best = min(runs, key=lambda r: r["completion_ms"]["p50"])
        figures["generations"] = {
            "completion_ratio": best["completion_ms"]["p50"] / IDEAL_MS,
            "first_token_p99_ms": best["first_token_ms"]["p99"],
            "errors": best["errors"], "client_cpu_share": best["client_cpu_share"]}
        # Leave after the first token: a busy stream writes every millisecond, an idle one
        # would write again only 2 s later.
        figures["disconnect"] = {
            state: loadgen("disconnect", server.url + path, "--after-events", "1",
                           "--repeat", str(repeat), "--metrics-url", server.url + "/metrics",
                           "--gauge", 'streams_active{transport="sse"}')["drop_ms"]
            for state, path, repeat in (
                ("busy", "/sse/chat?prompt=busy&tokens=10000&delay_ms=1", 10 if quick else 30),
                ("idle", "/sse/chat?prompt=idle&tokens=5&delay_ms=2000", 5 if quick else 10))}
    return figures


def run(quick: bool) -> dict:
    return {
        "ours (gevent)": measure(ours, 5_000 if quick else 10_000, quick),
        "naive generator (gevent)": measure(naive_gevent, 5_000 if quick else 10_000, quick),
        "naive generator (gthread)": measure(naive_gthread, 5_000, quick),
    }


def table(results: dict) -> str:
    rows = [
        ("RSS per idle stream (KB; streams open)",
         lambda f: f"{f['idle']['kb_per_stream']:.1f} ({f['idle']['opened']} open)"),
        ("one stream at delay_ms=0: events/s",
         lambda f: f"{f['throughput']['events_per_s']:,.0f}"),
        ("500 x 100 x 20 ms: completion p50 / ideal; first token p99",
         lambda f: f"{f['generations']['completion_ratio']:.2f}; "
                   f"{f['generations']['first_token_p99_ms']:.0f} ms"),
        ("client disconnect noticed, busy: p50 / p99",
         lambda f: _ms(f["disconnect"]["busy"])),
        ("client disconnect noticed, idle: p50 / p99",
         lambda f: _ms(f["disconnect"]["idle"])),
    ]
    return markdown_table(results, rows)


def _ms(distribution: dict) -> str:
    if not distribution or distribution.get("n", 0) == 0:
        return "n/a"
    return f"{distribution['p50']:.1f} / {distribution['p99']:.1f} ms"
