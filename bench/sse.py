"""Issues 2 and 8's scenarios: SSE on our server beside the naive Flask generator (gevent,
gthread).

Memory is measured on a fresh server per app. The burst (500 paced generations at once) runs
on servers started together, in rounds that alternate the apps; each figure is from the median
round (by first-token p99), so load from a neighbour on a shared machine falls on a round of
every app rather than on one app. The median round's per-stream times are kept as CSV for the
plots.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack

from bench.harness import (
    Size,
    burst_rounds,
    idle_rss_per_stream,
    kb_per_stream,
    loadgen,
    markdown_table,
    naive_gevent,
    naive_gthread,
    ours,
    p50_p99,
    repeated_throughput,
    serving,
)

# Long streams, as real chats are: a stream of 10,000 tokens must not cost more while idle.
IDLE = "/sse/chat?prompt=idle&tokens=10000&delay_ms=10000"
FAST = "/sse/chat?prompt=fast&tokens=10000&delay_ms=0"
GAUGE = 'streams_active{transport="sse"}'

APPS: dict[str, Callable] = {
    "ours (gevent)": ours,
    "naive generator (gevent)": naive_gevent,
    "naive generator (gthread)": naive_gthread,
}


def _memory(factory, idle_streams: int, size: Size) -> dict:
    with serving(factory) as server:
        return idle_rss_per_stream(server, IDLE, idle_streams, gauge=GAUGE,
                                   settle=size.pick(1.0, 1.0, 0.2))


def _steady(server, size: Size) -> dict:
    busy, idle = size.pick(30, 10, 2), size.pick(10, 5, 1)
    gap = size.pick(2000, 2000, 200)  # between tokens of the idle stream
    return {
        "throughput": repeated_throughput(server.url + FAST, size.pick(20, 5, 1)),
        # Leave after the first token: a busy stream writes every millisecond, an idle one
        # would write again only `gap` ms later.
        "disconnect": {
            state: loadgen("disconnect", server.url + path, "--after-events", "1",
                           "--repeat", str(repeat), "--metrics-url", server.url + "/metrics",
                           "--gauge", GAUGE)["drop_ms"]
            for state, path, repeat in (
                ("busy", "/sse/chat?prompt=busy&tokens=10000&delay_ms=1", busy),
                ("idle", f"/sse/chat?prompt=idle&tokens=5&delay_ms={gap}", idle))}}


def run(size: Size) -> dict:
    results: dict = {name: {} for name in APPS}
    for name, factory in APPS.items():
        streams = size.pick(5_000 if "gthread" in name else 10_000, 2_000, 50)
        results[name]["idle"] = _memory(factory, streams, size)
    with ExitStack() as stack:
        servers = {}
        for name, factory in APPS.items():
            servers[name] = stack.enter_context(serving(factory))
        for name, server in servers.items():
            results[name].update(_steady(server, size))
        paced = f"/sse/chat?prompt=paced&tokens={size.paced_tokens}&delay_ms=20"
        urls = {name: server.url + paced for name, server in servers.items()}
        bursts = burst_rounds(urls, size.ideal_ms(), size.pick(500, 500, 20), size.pick(5, 1, 1),
                              size, "sse")
    for name, figures in bursts.items():
        results[name]["generations"] = figures
    return results


def table(results: dict) -> str:
    rows = [
        ("RSS per idle stream, `tokens=10000` (streams open)", lambda f: kb_per_stream(f["idle"])),
        ("one stream at `delay_ms=0`: events/s",
         lambda f: f"{f['throughput']['events_per_s']:,.0f}"),
        ("500 x 100 x 20 ms: first token p50 / p99",
         lambda f: p50_p99(f["generations"]["first_token_ms"])),
        ("500 x 100 x 20 ms: response head p50 / p99",
         lambda f: p50_p99(f["generations"]["head_ms"])),
        ("500 x 100 x 20 ms: completion p50 / ideal",
         lambda f: f"{f['generations']['completion_ratio']:.2f}"),
        ("client disconnect noticed, busy: p50 / p99",
         lambda f: p50_p99(f["disconnect"]["busy"], 1)),
        ("client disconnect noticed, idle: p50 / p99",
         lambda f: p50_p99(f["disconnect"]["idle"], 1)),
    ]
    return markdown_table(results, rows)
