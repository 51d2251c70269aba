"""Workers' reports: each alone (two requests a task), a task's outcome with the next task's
`running` in one request (a list of reports, as the SDK sends them in a backlog of slower
tasks), and a batch's outcomes with the next batch's `running` (as a worker of quick tasks
claims its backlog, `lifecycle.worker_batch`).

    uv run python -m bench.reports [--tasks 400] [--clients 8] [--repeat 3] [--batch 5]

On a fresh Taskmill with no workers, tasks are started and marked published (waiting); then
`clients` threads each walk their share of them as a worker in a backlog does: `running` of
the first (batch), then the outcomes of each with the `running` of the next, one after the
other. The ways run in turn (A B C, then C B A, …), `repeat` times each, on new tasks every
run; printed per way: tasks/s, report requests per task, and CPU milliseconds per task of
the api and of the store (FerretDB, PostgreSQL), with the ratios to the singles.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from functools import partial

from bench import stack
from bench.figures import save, table
from bench.profile import STORE, cpu_spent, store_pids
from taskmill.client import ApiClient, Report
from taskmill.store import TaskStore
from tests.system import TOKEN, System


def walk_singly(api: ApiClient, ids: list[str]) -> int:
    """Report each task's running and outcome in a request of its own; the requests made."""
    for task_id in ids:
        api.update_status(task_id, "running", attempt=1, worker="bench")
        api.update_status(task_id, "finished", result={}, attempt=1, worker="bench")
    return 2 * len(ids)


def walk_in_batches(size: int, api: ApiClient, ids: list[str]) -> int:
    """Report the first `size` tasks' running, then the outcomes of each `size` with the
    running of the next `size` (in pairs when `size` is 1); the requests made."""
    batches = [ids[i:i + size] for i in range(0, len(ids), size)]
    requests = 0
    for ended, starting in zip([[], *batches], [*batches, []], strict=True):
        reports = [*(Report(t, "finished", result={}, attempt=1, worker="bench") for t in ended),
                   *(Report(t, "running", attempt=1, worker="bench") for t in starting)]
        answers = api.update_statuses(reports)
        assert all(not isinstance(a, Exception) for a in answers), answers
        requests += 1
    return requests


def started(system: System, store: TaskStore, count: int) -> list[str]:
    """`count` new tasks, started and marked published (waiting for a worker), as the
    dispatcher leaves them (it is stopped: no worker would take what it publishes)."""
    ids = [system.api.create_task("slow", {}, start=True) for _ in range(count)]
    while due := store.outbox.due(500, "slow"):
        store.outbox.mark_published(due)
    return ids


def run(system: System, store: TaskStore, walk: Callable[[ApiClient, list[str]], int],
        tasks: int, clients: int) -> dict[str, float]:
    ids = started(system, store, tasks)
    shares = [ids[i::clients] for i in range(clients)]
    apis = [ApiClient(f"http://127.0.0.1:{system.api_port}", TOKEN) for _ in range(clients)]
    roots = {"api": system.procs["api"].pid, **store_pids()}
    with ThreadPoolExecutor(clients) as pool:
        requests, seconds, cpu = cpu_spent(roots, lambda: sum(pool.map(walk, apis, shares)))
    for api in apis:
        api.close()
    return {"tasks_per_s": tasks / seconds, "requests_per_task": requests / tasks,
            "api_ms_per_task": 1000 * cpu["api"] / tasks,
            "store_ms_per_task": 1000 * sum(cpu.get(n, 0.0) for n in STORE) / tasks}


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.reports")
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=5, help="tasks a batch (worker_batch)")
    args = parser.parse_args()
    if args.batch < 2:
        parser.error("--batch must be at least 2 (1 is the pairs)")
    ways = {"each alone": walk_singly, "outcome + next running": partial(walk_in_batches, 1),
            f"batches of {args.batch}": partial(walk_in_batches, args.batch)}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in ways}
    with stack.system() as (system, _), closing(TaskStore.open(system.config)) as store:
        system.stop("dispatcher")
        for turn in range(args.repeat):
            # A, B, C, then C, B, A: no way always runs first (or after another).
            for name, walk in list(ways.items())[::1 if turn % 2 == 0 else -1]:
                runs[name].append(run(system, store, walk, args.tasks, args.clients))
                print(name, runs[name][-1], flush=True)
    rows = [{"reports": name, **{key: statistics.median(r[key] for r in done) for key in done[0]}}
            for name, done in runs.items()]
    alone, *others = rows
    rows += [{"reports": f"ratio ({name} / alone)",
              **{key: row[key] / alone[key] for key in alone if key != "reports"}}
             for name, row in zip(("pairs", "batches"), others, strict=True)]
    print(table(f"workers' reports, {args.tasks} tasks, {args.clients} clients "
                f"(median of {args.repeat} runs each, alternated)", rows))
    print(f"figures: {save('reports', {'tasks': args.tasks, 'clients': args.clients, 'rows': rows})}")


if __name__ == "__main__":
    main()
