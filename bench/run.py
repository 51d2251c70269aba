"""Every benchmark in turn: `make bench` (full) or `make bench-quick` (the harness, small).

    uv run python -m bench.run [--quick] [--tasks N]

Each benchmark prints its table and writes bench/results/<name>.json; the peer comparison
runs last so that the ratio Taskmill / Celery is the last thing printed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

FULL = {
    "scale": ["--sizes", "10000,100000,1000000", "--repeat", "50"],  # mostly loading
    "api": ["--clients", "1,8,32", "--duration", "5", "--repeat", "3"],
    "inprocess": ["--requests", "2000", "--repeat", "3"],
    "writes": ["--tasks", "1000", "--repeat", "3"],
    "reports": ["--tasks", "1000", "--clients", "8", "--repeat", "3"],
    "dispatch": ["--backlog", "10000", "--samples", "30", "--repeat", "1"],
    "profile": ["--tasks", "500", "--clients", "8", "--workers", "1"],
    "longtasks": ["--tasks", "80", "--mean-s", "2", "--workers", "4,8", "--share-partitions", "1,4"],
    "peer": ["--workers", "1,4", "--clients", "8", "--repeat", "3"],
}
QUICK = {
    "scale": ["--sizes", "500,1000", "--repeat", "5"],
    "api": ["--clients", "1,8", "--duration", "1", "--repeat", "1"],
    "inprocess": ["--requests", "100", "--repeat", "1"],
    "writes": ["--tasks", "50", "--repeat", "1"],
    "reports": ["--tasks", "40", "--clients", "4", "--repeat", "1"],
    "dispatch": ["--backlog", "200", "--samples", "5", "--repeat", "1"],
    "profile": ["--tasks", "50", "--clients", "4", "--workers", "1"],
    "longtasks": ["--tasks", "16", "--mean-s", "0.3", "--workers", "4"],
    "peer": ["--workers", "1", "--clients", "4", "--repeat", "1"],
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.run")
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the harness works")
    parser.add_argument("--tasks", type=int, help="tasks of the end-to-end runs (default 5000, quick 100)")
    parser.add_argument("--only", help="comma-separated benchmarks to run (" + ", ".join(FULL) + ")")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if args.only:
        plan = {name: plan[name] for name in args.only.split(",")}
    tasks = args.tasks or (100 if args.quick else 5000)
    began = time.monotonic()
    for name, options in plan.items():
        if name == "peer":
            options = [*options, "--tasks", str(tasks)]
        print(f"\n=== bench.{name} {' '.join(options)}", flush=True)
        subprocess.run([sys.executable, "-m", f"bench.{name}", *options], check=True)
    print(f"\nall benchmarks took {time.monotonic() - began:.0f}s")


if __name__ == "__main__":
    main()
