"""End to end: N tasks created and started by C concurrent clients, a no-op algorithm,
measured until every one is finished: tasks per second and start→finished latency.

    uv run python -m bench.e2e [--tasks 5000] [--clients 8] [--workers 1,4] [--repeat 3]

The clients are threads of this process (not of the system under test); latency is from
the moment a client sends create_task (with start) to the task's end_time in the store,
on the same clock.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial

from pymongo.collection import Collection

from bench import stack
from bench.figures import percentile, save, table
from tests.system import System

Run = Callable[[int, int, int], dict[str, float]]  # (tasks, clients, workers) -> figures
COMMANDS = "taskmill_store_commands_total"
LOOKUP = 100  # pending tasks read in one query when waiting for them to finish


def options(prog: str) -> argparse.Namespace:
    """The options every end-to-end comparison takes."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", default="1,4")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mode", default="consumer_group", choices=["consumer_group", "share_group"],
                        help="how Taskmill's workers take tasks (taskmill.kafka.mode)")
    return parser.parse_args()


def run_figures(tasks: int, began: datetime, spans: list[tuple[datetime, datetime]]) -> dict[str, float]:
    """Throughput and latency of one run, from each task's (sent, finished) times; and the
    rate at which tasks finished while the clients were still sending (until the last
    task was sent) and after: a system that finishes little while it takes tasks in
    holds a backlog, and its latency grows with it whatever its throughput."""
    latencies = [(end - sent).total_seconds() for sent, end in spans]
    last_sent = max(sent for sent, _ in spans)
    last_end = max(end for _, end in spans)
    sending = (last_sent - began).total_seconds()
    after = (last_end - last_sent).total_seconds()
    while_sending = sum(1 for _, end in spans if end <= last_sent)
    return {"tasks_per_s": tasks / (last_end - began).total_seconds(),
            "p50_s": statistics.median(latencies), "p99_s": percentile(latencies, 99),
            "sending_s": sending,
            "done_per_s_sending": while_sending / sending if sending > 0 else 0.0,
            "done_per_s_after": (tasks - while_sending) / after if after > 0 else 0.0}


def repeated(run: Run, args: argparse.Namespace, workers: int) -> dict[str, float]:
    """`args.repeat` runs: median tasks/s with min and max, median p50 and p99."""
    runs = [run(args.tasks, args.clients, workers) for _ in range(args.repeat)]
    rate = [r["tasks_per_s"] for r in runs]
    figures = {"tasks_per_s": statistics.median(rate), "min": min(rate), "max": max(rate)}
    for key in runs[0]:
        if key != "tasks_per_s":
            figures[key] = statistics.median(r[key] for r in runs)
    return figures


def one_run(tasks: int, clients: int, workers: int, mode: str = "consumer_group") -> dict[str, float]:
    with stack.system(workers=workers, kafka_settings={"mode": mode}) as (system, collection):
        return one_load(system, collection, tasks, clients, workers)


def one_load(system: System, collection: Collection, tasks: int, clients: int,
             workers: int) -> dict[str, float]:
    """Warm the system up, then create and start `tasks` tasks from `clients` threads and
    wait until all are finished: the run's figures."""
    warm = [system.api.create_task("slow", {}, start=True) for _ in range(workers * 2)]
    system.wait_final(warm, timeout_s=120)  # consumers joined, connections open

    commands_before = system.metric(COMMANDS)

    def create(_: int) -> tuple[str, datetime]:
        sent = datetime.now(UTC)
        return system.api.create_task("slow", {}, start=True), sent

    began = datetime.now(UTC)
    with ThreadPoolExecutor(clients) as pool:
        sent = dict(pool.map(create, range(tasks)))
    ends = wait_finished(system, collection, sorted(sent, key=sent.__getitem__))
    figures = run_figures(tasks, began, [(sent[t], ends[t]) for t in sent])
    return {**figures, **commands_per_task(commands_before, system.metric(COMMANDS), tasks)}


def wait_finished(system: System, collection: Collection, ids: list[str]) -> dict[str, datetime]:
    """Each task's end_time, once every one has finished. Twice a second the pending tasks
    are read by _id, oldest first (the order they tend to finish), LOOKUP at a time with
    `$in`, until a group in which some are still busy: a primary-key read per group, so
    that watching costs the system being measured little (one read per task cost the
    store about 0.25 ms of CPU and this process 0.14; a query for every finished task
    would read more of the store each time, and a filter on the task_id field, which no
    index serves, a whole scan of the collection each: 1.1 ms of PostgreSQL at 5,000
    tasks; measured)."""
    ends: dict[str, datetime] = {}
    pending = list(ids)
    deadline = time.monotonic() + 60 + len(ids)
    while pending:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(ends)} of {len(ids)} tasks finished\n{system.logs()}")
        time.sleep(0.5)
        for start in range(0, len(pending), LOOKUP):
            group = pending[start:start + LOOKUP]
            found = {doc["_id"]: doc["end_time"] for doc in collection.find(
                {"_id": {"$in": group}, "status": "finished"}, {"_id": 1, "end_time": 1})}
            ends.update(found)
            if len(found) < len(group):
                break
        pending = [task_id for task_id in pending if task_id not in ends]
    return ends


def commands_per_task(before: dict[str, float], after: dict[str, float], tasks: int) -> dict[str, float]:
    """Store commands per task during a run, in all and by the process that sent them (the
    workers send none: they report through the api)."""
    spent = {proc: after[proc] - before.get(proc, 0.0) for proc in after}
    return {"store_cmds": sum(spent.values()) / tasks,
            "by_api": spent.get("api", 0.0) / tasks, "by_dispatcher": spent.get("dispatcher", 0.0) / tasks}


def main() -> None:
    args = options("bench.e2e")
    rows = []
    for workers in (int(w) for w in args.workers.split(",")):
        rows.append({"mode": args.mode, "workers": workers, "tasks": args.tasks,
                     "clients": args.clients,
                     **repeated(partial(one_run, mode=args.mode), args, workers)})
        print(f"workers={workers}: {rows[-1]}", flush=True)
    print(table("Taskmill end to end, no-op algorithm (median of runs; min/max of tasks/s)", rows))
    print(f"figures: {save('e2e', {'repeat': args.repeat, 'rows': rows})}")


if __name__ == "__main__":
    main()
