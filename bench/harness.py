"""What every benchmark scenario needs: servers to measure, the load client, the worker's RSS."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from tests.live_server import ROOT, LiveServer

LOADGEN = ROOT / "bench" / "build" / "loadgen"

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


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def worker_pid(server: LiveServer) -> int:
    pids = server.worker_pids()
    if len(pids) != 1:
        raise RuntimeError(f"expected one worker, found {pids}")
    return pids[0]


def idle_rss_per_stream(server: LiveServer, path: str, conns: int, *extra: str,
                        ramp: int = 2000) -> dict:
    """Open `conns` idle streams (`ramp` a second), read the worker's RSS once all are open,
    then close them."""
    pid = worker_pid(server)
    before = rss_kb(pid)
    with tempfile.TemporaryDirectory() as scratch:
        ready = Path(scratch) / "ready"
        process = subprocess.Popen(
            [str(LOADGEN), "idle", "--url", server.url + path, "--conns", str(conns),
             "--ramp-per-sec", str(ramp), "--hold", "3", "--ready-file", str(ready), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            preexec_fn=_client_cpu)
        deadline = time.monotonic() + conns / ramp + 60
        while not ready.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        time.sleep(1.0)  # let the last handshakes settle into their idle state
        held = rss_kb(pid)
        out, _ = process.communicate(timeout=120)
    result = json.loads(out.strip().splitlines()[-1])
    opened = result["opened"] or 1
    return {"kb_per_stream": (held - before) / opened, "opened": result["opened"],
            "failed": result["failed"], "handshake_ms": result["handshake_ms"],
            "rss_before_kb": before, "rss_held_kb": held}


def repeated_throughput(url: str, runs: int, *extra: str) -> dict:
    """One stream at a time, `runs` times: events per second over all of them."""
    results = [loadgen("throughput", url, *extra) for _ in range(runs)]
    events = sum(r["events"] for r in results)
    seconds = sum(r["seconds"] for r in results)
    return {"events_per_s": events / seconds, "events": events, "seconds": seconds,
            "client_cpu_share": max(r["client_cpu_share"] for r in results)}


def markdown_table(results: dict, rows: list) -> str:
    """One column per measured server, one row per (label, cell(figures) -> str)."""
    names = list(results)
    lines = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(results[n]) for n in names) + " |")
    return "\n".join(lines)


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
