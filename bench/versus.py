"""Two commits side by side: `python -m bench.versus BASE [--rounds 3] [--only sse,proxy]`.

Each round runs the chosen suites (`bench.run --size quick`) in a checkout of BASE and one of
HEAD, alternating which goes first, so a neighbour's load on this shared machine falls on both
alike; the table gives the median over rounds of every headline figure of our own server (the
naive peers are left out: they do not change between commits). The checkouts are detached git
worktrees under bench/build/versus/, made fresh and removed at the end; results stay there.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "build" / "versus"
# Counts and bookkeeping, not measurements: the same in both runs by construction.
NOT_FIGURES = {"n", "max", "mean", "p90", "opened", "failed", "events", "seconds", "errors",
               "client_cpu_share", "client_cpu_s", "streams", "conns", "tokens"}


def checkout(rev: str, name: str) -> Path:
    path = WORK / name
    if path.exists():
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=True)
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(path), rev], cwd=ROOT,
                   check=True)
    (path / "bench" / "build").mkdir(parents=True, exist_ok=True)
    subprocess.run(["gcc", "-O2", "-Wall", "-o", "bench/build/loadgen", "bench/loadgen.c"],
                   cwd=path, check=True)
    return path


def figures(results: dict, prefix: str = "") -> dict[str, float]:
    """Every numeric leaf under our own server's entries, keyed by its path."""
    found: dict[str, float] = {}
    for key, value in results.items():
        path = f"{prefix}/{key}" if prefix else key
        if not prefix and not (key.startswith("ours") or key in ("layers", "handshakes",
                                                                 "two_workers")):
            continue
        if isinstance(value, dict):
            found.update(figures(value, path))
        elif isinstance(value, int | float) and not isinstance(value, bool) \
                and key not in NOT_FIGURES:
            found[path] = float(value)
    return found


def run_suites(tree: Path, suites: list[str]) -> dict[str, float]:
    subprocess.run([sys.executable, "-m", "bench.run", "--size", "quick",
                    "--only", ",".join(suites)], cwd=tree, check=True,
                   stdout=subprocess.DEVNULL)
    found: dict[str, float] = {}
    for suite in suites:
        results = json.loads((tree / "bench" / "results" / f"{suite}.json").read_text())
        found.update({f"{suite}: {k}": v for k, v in figures(results).items()})
    return found


def table(before: list[dict[str, float]], after: list[dict[str, float]]) -> str:
    rows = ["| figure | before (median) | after (median) | change |", "|---|---|---|---|"]
    for key in sorted(set().union(*before) & set().union(*after)):
        old = statistics.median(r[key] for r in before if key in r)
        new = statistics.median(r[key] for r in after if key in r)
        change = f"{(new - old) / old:+.0%}" if old else "n/a"
        rows.append(f"| {key} | {old:,.4g} | {new:,.4g} | {change} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base", help="the commit to compare HEAD with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="sse,ws,proxy,connections")
    options = parser.parse_args()
    suites = options.only.split(",")
    trees = {"before": checkout(options.base, "before"), "after": checkout("HEAD", "after")}
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    try:
        for round_ in range(options.rounds):
            order = ("before", "after") if round_ % 2 == 0 else ("after", "before")
            for side in order:
                print(f"round {round_ + 1}: {side}", file=sys.stderr, flush=True)
                runs[side].append(run_suites(trees[side], suites))
    finally:
        for tree in trees.values():
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT)
        shutil.rmtree(WORK, ignore_errors=True)
    print(table(runs["before"], runs["after"]))


if __name__ == "__main__":
    main()
