"""What every benchmark scenario needs: servers to measure, the load client, the worker's RSS."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from testbed.live_server import ROOT, LiveServer

LOADGEN = ROOT / "bench" / "build" / "loadgen"
RESULTS = ROOT / "bench" / "results"
PACED_DELAY_MS = 20


@dataclass(frozen=True)
class Size:
    """How big a run is: `full` for bench/README.md's figures, `quick` to look, `smoke` for CI
    (every scenario at a tiny size: the harness keeps working, the figures mean nothing)."""

    name: str

    def pick(self, full, quick, smoke):
        return {"full": full, "quick": quick, "smoke": smoke}[self.name]

    @property
    def paced_tokens(self) -> int:
        """Tokens per stream in the bursts, PACED_DELAY_MS apart: 100, or 10 in a smoke run."""
        return self.pick(100, 100, 10)

    def ideal_ms(self) -> float:
        """How long a burst's stream takes with no overhead at all."""
        return self.paced_tokens * PACED_DELAY_MS

    @property
    def results(self) -> Path:
        """Where this size writes: smoke runs never overwrite the measured results."""
        return RESULTS if self.name != "smoke" else ROOT / "bench" / "build" / "smoke-results"

# On 2 cores, the measured worker gets one and the load client the other: left to the
# scheduler, the two sometimes share a core and the same run reads half or double.
SERVER_CPU, CLIENT_CPU = {0}, {1 % (os.cpu_count() or 1)}


def _client_cpu() -> None:
    os.sched_setaffinity(0, CLIENT_CPU)


def loadgen(command: str, url: str, *args: str, timeout: float = 300) -> dict:
    """Run the compiled load client once and return the JSON object it prints."""
    done = subprocess.run([str(LOADGEN), command, "--url", url, *args], capture_output=True,
                          text=True, timeout=timeout, check=False, preexec_fn=_client_cpu)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen {command} failed: {done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def loadgen_started(command: str, url: str, *args: str) -> subprocess.Popen:
    """The load client running in the background, for what is read while it runs."""
    return subprocess.Popen([str(LOADGEN), command, "--url", url, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            preexec_fn=_client_cpu)


def loadgen_result(process: subprocess.Popen, timeout: float = 300) -> dict:
    out, _ = process.communicate(timeout=timeout)
    return json.loads(out.strip().splitlines()[-1])


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_ns(pid: int) -> int:
    """CPU time a process has used, in nanoseconds (the scheduler's own count, not ticks)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def worker_pid(server: LiveServer) -> int:
    pids = server.worker_pids()
    if len(pids) != 1:
        raise RuntimeError(f"expected one worker, found {pids}")
    return pids[0]


def gauge_value(server: LiveServer, line_start: str) -> float | None:
    """The value of the /metrics line starting with `line_start` (a NAME{labels})."""
    text = requests.get(server.url + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def idle_rss_per_stream(server: LiveServer, path: str, conns: int, *extra: str,
                        ramp: int = 2000, gauge: str | None = None, settle: float = 1.0) -> dict:
    """Open `conns` idle streams (`ramp` a second), read the worker's RSS `settle` seconds after
    all are open, then close them. With `gauge` (a /metrics line counting open streams), the RSS
    is also sampled against it while the streams open: `series`, pairs of (streams, RSS KB)."""
    pid = worker_pid(server)
    before = rss_kb(pid)
    series = [(0, before)]
    with tempfile.TemporaryDirectory() as scratch:
        ready = Path(scratch) / "ready"
        process = loadgen_started("idle", server.url + path, "--conns", str(conns),
                                  "--ramp-per-sec", str(ramp), "--hold", str(2 * settle + 0.5),
                                  "--ready-file", str(ready), *extra)
        deadline = time.monotonic() + conns / ramp + 60
        while not ready.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.25)
            if gauge:
                series.append((gauge_value(server, gauge), rss_kb(pid)))
        time.sleep(settle)  # let the last handshakes settle into their idle state
        held = rss_kb(pid)
        if gauge:
            series.append((gauge_value(server, gauge), held))
        result = loadgen_result(process)
    opened = result["opened"] or 1
    return {"kb_per_stream": (held - before) / opened, "opened": result["opened"],
            "failed": result["failed"], "handshake_ms": result["handshake_ms"],
            "rss_before_kb": before, "rss_held_kb": held,
            **({"series": series} if gauge else {})}


def repeated_throughput(url: str, runs: int, *extra: str) -> dict:
    """One stream at a time, `runs` times: events per second over all of them."""
    results = [loadgen("throughput", url, *extra) for _ in range(runs)]
    events = sum(r["events"] for r in results)
    seconds = sum(r["seconds"] for r in results)
    return {"events_per_s": events / seconds, "events": events, "seconds": seconds,
            "client_cpu_share": max(r["client_cpu_share"] for r in results)}


_stopping: list[threading.Thread] = []


def stop_soon(server: LiveServer) -> None:
    """Stop `server` in the background: gunicorn's gevent worker sees a SIGTERM only at its next
    one-second tick, and a run starts dozens of servers. `wait_stopped()` joins them."""
    thread = threading.Thread(target=server.stop)
    thread.start()
    _stopping.append(thread)


def wait_stopped() -> None:
    while _stopping:
        _stopping.pop().join()


@contextmanager
def serving(factory):
    server = factory()
    try:
        yield server
    finally:
        stop_soon(server)


OwnArgs = tuple[str, ...] | Callable[[int], tuple[str, ...]]


def burst_rounds(urls: dict[str, str], ideal_ms: float, conns: int, rounds: int, size: Size,
                 label: str, *extra: str, own: dict[str, OwnArgs] | None = None) -> dict:
    """`conns` simultaneous streams to each URL, in `rounds` rounds alternating the URLs;
    `own` gives a URL load-client arguments of its own (a POST body) after `extra`, or a
    function of the round that returns them (new tokens each round, so no cache answers).

    Per URL: the figures of the median round (by first-token p99), and that round's per-stream
    times in `<results>/burst_<label>_<name>.csv` for the plots."""
    runs: dict = {name: [] for name in urls}
    names = list(urls)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else reversed(names):
            raw = size.results / f"burst_{label}_{_slug(name)}_{round_}.csv.tmp"
            own_args = (own or {}).get(name, ())
            if callable(own_args):
                own_args = own_args(round_)
            result = loadgen("generations", urls[name], "--conns", str(conns),
                             "--raw-out", str(raw), *extra, *own_args)
            runs[name].append((result, raw))
    figures = {}
    for name, results in runs.items():
        ordered = sorted(results, key=lambda r: r[0]["first_token_ms"]["p99"] or 0)
        median, raw = ordered[(len(ordered) - 1) // 2]
        raw.replace(size.results / f"burst_{label}_{_slug(name)}.csv")
        for _, other in results:
            other.unlink(missing_ok=True)
        figures[name] = {
            "first_token_ms": median["first_token_ms"], "head_ms": median["head_ms"],
            "completion_ratio": median["completion_ms"]["p50"] / ideal_ms,
            "errors": median["errors"], "client_cpu_share": median["client_cpu_share"],
            "first_token_p99_rounds": [r["first_token_ms"]["p99"] for r, _ in results],
            "completion_ratio_median": statistics.median(
                r["completion_ms"]["p50"] / ideal_ms for r, _ in results)}
    return figures


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def failures(results, where: str = "") -> list[str]:
    """What went wrong in a suite's results, wherever it is nested: errors or failed
    connections counted by the load client, a relayed body that differs."""
    found = []
    if isinstance(results, dict):
        for key, value in results.items():
            place = f"{where}/{key}"
            if key in ("errors", "failed") and isinstance(value, int) and value:
                found.append(f"{place} = {value}")
            elif key == "identical" and value is False:
                found.append(f"{place}: the body differs")
            else:
                found += failures(value, place)
    return found


def markdown_table(results: dict, rows: list) -> str:
    """One column per measured server, one row per (label, cell(figures) -> str)."""
    names = list(results)
    lines = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(results[n]) for n in names) + " |")
    return "\n".join(lines)


def kb_per_stream(idle: dict) -> str:
    """A table cell for idle_rss_per_stream()'s figures: `KB per stream (streams open)`."""
    return f"{idle['kb_per_stream']:.1f} KB ({idle['opened']:,})"


def p50_p99(distribution: dict, digits: int = 0) -> str:
    """A table cell for a distribution of milliseconds: `p50 / p99 ms`, or n/a without one."""
    if not distribution or distribution.get("n", 0) == 0:
        return "n/a"
    return f"{distribution['p50']:,.{digits}f} / {distribution['p99']:,.{digits}f} ms"


def start(pin: bool = True, **kwargs) -> LiveServer:
    """A server on a free port, its worker on SERVER_CPU unless it only plays an upstream.

    Without gevent's blocking monitor: its tracer runs on every greenlet switch."""
    server = LiveServer(max_blocking=None, **kwargs).wait_ready()
    if pin:
        for pid in server.worker_pids():
            os.sched_setaffinity(pid, SERVER_CPU)
    return server


def ours(**env: str) -> LiveServer:
    return start(env={"LOG_LEVEL": "warning", **env})


NAIVE_READY = "/sse/chat?prompt=ready&tokens=1&delay_ms=0"


def naive_gevent(app: str = "bench.naive_app:app") -> LiveServer:
    return start(app=app, config=None, ready_path=NAIVE_READY,
                 args=("-k", "gevent", "-w", "1", "--worker-connections", "20000",
                       "--log-level", "warning"))


def naive_gthread() -> LiveServer:
    # As many threads as the idle scenario holds streams: a gthread worker serves one
    # stream per thread.
    return start(app="bench.naive_app:app", config=None, ready_path=NAIVE_READY,
                 args=("-k", "gthread", "--threads", "5200", "-w", "1",
                       "--log-level", "warning"))
