"""Where the time goes: CPU by process and py-spy samples of every Taskmill process during
an end-to-end run.

    uv run python -m bench.profile [--tasks 500] [--clients 8] [--workers 1]

Starts a fresh system and runs the end-to-end load of bench.e2e twice, then prints
- from the first run, CPU seconds (and milliseconds per task) per process, the
  infrastructure's included (FerretDB, PostgreSQL, Kafka, from the pid files of
  scripts/infra.sh) and this load generator, and the machine's busy time beside them; and
  the statements that took the store's PostgreSQL longest, per task (bench.statements);
- from the second run, with `py-spy record` attached to the api (with its gunicorn workers),
  the dispatcher and each worker, per Taskmill process the functions its threads were in
  most often when not idle (py-spy
  leaves out threads it sees waiting), by own samples (the innermost frame) and by samples
  including callees; a thread in a socket call is waiting on MongoDB, Kafka or the api.
Collapsed stacks go to bench/results/profile-<process>.txt (input of flamegraph.pl or
speedscope).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bench import stack, statements
from bench.e2e import one_load
from bench.figures import RESULTS, save, table
from tests.helpers import ROOT

TICKS = os.sysconf("SC_CLK_TCK")
INFRA = ("ferretdb", "postgres", "kafka", "mariadb")
STORE = ("ferretdb", "postgres")  # the local task store's processes
TOP = 12
T = TypeVar("T")


def cpu_seconds(roots: dict[str, int]) -> dict[str, float]:
    """User+system CPU seconds of each named process and its descendants (but for those named
    themselves), from one pass over /proc (0 for a process that is gone). Each process
    counts with its children that ended (the kernel adds them to it when it reaps them):
    PostgreSQL's backends and autovacuum workers come and go, and one that ended during a
    run would otherwise take its whole life's CPU out of the run's figure."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(pid)
        times[pid] = sum(int(f) for f in fields[11:15]) / TICKS  # utime stime cutime cstime
    totals = {}
    named = set(roots.values())
    for name, root in roots.items():
        total, todo = 0.0, [root]
        while todo:
            current = todo.pop()
            total += times.get(current, 0.0)
            todo += [child for child in children.get(current, []) if child not in named]
        totals[name] = total
    return totals


def cpu_spent(roots: dict[str, int], work: Callable[[], T]) -> tuple[T, float, dict[str, float]]:
    """Do the work: what it returned, the seconds it took and the CPU seconds each named
    process spent meanwhile (`cpu_seconds` before and after)."""
    before, began = cpu_seconds(roots), time.perf_counter()
    done = work()
    elapsed = time.perf_counter() - began
    after = cpu_seconds(roots)
    return done, elapsed, {name: after[name] - before[name] for name in roots}


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (not idle, not waiting on I/O) since boot."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / TICKS


def infra_pids() -> dict[str, int]:
    """The infrastructure's processes, from scripts/infra.sh's pid files."""
    run_dir = Path(os.environ.get("TASKMILL_STATE", ROOT / ".local")) / "run"
    pids = {}
    for name in INFRA:
        path = run_dir / f"{name}.pid"
        if path.is_file():
            pids[name] = int(path.read_text().split()[0])
    return pids


def store_pids() -> dict[str, int]:
    """The task store's processes (FerretDB, PostgreSQL), from scripts/infra.sh's pid files."""
    return {name: pid for name, pid in infra_pids().items() if name in STORE}


def top_frames(collapsed: Path) -> tuple[int, Counter[str], Counter[str]]:
    """(samples, own samples by function, inclusive samples by function) of a raw profile."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue  # not a whole sample line (py-spy was stopped mid-write)
        count = int(count_text)
        frames = [f for f in stack_text.split(";") if not f.startswith(("process ", "thread "))]
        total += count
        if frames:
            own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return total, own, inclusive


def measured_run(system, collection, args: argparse.Namespace,
                 watched: dict[str, int]) -> tuple[dict[str, float], dict[str, float], float, float]:
    """One end-to-end load: its figures, CPU seconds by watched process, the machine's busy
    CPU seconds and the elapsed seconds."""
    busy_before = machine_busy_seconds()
    figures, elapsed, used = cpu_spent(
        watched, lambda: one_load(system, collection, args.tasks, args.clients, args.workers))
    busy = machine_busy_seconds() - busy_before
    used["anything else (kernel threads, …)"] = max(busy - sum(used.values()), 0.0)
    return figures, used, busy, elapsed


def sampled_run(system, collection, args: argparse.Namespace, procs: dict[str, int]) -> None:
    """The same load again with py-spy attached to every Taskmill process (which costs the
    machine a good third of its CPU, hence a run of its own); raw stacks to bench/results."""
    py_spy = Path(sys.executable).with_name("py-spy")
    spies = [subprocess.Popen(
        [str(py_spy), "record", "--nonblocking", "--subprocesses", "--rate", "100",
         "--format", "raw", "--output", str(RESULTS / f"profile-{name}.txt"), "--pid", str(pid)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for name, pid in procs.items()]
    one_load(system, collection, args.tasks, args.clients, args.workers)
    for spy in spies:
        spy.send_signal(signal.SIGINT)
    for spy in spies:
        spy.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.profile")
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    with stack.system(workers=args.workers) as (system, collection):
        one_load(system, collection, 20, args.clients, args.workers)  # imports done, pools full
        procs = {name: proc.pid for name, proc in system.procs.items()}
        watched = {**procs, **infra_pids(), "load generator (this process)": os.getpid()}
        counted = statements.reset()
        figures, used, busy, elapsed = measured_run(system, collection, args, watched)
        store_statements = statements.per_task(args.tasks) if counted else []
        sampled_run(system, collection, args, procs)
    machine = elapsed * (os.cpu_count() or 1)
    rows = [{"process": name, "cpu_s": round(cpu, 1), "cpu_ms_per_task": round(cpu * 1000 / args.tasks, 2),
             "share_of_machine": round(cpu / machine, 3)}
            for name, cpu in sorted(used.items(), key=lambda item: -item[1])]
    ours = sum(cpu for name, cpu in used.items() if name in procs)
    print(f"{args.tasks} tasks, {args.clients} clients, {args.workers} worker(s): "
          f"{figures['tasks_per_s']:.1f} tasks/s over {elapsed:.1f} s; the machine was busy "
          f"{busy / machine:.0%} of the time, {busy * 1000 / args.tasks:.1f} CPU ms per task in all "
          f"({ours * 1000 / args.tasks:.1f} in Taskmill's own processes); "
          f"{figures['store_cmds']:.2f} store commands per task")
    print(table("CPU by process during the run (without sampling)", rows))
    print(table("\nPostgreSQL's statements during the run, by time (pg_stat_statements; wall µs "
                "inside PostgreSQL; a command's include those run inside it)", store_statements))
    hot = {}
    for name in procs:
        total, own, inclusive = top_frames(RESULTS / f"profile-{name}.txt")
        hot[name] = {"samples": total, "own": own.most_common(TOP), "inclusive": inclusive.most_common(TOP)}
        print(f"\n{name}: {total} samples of its busy threads (a second run, sampled); "
              "top functions by own samples")
        for frame, count in own.most_common(TOP):
            print(f"  {count / max(total, 1):6.1%}  {frame}")
    saved = save('profile', {'tasks': args.tasks, 'elapsed_s': elapsed, 'figures': figures, 'cpu': rows,
                             'statements': store_statements, 'hot': hot})
    print(f"figures: {saved}")


if __name__ == "__main__":
    main()
