"""The proxy's scenarios: the proxy beside going straight to the upstream and a naive proxy."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack

import requests

from bench.fast_upstream import FRAMINGS
from bench.harness import (
    ROOT,
    Size,
    burst_rounds,
    loadgen,
    markdown_table,
    p50_p99,
    repeated_throughput,
    rss_kb,
    start,
    stop_soon,
    worker_pid,
)
from testbed.live_server import free_port

FAST_CHUNKS = 100_000
CHAT = {"model": "demo", "messages": [{"role": "user", "content": "bench"}], "stream": True}


class FastUpstream:
    """`bench/fast_upstream.py` in a process of its own, framing events as `framing` says."""

    def __init__(self, framing: str, chunks: int = FAST_CHUNKS, pace_ms: float = 0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, "-m", "bench.fast_upstream",
                                         str(self.port), str(chunks), "--framing", framing,
                                         "--pace-ms", str(pace_ms)], cwd=ROOT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.get(self.url, timeout=1, stream=True).close()
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("the fast upstream did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _proxies(stack: ExitStack, upstream: str) -> dict:
    ours = start(env={"LOG_LEVEL": "warning", "UPSTREAM_BASE_URL": upstream})
    stack.callback(stop_soon, ours)
    naive = start(app="bench.naive_proxy:app", config=None, ready_path="/v1/models",
                  env={"UPSTREAM": upstream},
                  args=("-k", "gevent", "-w", "1", "--worker-connections", "20000",
                        "--log-level", "warning"))
    stack.callback(stop_soon, naive)
    return {"ours": ours, "naive": naive}


def _raw_body(url: str) -> bytes:
    with requests.post(url + "/chat/completions", json=CHAT, stream=True, timeout=60) as r:
        return b"".join(r.raw.stream(65536, decode_content=False))


NAMES = ("straight to the upstream", "ours proxy", "naive proxy")


def _fast_runs(results: dict, framing: str, size: Size) -> None:
    """One stream at full speed from the fast upstream framing as `framing` says; bytes."""
    key = "throughput" if framing == "event" else "throughput_pieces"
    with ExitStack() as stack:
        fast = FastUpstream(framing, size.pick(FAST_CHUNKS, FAST_CHUNKS, 2_000))
        stack.callback(fast.stop)
        proxies = _proxies(stack, fast.url + "/v1")
        targets = dict(zip(NAMES, (fast.url + "/v1", proxies["ours"].url + "/v1",
                                   proxies["naive"].url + "/v1"), strict=True))
        direct = _raw_body(targets[NAMES[0]])
        # Alternate the targets, so a neighbour's load falls on every one of them.
        runs: dict = {name: [] for name in NAMES}
        for _ in range(size.pick(5, 2, 1)):
            for name, base in targets.items():
                runs[name].append(repeated_throughput(
                    base + "/chat/completions", 1, "--mode", "sse", "--method", "POST",
                    "--body", json.dumps(CHAT)))
        for name, base in targets.items():
            results[name][key] = {
                "events_per_s": statistics.median(r["events_per_s"] for r in runs[name]),
                "rounds": [round(r["events_per_s"]) for r in runs[name]]}
            results[name].setdefault("identical", True)
            results[name]["identical"] &= _raw_body(base) == direct
        if framing == "event":
            pid = worker_pid(proxies["ours"])
            before = rss_kb(pid)
            relays = size.pick(10, 3, 1)
            for _ in range(relays):
                _raw_body(targets["ours proxy"])
            results["ours proxy"]["rss_growth_kb"] = rss_kb(pid) - before
            results["ours proxy"]["relayed_mb"] = len(direct) * relays / 1e6


USAGE_NAMES = ("usage on", "usage off")


def _usage_proxies(stack: ExitStack, upstream: str) -> dict[str, str]:
    """Our proxy with PROXY_USAGE on and off: the `/v1` base of each."""
    bases = {}
    for name in USAGE_NAMES:
        server = start(env={"LOG_LEVEL": "warning", "UPSTREAM_BASE_URL": upstream,
                            "PROXY_USAGE": name.split()[-1]})
        stack.callback(stop_soon, server)
        bases[name] = server.url + "/v1"
    return bases


def _usage_throughput(size: Size) -> dict:
    """One stream's chunks/s with the usage meter reading every piece, and without it."""
    with ExitStack() as stack:
        fast = FastUpstream("event", size.pick(FAST_CHUNKS, FAST_CHUNKS, 2_000))
        stack.callback(fast.stop)
        bases = _usage_proxies(stack, fast.url + "/v1")
        runs: dict = {name: [] for name in USAGE_NAMES}
        for round_ in range(size.pick(7, 3, 1)):
            for name in USAGE_NAMES if round_ % 2 == 0 else reversed(USAGE_NAMES):
                runs[name].append(loadgen(
                    "throughput", bases[name] + "/chat/completions", "--mode", "sse",
                    "--method", "POST", "--body", json.dumps(CHAT))["events_per_s"])
    return {name: {"events_per_s": statistics.median(rounds),
                   "rounds": [round(r) for r in rounds]} for name, rounds in runs.items()}


def _usage_burst(size: Size) -> dict:
    """200 paced streams through the proxy with usage on and off, the mock as upstream."""
    with ExitStack() as stack:
        mock = start(pin=False, env={"LOG_LEVEL": "warning"})
        stack.callback(stop_soon, mock)
        bases = _usage_proxies(stack, mock.url + "/mock/v1")
        return burst_rounds({name: base + "/chat/completions" for name, base in bases.items()},
                            size.ideal_ms(), size.pick(200, 200, 10), size.pick(5, 3, 1),
                            size, "proxy_usage", "--mode", "sse", "--method", "POST",
                            "--body", json.dumps({**CHAT, "max_tokens": size.paced_tokens,
                                                  "delay_ms": 20}))


def usage_overhead(size: Size) -> dict:
    """What reading usage as events pass costs: on / off of one stream's chunks/s and of the
    200-stream first-chunk p99 (each the median of alternated rounds)."""
    throughput, burst = _usage_throughput(size), _usage_burst(size)
    on, off = USAGE_NAMES
    return {
        "throughput": throughput, "generations": burst,
        "throughput_ratio": throughput[on]["events_per_s"] / throughput[off]["events_per_s"],
        "first_chunk_p99_ratio": (burst[on]["first_token_ms"]["p99"]
                                  / burst[off]["first_token_ms"]["p99"]),
        "first_chunk_p99_rounds_median_ratio": (
            statistics.median(burst[on]["first_token_p99_rounds"])
            / statistics.median(burst[off]["first_token_p99_rounds"]))}


def run(size: Size) -> dict:
    results: dict = {name: {} for name in NAMES}
    for framing in FRAMINGS:
        _fast_runs(results, framing, size)
    results["usage"] = usage_overhead(size)
    with ExitStack() as stack:
        mock = start(pin=False, env={"LOG_LEVEL": "warning"})
        stack.callback(stop_soon, mock)
        proxies = _proxies(stack, mock.url + "/mock/v1")
        bases = dict(zip(NAMES, (mock.url + "/mock/v1", proxies["ours"].url + "/v1",
                                 proxies["naive"].url + "/v1"), strict=True))
        bursts = burst_rounds({name: base + "/chat/completions" for name, base in bases.items()},
                              size.ideal_ms(), size.pick(200, 200, 10), size.pick(5, 1, 1),
                              size, "proxy", "--mode", "sse", "--method", "POST", "--body",
                              json.dumps({**CHAT, "max_tokens": size.paced_tokens,
                                          "delay_ms": 20}))
        for name, figures in bursts.items():
            results[name]["generations"] = figures
        for name in NAMES[1:]:
            results[name]["cut_ms"] = loadgen(
                "disconnect", bases[name] + "/chat/completions", "--method", "POST",
                "--body", json.dumps({**CHAT, "max_tokens": 1000, "delay_ms": 20}),
                "--after-events", "2", "--repeat", str(size.pick(30, 10, 2)),
                "--metrics-url", mock.url + "/metrics",
                "--gauge", 'streams_active{transport="mock"}')["drop_ms"]
    return results


def table(results: dict) -> str:
    rows = [
        ("one stream at full speed, one HTTP chunk per event: chunks/s",
         lambda f: f"{f['throughput']['events_per_s']:,.0f}"),
        ("one stream at full speed, upstream writing 64 KiB pieces: chunks/s",
         lambda f: f"{f['throughput_pieces']['events_per_s']:,.0f}"),
        ("200 x 100 x 20 ms: first chunk p50 / p99",
         lambda f: p50_p99(f["generations"]["first_token_ms"])),
        ("200 x 100 x 20 ms: completion p50 / ideal",
         lambda f: f"{f['generations']['completion_ratio']:.2f}"),
        ("client gone -> upstream stream cut: p50 / p99",
         lambda f: p50_p99(f["cut_ms"], 1) if "cut_ms" in f else "-"),
        ("body compared with the upstream's (both framings)",
         lambda f: "-" if f is results[NAMES[0]]
         else ("identical" if f["identical"] else "differs")),
        ("proxy RSS growth after relaying (MB relayed)",
         lambda f: (f"{f['rss_growth_kb']} KB ({f['relayed_mb']:.0f} MB)"
                    if "rss_growth_kb" in f else "-")),
    ]
    proxies = {name: figures for name, figures in results.items() if name in NAMES}
    return markdown_table(proxies, rows) + "\n\n" + usage_table(results["usage"])


def usage_table(usage: dict) -> str:
    """The usage meter's cost: PROXY_USAGE on beside off, and the ratio."""
    on, off = (usage["throughput"][name]["events_per_s"] for name in USAGE_NAMES)
    p99_on, p99_off = (usage["generations"][name]["first_token_ms"]["p99"]
                       for name in USAGE_NAMES)
    return "\n".join([
        "| PROXY_USAGE | on | off | on / off |", "|---|---|---|---|",
        f"| one stream: chunks/s | {on:,.0f} | {off:,.0f} | {usage['throughput_ratio']:.3f} |",
        f"| 200 at once: first chunk p99 | {p99_on:.0f} ms | {p99_off:.0f} ms "
        f"| {usage['first_chunk_p99_ratio']:.3f} |"])
