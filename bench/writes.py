"""What the store spends on a task's writes: the CPU of FerretDB and PostgreSQL (and the wall
time) per document written, for each write a task goes through, alone and in the groups
the product makes of them, and their sum for one task: the floor under what the store
costs in any end-to-end run, whatever the api and the workers do.

    uv run python -m bench.writes [--tasks 1000] [--repeat 3]

On the tasks collection with the store's own indexes, through `TaskStore` itself, from
this process: creates one at a time (each insert alone) and from 8 threads at once (the
shared inserts, as the api's threads make them); the publication's confirmations in the
dispatcher's batches; `running` and the outcome each reported alone, and as a worker's
pair in one bulk write (one task's outcome and the next one's `running`). Count moves are
gathered and written as in the api (every `counts_flush_s`), and counted with the write
that made them. Median of `repeat` rounds, each on new tasks.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from bench import stack
from bench.figures import save, table
from bench.profile import cpu_spent, store_pids
from taskmill.config import Config
from taskmill.schema import Status
from taskmill.store import TaskStore
from taskmill.store.reports import Report

CONFIRM_BATCH = 100  # the relay publishes up to 200 at once, fewer when its workers have less room
THREADS = 8


class Step(NamedTuple):
    """One kind of write: its row, how many of its documents a task is in the product under
    load (0: a way the product does not write a task; a task is written twice in pairs, its
    `running` in one and its end in the next), and the write (the documents it wrote)."""

    name: str
    per_task: int
    write: Callable[[], int]


def measure(write: Callable[[], int]) -> tuple[float, float]:
    """Run the write; FerretDB's and PostgreSQL's CPU µs and the wall µs per document."""
    documents, wall, cpu = cpu_spent(store_pids(), write)
    return sum(cpu.values()) * 1e6 / documents, wall * 1e6 / documents


class Writes:
    """A round's writes, each on n new tasks, made as the product makes them; each step
    returns how many documents it wrote."""

    def __init__(self, store: TaskStore, config: Config, n: int) -> None:
        self._store = store
        self._service = config.services["slow"]
        self._n = n
        self._alone: list[str] = []  # created one at a time, reported alone
        self._together: list[str] = []  # created from threads at once, reported in pairs

    def steps(self) -> list[Step]:
        return [
            Step("create, one at a time (each insert alone)", 0, self.create_alone),
            Step("create, 8 threads at once (shared inserts)", 1, self.create_together),
            Step("published, confirmed in batches", 1, self.confirm),
            Step("running, reported alone", 0, lambda: self.report_alone(Status.RUNNING)),
            Step("finished, reported alone", 0, lambda: self.report_alone(Status.FINISHED)),
            Step("a worker's pair: outcome + next running", 2, self.pairs),
        ]

    def create_alone(self) -> int:
        self._alone.extend(self._create() for _ in range(self._n))
        return self._n

    def create_together(self) -> int:
        with ThreadPoolExecutor(THREADS) as pool:
            self._together.extend(pool.map(lambda _: self._create(), range(self._n)))
        return self._n

    def confirm(self) -> int:
        published = 0
        while batch := self._store.outbox.due(CONFIRM_BATCH, self._service.name):
            published += self._store.outbox.mark_published(batch)
        return published

    def report_alone(self, status: Status) -> int:
        result = {} if status is Status.FINISHED else None
        for task_id in self._alone:
            self._store.report(task_id, status, result=result, attempt=1, worker="bench")
        return len(self._alone)

    def pairs(self) -> int:
        ids = self._together
        self._store.report(ids[0], Status.RUNNING, attempt=1, worker="bench")
        for done, starting in zip(ids, ids[1:], strict=False):
            answers = self._store.report_each([
                Report(done, Status.FINISHED, result={}, attempt=1, worker="bench"),
                Report(starting, Status.RUNNING, attempt=1, worker="bench")])
            if not all(isinstance(answer, dict) for answer in answers):
                raise SystemExit(f"a pair was refused: {answers}")
        return 2 * (len(ids) - 1)

    def _create(self) -> str:
        return self._store.create(self._service, {}, start=True)["task_id"]


def one_round(store: TaskStore, config: Config, n: int) -> dict[str, tuple[float, float, int]]:
    """Each kind of write on n new tasks: {row: (cpu µs, wall µs) per document, and how many
    of its documents a task is}."""
    def with_counts(write: Callable[[], int]) -> int:
        written = write()
        store.counts.flush()  # the step's count moves are written within it
        return written

    return {step.name: (*measure(lambda write=step.write: with_counts(write)), step.per_task)
            for step in Writes(store, config, n).steps()}


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.writes")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.tasks < 2 or args.repeat < 1:
        parser.error("--tasks must be at least 2 (a pair is two tasks) and --repeat at least 1")
    with stack.store("bench-writes") as (store, config):
        one_round(store, config, min(args.tasks, 100))  # warm: connections, caches
        rounds = [one_round(store, config, args.tasks) for _ in range(args.repeat)]
    rows: list[dict[str, Any]] = []
    for name in rounds[0]:
        cpu = [r[name][0] for r in rounds]
        rows.append({"write": name, "store_cpu_us": round(statistics.median(cpu)),
                     "min": round(min(cpu)), "max": round(max(cpu)),
                     "wall_us": round(statistics.median(r[name][1] for r in rounds))})
    shares = [share for _, _, share in rounds[0].values()]
    rows.append({"write": "a task: created, published, running and ended (rows above)",
                 **{key: sum(row[key] * share for row, share in zip(rows, shares, strict=True))
                    for key in ("store_cpu_us", "min", "max", "wall_us")}})
    print(table(f"the store's writes, FerretDB + PostgreSQL CPU and wall µs per document "
                f"(median of {args.repeat} rounds of {args.tasks} tasks)", rows))
    print(f"figures: {save('writes', {'tasks': args.tasks, 'repeat': args.repeat, 'rows': rows})}")


if __name__ == "__main__":
    main()
