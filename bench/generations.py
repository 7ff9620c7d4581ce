"""The generations' scenarios: the upstream model backend beside the same run's `/v1` relay
and the demo backend, with the memory broker and with Redis.

- full speed: one generation reading the fast upstream (one HTTP chunk per event) as fast as
  it writes, through `/sse/chat`; the relay's chunks/s from the same upstream beside it;
- a burst: 200 `/sse/chat` generations at once, 100 tokens 20 ms apart from a paced upstream,
  beside 200 relayed streams from it and 200 demo-backend streams;
- resume: 200 viewers of one Redis generation reconnecting at once with a Last-Event-ID, the
  time to their first missed token;
- cuts: how long after a client leaves (grace 0), or after a `DELETE`, the upstream sees its
  stream closed (the mock's own `streams_active` gauge).

Rounds alternate the targets, so a neighbour's load falls on each of them; Redis keeps nothing
on disk here (the service's cost, not the disk's, is what is measured).
"""

from __future__ import annotations

import json
import statistics
import time
from contextlib import ExitStack

import requests

from bench.harness import (
    Size,
    burst_rounds,
    gauge_value,
    loadgen,
    markdown_table,
    ours,
    p50_p99,
    repeated_throughput,
    start,
    stop_soon,
)
from bench.proxy import CHAT, FAST_CHUNKS, FastUpstream
from testbed.redis_server import RedisServer

MEMORY, REDIS, RELAY, DEMO = ("generations, memory", "generations, Redis", "/v1 relay",
                              "demo backend")
OTHER = "generations, Redis, viewed from another instance"
FAST_PATH = "/sse/chat?prompt=fast&tokens=10000"
MOCK_GAUGE = 'streams_active{transport="mock"}'


def _backed(stack: ExitStack, upstream: str, redis_url: str = "", **env: str):
    server = ours(CHAT_BACKEND="upstream", UPSTREAM_BASE_URL=upstream, REDIS_URL=redis_url,
                  **env)
    stack.callback(stop_soon, server)
    return server


def _full_speed(results: dict, size: Size, redis_url: str) -> None:
    with ExitStack() as stack:
        fast = FastUpstream("event", size.pick(FAST_CHUNKS, FAST_CHUNKS, 2_000))
        stack.callback(fast.stop)
        memory = _backed(stack, fast.url + "/v1")
        redis = _backed(stack, fast.url + "/v1", redis_url)
        targets = {MEMORY: (memory.url + FAST_PATH,),
                   REDIS: (redis.url + FAST_PATH,),
                   RELAY: (memory.url + "/v1/chat/completions", "--method", "POST", "--body",
                           json.dumps(CHAT))}
        runs: dict = {name: [] for name in targets}
        for round_ in range(size.pick(5, 2, 1)):
            for name in targets if round_ % 2 == 0 else reversed(list(targets)):
                url, *extra = targets[name]
                runs[name].append(repeated_throughput(url, 1, "--mode", "sse", *extra))
        for name, measured in runs.items():
            results[name]["full_speed"] = {
                "events_per_s": statistics.median(r["events_per_s"] for r in measured),
                "rounds": [round(r["events_per_s"]) for r in measured]}


def _paced(stack: ExitStack, size: Size) -> FastUpstream:
    # One chunk with the role first, then a token every 20 ms, as the demo model paces them.
    paced = FastUpstream("event", size.paced_tokens + 1, pace_ms=20)
    stack.callback(paced.stop)
    return paced


def _bursts(results: dict, size: Size, redis_url: str) -> None:
    tokens = size.paced_tokens
    with ExitStack() as stack:
        paced = _paced(stack, size)
        memory = _backed(stack, paced.url + "/v1")
        redis = _backed(stack, paced.url + "/v1", redis_url)
        demo = ours()
        stack.callback(stop_soon, demo)
        path = f"/sse/chat?prompt=burst&tokens={tokens}"
        urls = {MEMORY: memory.url + path, REDIS: redis.url + path,
                RELAY: memory.url + "/v1/chat/completions", DEMO: demo.url + path + "&delay_ms=20"}
        relay_body = ("--method", "POST", "--body", json.dumps({**CHAT, "max_tokens": tokens}))
        bursts = burst_rounds(urls, size.ideal_ms(), size.pick(200, 200, 10), size.pick(5, 3, 1),
                              size, "generations", "--mode", "sse", own={RELAY: relay_body})
        for name, figures in bursts.items():
            results[name]["burst"] = figures


def _resume(results: dict, size: Size, redis_url: str) -> None:
    """Viewers that reconnect at once to a generation halfway through, after its tenth: to
    the worker running it, and with Redis to another instance (which reads Redis)."""
    after = str(size.paced_tokens // 10)
    with ExitStack() as stack:
        paced = _paced(stack, size)
        memory = _backed(stack, paced.url + "/v1")
        redis = _backed(stack, paced.url + "/v1", redis_url)
        other = _backed(stack, paced.url + "/v1", redis_url)
        servers = {MEMORY: (memory, memory), REDIS: (redis, redis), OTHER: (redis, other)}
        rounds: dict = {name: [] for name in servers}
        for round_ in range(size.pick(5, 3, 1)):
            for name in servers if round_ % 2 == 0 else reversed(list(servers)):
                runner, viewed = servers[name]
                created = requests.post(f"{runner.url}/api/generations", timeout=10, json={
                    "prompt": "resume", "tokens": size.paced_tokens}).json()
                time.sleep(size.ideal_ms() / 2000)  # halfway through its tokens
                rounds[name].append(loadgen(
                    "generations", viewed.url + created["events_url"], "--conns",
                    str(size.pick(200, 200, 10)), "--header", f"Last-Event-ID: {after}"))
        for name, measured in rounds.items():
            ordered = sorted(measured, key=lambda r: r["first_token_ms"]["p99"] or 0)
            results[name]["resume"] = {
                "first_missed_ms": ordered[(len(ordered) - 1) // 2]["first_token_ms"],
                "errors": sum(r["errors"] for r in measured),
                "p99_rounds": [r["first_token_ms"]["p99"] for r in measured]}


def _mock_streams(mock) -> float:
    return gauge_value(mock, MOCK_GAUGE) or 0.0


def _cut_after_delete(server, mock, repeat: int) -> list[float]:
    """Milliseconds from a `DELETE` being sent to the upstream's stream being closed."""
    cuts = []
    for _ in range(repeat):
        created = requests.post(f"{server.url}/api/generations", timeout=10,
                                json={"prompt": "cut", "tokens": 1000}).json()
        deadline = time.monotonic() + 10
        while _mock_streams(mock) < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        sent = time.monotonic()
        requests.delete(server.url + created["status_url"], timeout=10)
        while _mock_streams(mock) > 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        cuts.append((time.monotonic() - sent) * 1000)
    return cuts


def _distribution(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"n": len(ordered), "p50": statistics.median(ordered),
            "p99": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]}


def _cuts(results: dict, size: Size) -> None:
    with ExitStack() as stack:
        mock = start(pin=False, env={"LOG_LEVEL": "warning"})
        stack.callback(stop_soon, mock)
        server = _backed(stack, mock.url + "/mock/v1", GENERATION_GRACE_SECONDS="0")
        repeat = size.pick(30, 10, 2)
        results[MEMORY]["cut_after_disconnect_ms"] = loadgen(
            "disconnect", server.url + "/sse/chat?prompt=cut&tokens=1000", "--after-events",
            "2", "--repeat", str(repeat), "--metrics-url", mock.url + "/metrics", "--gauge",
            MOCK_GAUGE)["drop_ms"]
        results[MEMORY]["cut_after_delete_ms"] = _distribution(
            _cut_after_delete(server, mock, repeat))


def run(size: Size) -> dict:
    results: dict = {name: {} for name in (MEMORY, REDIS, OTHER, RELAY, DEMO)}
    redis_server = RedisServer(durable=False).start()
    try:
        _full_speed(results, size, redis_server.url)
        _bursts(results, size, redis_server.url)
        _resume(results, size, redis_server.url)
        _cuts(results, size)
    finally:
        redis_server.remove()
    return results


def table(results: dict) -> str:
    def cell(key: str, render):
        return lambda figures: render(figures[key]) if key in figures else "-"

    rows = [
        ("one generation at full speed: tokens (relay: chunks) per s",
         cell("full_speed", lambda f: f"{f['events_per_s']:,.0f}")),
        ("200 x 100 x 20 ms: first token (relay: chunk) p50 / p99",
         cell("burst", lambda f: p50_p99(f["first_token_ms"]))),
        ("200 x 100 x 20 ms: completion p50 / ideal",
         cell("burst", lambda f: f"{f['completion_ratio']:.2f}")),
        ("200 viewers resuming at once: first missed token p50 / p99",
         cell("resume", lambda f: p50_p99(f["first_missed_ms"], 1))),
        ("client gone (grace 0) -> upstream cut: p50 / p99",
         cell("cut_after_disconnect_ms", lambda f: p50_p99(f, 1))),
        ("DELETE -> upstream cut: p50 / p99",
         cell("cut_after_delete_ms", lambda f: p50_p99(f, 1))),
    ]
    return markdown_table(results, rows)
