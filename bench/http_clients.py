"""The relay's upstream HTTP client, measured alone: requests (with llm/pool.py's adapter, read as
llm/relay.py reads it) against geventhttpclient's pooled HTTPClient, under gevent.

`python -m bench.http_clients [--rounds 5]` starts bench-mock (the Go upstream of the independent
harness, built into bench/build/: it is not the bottleneck, as a Python upstream would be under 200
streams), then in rounds that alternate the clients measures in this one process, with the
relay's own request (`POST /v1/chat/completions`, `stream: true`): 200 streams at once (time to
the first body byte, p50/p99), one stream's chunks/s, and CPU per short request
(time.process_time over requests one after another). A
cProfile of each client's one-stream read says what share of it is the client library. Writes
bench/results/http_clients.json and bench/results/profile_http_<client>.txt.

Not part of `make bench`: geventhttpclient is not a dependency of the service.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import pstats  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from contextlib import ExitStack  # noqa: E402

import gevent  # noqa: E402
import requests  # noqa: E402
from geventhttpclient import URL, HTTPClient  # noqa: E402

from bench.harness import RESULTS  # noqa: E402
from bench.independent_proxy import bench_mock  # noqa: E402
from llm.pool import PooledAdapter  # noqa: E402
from llm.relay import READ_SIZE, chunked_payloads  # noqa: E402

BURST = 200
BURST_TOKENS, PACE_MS = 10, 20
SHORT_TOKENS, SHORT_REQUESTS = 5, 2_000
PATH = "/v1/chat/completions"
LIBRARIES = {"requests": ("/requests/", "/urllib3/", "/http/client.py"),
             "geventhttpclient": ("/geventhttpclient/",)}
ENTRIES = {"requests": ("requests/sessions.py", "request"),
           "geventhttpclient": ("geventhttpclient/client.py", "request")}


class RequestsClient:
    """The relay's way: a pooled session, the chunked body decoded by `chunked_payloads`."""

    name = "requests"

    def __init__(self, base: str, body: bytes) -> None:
        self.url, self.body = base + PATH, body
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.mount("http://", PooledAdapter(pool_maxsize=BURST + 8))

    def stream(self) -> tuple[float, int]:
        """(seconds to the first body byte, body bytes) of one GET."""
        began = time.perf_counter()
        first, size = 0.0, 0
        with self.session.post(self.url, data=self.body, headers=JSON, stream=True,
                               timeout=(5, 60)) as response:
            for payload in chunked_payloads(response.raw):
                first = first or time.perf_counter() - began
                size += len(payload)
        return first, size


class GeventClient:
    """geventhttpclient's HTTPClient with a pool as large as the burst; it decodes chunking."""

    name = "geventhttpclient"

    def __init__(self, base: str, body: bytes) -> None:
        self.body = body
        url = URL(base)
        self.client = HTTPClient(url.host, url.port, concurrency=BURST + 8,
                                 network_timeout=60, connection_timeout=5)

    def stream(self) -> tuple[float, int]:
        began = time.perf_counter()
        first, size = 0.0, 0
        response = self.client.post(PATH, self.body, headers=JSON)
        try:
            while payload := read_available(response):
                first = first or time.perf_counter() - began
                size += len(payload)
        finally:
            response.release()
        return first, size


def read_available(response) -> bytes:
    """The decoded body bytes one socket read brings, as the relay reads (`read1`).

    geventhttpclient's public `read(n)` waits until n bytes or the end, which would hold a paced
    stream's first chunk back; reading what has arrived takes its private buffer and socket."""
    while not response._body_buffer and not response.message_complete:
        response.feed(response._sock.recv(READ_SIZE))
    data = bytes(response._body_buffer)
    del response._body_buffer[:]
    return data


CLIENTS = (RequestsClient, GeventClient)
JSON = {"Content-Type": "application/json"}


def chat(tokens: int, delay_ms: int = 0) -> bytes:
    return json.dumps({"model": "mock", "messages": [{"role": "user", "content": "bench"}],
                       "stream": True, "max_tokens": tokens, "delay_ms": delay_ms}).encode()


def _burst(client) -> dict:
    jobs = [gevent.spawn(client.stream) for _ in range(BURST)]
    gevent.joinall(jobs, raise_error=True)
    firsts = sorted(job.value[0] * 1000 for job in jobs)
    return {"p50": firsts[len(firsts) // 2], "p99": firsts[int(len(firsts) * 0.99) - 1]}


def _one_stream(client, chunks: int, sizes: set[int]) -> float:
    """Chunks/s of one full-speed stream; its body size goes in `sizes`, which every client's
    read of the same stream must leave with one member."""
    began = time.perf_counter()
    _, size = client.stream()
    sizes.add(size)
    return chunks / (time.perf_counter() - began)


def _cpu_per_request(client) -> float:
    began = time.process_time()
    for _ in range(SHORT_REQUESTS):
        client.stream()
    return (time.process_time() - began) / SHORT_REQUESTS * 1e6


def _profile(call, label: str, name: str) -> dict:
    """Profile `call` in CPU time (waits under gevent are not counted): the share of it spent in
    the library's request call (sending, up to the parsed head, all it calls included), and
    the share spent in the library's own modules. The table (top 25 by own time) goes to
    bench/results/profile_http_<name>_<label>.txt."""
    profile = cProfile.Profile(time.process_time)
    profile.runcall(call)
    stats = pstats.Stats(profile)
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(25)
    (RESULTS / f"profile_http_{name}_{label}.txt").write_text(out.getvalue())
    rows = stats.stats.items()  # (path, line, function) -> (calls, calls, own, inclusive, _)
    total = sum(row[2] for _, row in rows)
    path, function = ENTRIES[name]
    request = sum(row[3] for (file, _, func), row in rows
                  if file.endswith(path) and func == function)
    own = sum(row[2] for (file, _, _), row in rows
              if any(part in file for part in LIBRARIES[name]))
    return {"request_call": request / total, "library_own": own / total}


def _library_shares(mock: str, chunks: int) -> dict:
    """Per client: the library's shares of one full-speed stream and of short requests."""
    shares = {}
    for kind in CLIENTS:
        fast, short = kind(mock, chat(chunks)), kind(mock, chat(SHORT_TOKENS))
        short.stream()
        shares[kind.name] = {
            "one_stream": _profile(fast.stream, "one_stream", kind.name),
            "short_requests": _profile(lambda short=short: [short.stream() for _ in range(500)],
                                       "short_requests", kind.name)}
    return shares


def _rounds(mock: str, rounds: int, chunks: int) -> dict:
    runs: dict = {c.name: {"burst": [], "one_stream": [], "cpu_us": []} for c in CLIENTS}
    bodies = (chat(BURST_TOKENS, PACE_MS), chat(chunks), chat(SHORT_TOKENS))
    sizes: set[int] = set()
    for round_ in range(rounds):
        for kind in CLIENTS if round_ % 2 == 0 else reversed(CLIENTS):
            paced, fast, short = (kind(mock, body) for body in bodies)
            paced.stream()  # a connection made before the clock starts, as in the relay
            runs[kind.name]["burst"].append(_burst(paced))
            runs[kind.name]["one_stream"].append(_one_stream(fast, chunks + 2, sizes))
            runs[kind.name]["cpu_us"].append(_cpu_per_request(short))
    if len(sizes) != 1:
        raise RuntimeError(f"the clients read different bodies: {sorted(sizes)} bytes")
    return runs


def _medians(runs: dict, shares: dict) -> dict:
    return {name: {
        "first_byte_p50_ms": statistics.median(r["p50"] for r in run["burst"]),
        "first_byte_p99_ms": statistics.median(r["p99"] for r in run["burst"]),
        "first_byte_p99_rounds": [round(r["p99"], 1) for r in run["burst"]],
        "one_stream_chunks_per_s": statistics.median(run["one_stream"]),
        "one_stream_rounds": [round(r) for r in run["one_stream"]],
        "cpu_us_per_request": statistics.median(run["cpu_us"]),
        "cpu_us_rounds": [round(r) for r in run["cpu_us"]],
        "library_share": shares[name],
    } for name, run in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chunks", type=int, default=100_000)
    options = parser.parse_args()
    with ExitStack() as stack:
        mock = bench_mock(stack)
        runs = _rounds(mock, options.rounds, options.chunks)
        shares = _library_shares(mock, options.chunks)
    figures = {**_medians(runs, shares), "rounds": options.rounds, "burst": BURST,
               "chunks": options.chunks}
    (RESULTS / "http_clients.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
