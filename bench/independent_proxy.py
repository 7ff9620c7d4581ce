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
import json
import statistics
import subprocess
import time
from contextlib import ExitStack

import requests

from bench.harness import RESULTS, ROOT, start, stop_soon
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


def _targets(stack: ExitStack, mock: str) -> dict[str, str]:
    targets = {"straight to bench-mock": mock}
    for usage in ("on", "off"):
        server = start(pin=False, env={"LOG_LEVEL": "warning", "UPSTREAM_BASE_URL": mock + "/v1",
                                       "PROXY_USAGE": usage, **LIMITS})
        stack.callback(stop_soon, server)
        targets[f"/v1, usage {usage}"] = server.url
    return targets


def _rounds(targets: dict[str, str], mock: str, rounds: int, tokens: int) -> dict:
    runs: dict = {name: {"burst": [], "one": []} for name in targets}
    names = list(targets)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else reversed(names):
            runs[name]["burst"].append(_load(targets[name], mock, "--clients", "200",
                                             "--tokens", "100", "--delay-ms", "20"))
            runs[name]["one"].append(_load(targets[name], mock, "--clients", "1", "--tokens",
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
    } for name, r in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--one-stream-tokens", type=int, default=100_000)
    options = parser.parse_args()
    with ExitStack() as stack:
        mock = bench_mock(stack)
        targets = _targets(stack, mock)
        figures = _figures(_rounds(targets, mock, options.rounds, options.one_stream_tokens))
    figures["rounds"] = options.rounds
    (RESULTS / "independent_proxy.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
