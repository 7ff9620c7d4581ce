"""The benchmark results as PNG plots (matplotlib), drawn from what the suites wrote.

- `rss_vs_streams.png`: the worker's RSS against open idle SSE streams (`sse.json`).
- `first_token_burst.png`: the distribution of first-token latency in the 500-stream bursts
  (`burst_sse_*.csv`, `burst_ws_*.csv`), with the Go and sse-starlette reference figures as
  reference lines: they were measured on another machine and are marked so.
- `connection_cpu.png`: server CPU per new connection, layer by layer (`connections.json`).

A plot whose data is missing (a suite left out with `--only`) is skipped.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI

import matplotlib.pyplot as plt

# Reference figures of the best peers (500 x 100 x 20 ms, one worker, a compiled load client), not
# measured here: drawn as dashed reference lines at their p50 and p99.
REFERENCES = {
    "sse": {"Go net/http (reference)": (60, 74), "sse-starlette (reference)": (1191, 1516)},
    "ws": {"Go gorilla (reference)": (24, 28)},
}
COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def _first_tokens(path: Path) -> list[float]:
    with path.open() as rows:
        return sorted(float(row["first_token_ms"]) for row in csv.DictReader(rows)
                      if not math.isnan(float(row["first_token_ms"])))


def rss_vs_streams(results: Path) -> Path | None:
    sse = _load(results / "sse.json")
    if not sse or not any(figures["idle"].get("series") for figures in sse.values()):
        return None
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for (name, figures), colour in zip(sse.items(), COLOURS, strict=False):
        series = [(n, kb) for n, kb in figures["idle"].get("series", []) if n is not None]
        if series:
            axes.plot([n for n, _ in series], [kb / 1024 for _, kb in series], "o-",
                      markersize=3, color=colour,
                      label=f"{name}: {figures['idle']['kb_per_stream']:.1f} KB/stream")
    axes.set_xlabel("open idle SSE streams (tokens=10000, delay_ms=10000)")
    axes.set_ylabel("worker RSS (MB)")
    axes.set_title("Memory against open streams, one worker")
    axes.grid(alpha=0.3)
    axes.legend()
    return _save(figure, results / "rss_vs_streams.png")


def first_token_burst(results: Path) -> Path | None:
    panels = [(kind, sorted(results.glob(f"burst_{kind}_*.csv"))) for kind in ("sse", "ws")]
    panels = [(kind, files) for kind, files in panels if files]
    if not panels:
        return None
    figure, axes_row = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5),
                                    squeeze=False)
    for axes, (kind, files) in zip(axes_row[0], panels, strict=True):
        for path, colour in zip(files, COLOURS, strict=False):
            times = _first_tokens(path)
            if times:
                share = [(i + 1) / len(times) for i in range(len(times))]
                label = " ".join(path.stem.removeprefix(f"burst_{kind}_").split("_"))
                axes.step(times, share, where="post", color=colour,
                          label=f"{label}: p99 {times[math.ceil(0.99 * len(times)) - 1]:.0f} ms")
        for (name, (p50, p99)), colour in zip(REFERENCES[kind].items(), COLOURS[3:],
                                              strict=False):
            axes.axvline(p50, color=colour, linestyle=":", linewidth=1)
            axes.axvline(p99, color=colour, linestyle="--", linewidth=1,
                         label=f"{name}: p50 {p50} / p99 {p99} ms")
        axes.set_xscale("log")
        axes.set_xlabel("first token after the request (ms, log scale)")
        axes.set_ylabel("share of streams")
        axes.set_title(f"{kind.upper()}: 500 streams x 100 tokens x 20 ms, all at once")
        axes.grid(alpha=0.3, which="both")
        axes.legend(fontsize="small", loc="upper left")
    return _save(figure, results / "first_token_burst.png")


def connection_cpu(results: Path) -> Path | None:
    connections = _load(results / "connections.json")
    if not connections:
        return None
    rows = list(connections["layers"].items()) + [
        (f"WebSocket handshake: {name}", figures)
        for name, figures in connections["handshakes"].items()]
    figure, axes = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    labels = [name for name, _ in rows][::-1]
    values = [figures["cpu_us"] for _, figures in rows][::-1]
    colours = ["tab:green" if name.startswith("WebSocket") else
               "tab:grey" if name.endswith("(reference)") else "tab:blue" for name in labels]
    bars = axes.barh(labels, values, color=colours)
    axes.bar_label(bars, labels=[f"{v:.0f} µs" for v in values], padding=3, fontsize="small")
    axes.set_xlabel("server CPU per new connection (µs), one after another")
    axes.set_title("Where a new connection's time goes\n(each SSE row adds one layer)")
    axes.set_xlim(0, max(values) * 1.2)
    axes.grid(alpha=0.3, axis="x")
    return _save(figure, results / "connection_cpu.png")


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def draw(results: Path) -> list[Path]:
    """Every plot whose data is in `results`; the paths written."""
    drawn = (rss_vs_streams(results), first_token_burst(results), connection_cpu(results))
    return [path for path in drawn if path is not None]
