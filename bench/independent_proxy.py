"""The relay's figures in the independent Go harness (/work/shared/bench, built into bench/build/).

`python -m bench.independent_proxy [--rounds 3] [--one-stream-tokens 100000]` starts bench-mock and
one gunicorn gevent worker of ours per PROXY_USAGE setting (on, off) against it, then in rounds
that alternate the targets runs `bench-load proxy`: 200 streams at once (100 chunks 20 ms apart),
and one stream at full speed, through `/v1` and straight to bench-mock. It writes the medians and
every round to bench/results/independent_proxy.json. The harness POSTs `/v1/chat/completions`
with `stream: true`, so the usage meter is engaged wherever PROXY_USAGE is on.

Not part of `make bench`: it needs Go, and nothing is pinned (as the harness's README says).
"""

from __future__ import annotations

import argparse
import io
import json
import pstats
import statistics
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import requests

from bench.harness import RESULTS, ROOT, cpu_ns, start, stop_soon, worker_pid
from testbed.live_server import free_port

BUILD = ROOT / "bench" / "build"
LIMITS = {"MAX_STREAMS": "10000", "MAX_STREAMS_PER_CLIENT": "10000"}


def bench_mock(stack: ExitStack) -> str:
    """bench-mock on a free port until `stack` closes: its base URL."""
    port = free_port()
    process = subprocess.Popen([str(BUILD / "bench-mock"), "-addr", f"127.0.0.1:{port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stack.callback(process.wait, 10)
    stack.callback(process.terminate)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            requests.get(url + "/stats", timeout=1)
            return url
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError("bench-mock did not start")


def _load(url: str, upstream: str, *args: str) -> dict:
    done = subprocess.run([str(BUILD / "bench-load"), "proxy", "--url", url, "--upstream",
                           upstream, "--repeat", "1", *args], capture_output=True, text=True,
                          timeout=900, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _targets(stack: ExitStack, mock: str) -> dict[str, tuple[str, int | None]]:
    """Each target's base URL and the PID of its worker (None for bench-mock)."""
    targets: dict[str, tuple[str, int | None]] = {"straight to bench-mock": (mock, None)}
    for usage in ("on", "off"):
        server = start(pin=False, env={"LOG_LEVEL": "warning", "UPSTREAM_BASE_URL": mock + "/v1",
                                       "PROXY_USAGE": usage, **LIMITS})
        stack.callback(stop_soon, server)
        targets[f"/v1, usage {usage}"] = (server.url, worker_pid(server))
    return targets


def _burst(url: str, mock: str, pid: int | None) -> dict:
    """200 streams at once; with a worker's PID, its CPU time per stream (µs) too."""
    before = cpu_ns(pid) if pid else 0
    result = _load(url, mock, "--clients", "200", "--tokens", "100", "--delay-ms", "20")
    if pid:
        result["worker_cpu_us_per_stream"] = (cpu_ns(pid) - before) / 200 / 1000
    return result


def _rounds(targets: dict, mock: str, rounds: int, tokens: int) -> dict:
    runs: dict = {name: {"burst": [], "one": []} for name in targets}
    names = list(targets)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else reversed(names):
            url, pid = targets[name]
            runs[name]["burst"].append(_burst(url, mock, pid))
            runs[name]["one"].append(_load(url, mock, "--clients", "1", "--tokens",
                                           str(tokens), "--delay-ms", "0", "--warmup", "1"))
    return runs


def _figures(runs: dict) -> dict:
    def median(results: list[dict], *keys: str) -> float:
        values = []
        for result in results:
            for key in keys:
                result = result[key]
            values.append(result)
        return statistics.median(values)

    return {name: {
        "first_chunk_p50_ms": median(r["burst"], "ttfc_ms", "p50"),
        "first_chunk_p99_ms": median(r["burst"], "ttfc_ms", "p99"),
        "first_chunk_p99_rounds": [x["ttfc_ms"]["p99"] for x in r["burst"]],
        "one_stream_chunks_per_s": statistics.median(
            x["runs"][0]["stream_chunks_per_s"] for x in r["one"]),
        "one_stream_rounds": [x["runs"][0]["stream_chunks_per_s"] for x in r["one"]],
        "complete": [x["runs"][0]["complete"] for x in r["burst"]],
        **({"worker_cpu_us_per_stream": median(r["burst"], "worker_cpu_us_per_stream")}
           if "worker_cpu_us_per_stream" in r["burst"][0] else {}),
    } for name, r in runs.items()}


GROUPS = {"requests, urllib3, http.client": ("/requests/", "/urllib3/", "/http/client.py"),
          "gevent": ("/gevent/",), "gunicorn": ("/gunicorn/",),
          "flask, werkzeug": ("/flask/", "/werkzeug/"),
          "prometheus_client": ("/prometheus_client/",),
          "json": ("/json/",), "our llm/": ("/llm/",), "our streaming/": ("/streaming/",)}


def profile_burst(mock: str, bursts: int = 3) -> dict:
    """cProfile (thread CPU time) of one worker relaying `bursts` x 200 streams at once: each
    module group's share of the worker's own time, and the tables in
    bench/results/profile_proxy_burst.txt."""
    with tempfile.TemporaryDirectory() as scratch:
        prefix = str(Path(scratch) / "profile")
        server = start(pin=False, config="bench/gunicorn_layers.py",
                       env={"LOG_LEVEL": "warning", "UPSTREAM_BASE_URL": mock + "/v1",
                            "BENCH_PROFILE": prefix, **LIMITS})
        try:
            for _ in range(bursts):
                _load(server.url, mock, "--clients", "200", "--tokens", "100", "--delay-ms", "20")
        finally:
            server.stop()  # the worker writes its profile as it exits
        text = io.StringIO()
        stats = pstats.Stats(*map(str, Path(scratch).glob("profile.*")), stream=text)
        total = sum(row[2] for row in stats.stats.values())
        shares = {group: sum(row[2] for (file, _, _), row in stats.stats.items()
                             if any(part in file for part in parts)) / total
                  for group, parts in GROUPS.items()}
        stats.strip_dirs().sort_stats("tottime").print_stats(40)
        stats.sort_stats("cumulative").print_stats(40)
    (RESULTS / "profile_proxy_burst.txt").write_text(
        f"cProfile (thread CPU time) over one worker relaying {bursts} x 200 streams at once "
        f"from bench-mock (bench/independent_proxy.py)\n" + text.getvalue())
    return shares


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--one-stream-tokens", type=int, default=100_000)
    parser.add_argument("--profile", action="store_true",
                        help="only profile a worker under the 200-stream burst")
    options = parser.parse_args()
    if options.profile:
        with ExitStack() as stack:
            shares = profile_burst(bench_mock(stack))
        (RESULTS / "profile_proxy_burst.json").write_text(json.dumps(shares, indent=2) + "\n")
        print(json.dumps(shares, indent=2))
        return
    with ExitStack() as stack:
        mock = bench_mock(stack)
        targets = _targets(stack, mock)
        figures = _figures(_rounds(targets, mock, options.rounds, options.one_stream_tokens))
    figures["rounds"] = options.rounds
    (RESULTS / "independent_proxy.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
