"""Issue 4's scenarios: the proxy beside going straight to the upstream and a naive proxy."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import ExitStack

import requests

from bench.harness import (
    ROOT,
    loadgen,
    markdown_table,
    repeated_throughput,
    rss_kb,
    start,
    worker_pid,
)
from tests.live_server import free_port

FAST_CHUNKS = 100_000
CHAT = {"model": "demo", "messages": [{"role": "user", "content": "bench"}], "stream": True}
PACED = json.dumps({**CHAT, "max_tokens": 100, "delay_ms": 20})
IDEAL_MS = 100 * 20


class FastUpstream:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, "-m", "bench.fast_upstream",
                                         str(self.port), str(FAST_CHUNKS)], cwd=ROOT)
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
    stack.callback(ours.stop)
    naive = start(app="bench.naive_proxy:app", config=None, ready_path="/v1/models",
                  env={"UPSTREAM": upstream},
                  args=("-k", "gevent", "-w", "1", "--worker-connections", "20000",
                        "--log-level", "warning"))
    stack.callback(naive.stop)
    return {"ours": ours, "naive": naive}


def _raw_body(url: str) -> bytes:
    with requests.post(url + "/chat/completions", json=CHAT, stream=True, timeout=60) as r:
        return b"".join(r.raw.stream(65536, decode_content=False))


def run(quick: bool) -> dict:
    results: dict = {"straight to the upstream": {}, "ours proxy": {}, "naive proxy": {}}
    with ExitStack() as stack:
        fast = FastUpstream()
        stack.callback(fast.stop)
        proxies = _proxies(stack, fast.url + "/v1")
        targets = {"straight to the upstream": fast.url + "/v1",
                   "ours proxy": proxies["ours"].url + "/v1",
                   "naive proxy": proxies["naive"].url + "/v1"}
        direct = _raw_body(targets["straight to the upstream"])
        for name, base in targets.items():
            results[name]["throughput"] = repeated_throughput(
                base + "/chat/completions", 2 if quick else 5, "--mode", "sse",
                "--method", "POST", "--body", json.dumps(CHAT))
            results[name]["identical"] = _raw_body(base) == direct
        pid = worker_pid(proxies["ours"])
        before = rss_kb(pid)
        for _ in range(3 if quick else 10):
            _raw_body(targets["ours proxy"])
        results["ours proxy"]["rss_growth_kb"] = rss_kb(pid) - before
        results["ours proxy"]["relayed_mb"] = len(direct) * (3 if quick else 10) / 1e6
    with ExitStack() as stack:
        mock = start(pin=False, env={"LOG_LEVEL": "warning"})
        stack.callback(mock.stop)
        proxies = _proxies(stack, mock.url + "/mock/v1")
        targets = {"straight to the upstream": mock.url + "/mock/v1",
                   "ours proxy": proxies["ours"].url + "/v1",
                   "naive proxy": proxies["naive"].url + "/v1"}
        for name, base in targets.items():
            runs = [loadgen("generations", base + "/chat/completions", "--conns", "200",
                            "--mode", "sse", "--method", "POST", "--body", PACED)
                    for _ in range(1 if quick else 3)]
            best = min(runs, key=lambda r: r["completion_ms"]["p50"])
            results[name]["generations"] = {
                "completion_ratio": best["completion_ms"]["p50"] / IDEAL_MS,
                "first_chunk_p99_ms": best["first_token_ms"]["p99"], "errors": best["errors"]}
            if name != "straight to the upstream":
                results[name]["cut_ms"] = loadgen(
                    "disconnect", base + "/chat/completions", "--method", "POST",
                    "--body", json.dumps({**CHAT, "max_tokens": 1000, "delay_ms": 20}),
                    "--after-events", "2", "--repeat", "10" if quick else "30",
                    "--metrics-url", mock.url + "/metrics",
                    "--gauge", 'streams_active{transport="mock"}')["drop_ms"]
    return results


def table(results: dict) -> str:
    names = list(results)
    rows = [
        ("one stream at full speed: chunks/s",
         lambda f: f"{f['throughput']['events_per_s']:,.0f}"),
        ("200 x 100 x 20 ms: completion p50 / ideal; first chunk p99",
         lambda f: f"{f['generations']['completion_ratio']:.2f}; "
                   f"{f['generations']['first_chunk_p99_ms']:.0f} ms"),
        ("client gone -> upstream stream cut: p50 / p99",
         lambda f: (f"{f['cut_ms']['p50']:.1f} / {f['cut_ms']['p99']:.1f} ms"
                    if "cut_ms" in f else "-")),
        ("body compared with the upstream's",
         lambda f: "-" if "identical" not in f or f is results[names[0]]
         else ("identical" if f["identical"] else "differs")),
        ("proxy RSS growth after relaying (MB relayed)",
         lambda f: (f"{f['rss_growth_kb']} KB ({f['relayed_mb']:.0f} MB)"
                    if "rss_growth_kb" in f else "-")),
    ]
    return markdown_table(results, rows)
