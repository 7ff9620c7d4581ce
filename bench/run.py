"""`make bench`: run every scenario, print the tables, write them and the plots to bench/results/.

`python -m bench.run [--size full|quick|smoke] [--only sse,ws,...]` (the suites are SUITES'
keys). Each scenario starts its own servers on free loopback ports and stops them; the load
client is bench/build/loadgen (C, epoll). `--size smoke` (`make bench-smoke`) runs everything at
a tiny size and writes to bench/build/smoke-results/, never over the measured results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from bench import auth, connections, fanout, generations, plots, proxy, sse, ws
from bench.harness import Size, failures, wait_stopped

SUITES = {"sse": sse, "ws": ws, "proxy": proxy, "fanout": fanout, "connections": connections,
          "generations": generations, "auth": auth}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=("full", "quick", "smoke"), default="full")
    parser.add_argument("--quick", action="store_const", const="quick", dest="size",
                        help="the same as --size quick")
    parser.add_argument("--only", default=",".join(SUITES), help="comma-separated suites")
    options = parser.parse_args()
    size = Size(options.size)
    size.results.mkdir(parents=True, exist_ok=True)
    report = [f"# Benchmarks ({time.strftime('%Y-%m-%d')}, {platform.machine()}, "
              f"{os.cpu_count()} cores; worker and client pinned; size {size.name})"]
    problems: list[str] = []
    for name in options.only.split(","):
        suite = SUITES[name]
        began = time.monotonic()
        results = suite.run(size)
        wait_stopped()
        (size.results / f"{name}.json").write_text(json.dumps(results, indent=2))
        report += ["", f"## {name} ({time.monotonic() - began:.0f} s)", "", suite.table(results)]
        print("\n".join(report[-3:]), flush=True)
        problems += failures(results, name)
    (size.results / "latest.md").write_text("\n".join(report) + "\n")
    for path in plots.draw(size.results):
        print(f"plot: {path}")
    if problems:
        # A benchmark that lost streams measured something else: fail, whatever the size.
        raise SystemExit("failed streams or bodies:\n  " + "\n  ".join(problems))


if __name__ == "__main__":
    main()
