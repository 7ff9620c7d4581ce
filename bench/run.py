"""`make bench`: run every scenario and print the tables (also written to bench/results/).

`python -m bench.run [--quick] [--only sse,ws,proxy,fanout]`. Each scenario starts its own servers
on free loopback ports and stops them; the load client is bench/build/loadgen (C, epoll).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from bench import fanout, proxy, sse, ws

SUITES = {"sse": sse, "ws": ws, "proxy": proxy, "fanout": fanout}
RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller loads")
    parser.add_argument("--only", default=",".join(SUITES), help="comma-separated suites")
    options = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    report = [f"# Benchmarks ({time.strftime('%Y-%m-%d')}, {platform.machine()}, "
              f"{os.cpu_count()} cores)"]
    for name in options.only.split(","):
        suite = SUITES[name]
        results = suite.run(options.quick)
        (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2))
        report += ["", f"## {name}", "", suite.table(results)]
        print("\n".join(report[-3:]), flush=True)
    (RESULTS / "latest.md").write_text("\n".join(report) + "\n")


if __name__ == "__main__":
    main()
