"""Long, uneven tasks: how close a batch comes to what one shared queue would do.

    uv run python -m bench.longtasks [--tasks 80] [--mean-s 2] [--workers 4,8] [--seed 7]
                                     [--modes consumer_group,share_group] [--share-partitions 1,4]

A batch of tasks whose run times are seeded and heavy-tailed (Pareto, shape 1.5, cut at
20x the smallest, scaled to the mean asked for) is created and started at once; W workers
of the bench-only sleeping algorithm (`slow`) run them, in each Kafka mode: a consumer
group on the default 4 partitions, a share group on the one partition the dispatcher makes
for it and, for comparison, on a topic of each other `--share-partitions` count made
beforehand. Printed per mode, partitions and W:

- makespan_ratio: the batch's makespan over its lower bound, max(total work / W, the
  longest task): 1.0 is perfect; a worker idle while work waits elsewhere raises it;
- queue_makespan_ratio: the same for an ideal shared queue (the batch in start order, each
  task to the first free of W workers, no overhead): what first come, first served can
  reach at best (a long task started late keeps it above 1.0), and makespan_over_queue,
  the batch's makespan over that queue's;
- mean_completion_ratio: the mean time from the start to a task's end over the same mean
  for the ideal shared queue;
- workers_used: how many of the W workers ran a task (a consumer group's workers beyond
  the topic's partitions get none).

Rows go to bench/results/longtasks.json as {"mode", "partitions", "workers",
"makespan_ratio", "mean_completion_ratio", ...}; `mode` is how the workers consume
("consumer_group" or "share_group"), all from one run.
"""

from __future__ import annotations

import argparse
import heapq
import random
import statistics
import time
from datetime import UTC, datetime

from bench import stack
from bench.figures import save, table

GROUP_PARTITIONS = 4  # taskmill.kafka.partitions' default
SHAPE = 1.5  # Pareto: a few tasks many times longer than most
CUT = 20.0  # the longest at most 20x the shortest


def run_times(tasks: int, mean_s: float, seed: int) -> list[float]:
    """Seeded heavy-tailed run times whose mean is mean_s."""
    rng = random.Random(seed)
    raw = [min(rng.paretovariate(SHAPE), CUT) for _ in range(tasks)]
    scale = mean_s / statistics.fmean(raw)
    return [round(r * scale, 3) for r in raw]


def makespan_bound(times: list[float], workers: int) -> float:
    """No schedule of these tasks on W workers ends before this."""
    return max(sum(times) / workers, max(times))


def shared_queue_ends(times: list[float], workers: int) -> list[float]:
    """When each task ends on an ideal shared queue: the tasks in start order, each to the
    first free of W workers, no overhead."""
    free = [0.0] * workers
    ends = []
    for run in times:
        start = heapq.heappop(free)
        ends.append(start + run)
        heapq.heappush(free, start + run)
    return ends


def one_batch(times: list[float], workers: int, mode: str, partitions: int) -> dict[str, float]:
    """Run the batch on a fresh system with W workers in the mode: its figures."""
    made = None if mode == "consumer_group" or partitions == 1 else partitions
    with stack.system(workers=workers, slow_partitions=made,
                      kafka_settings={"mode": mode, "partitions": GROUP_PARTITIONS}) as (system, _):
        warm = [system.api.create_task("slow", {}, start=True) for _ in range(workers * 2)]
        system.wait_final(warm, timeout_s=120)  # every worker in its group, connections open
        began = datetime.now(UTC)
        ids = [system.api.create_task("slow", {"sleep_s": t}, start=True) for t in times]
        system.wait_final(ids, timeout_s=60 + 4 * sum(times))
        results = [system.api.result_task(task_id) for task_id in ids]
    failed = [r for r in results if r["status"] != "finished"]
    if failed:
        raise SystemExit(f"{len(failed)} tasks did not finish: {failed[0]}")
    ends = [(datetime.fromisoformat(r["end_time"].replace("Z", "+00:00")) - began).total_seconds()
            for r in results]
    makespan, mean_completion = max(ends), statistics.fmean(ends)
    bound = makespan_bound(times, workers)
    queue = shared_queue_ends(times, workers)
    ideal = statistics.fmean(queue)
    return {"makespan_s": makespan, "bound_s": bound, "makespan_ratio": makespan / bound,
            "queue_makespan_ratio": max(queue) / bound, "makespan_over_queue": makespan / max(queue),
            "mean_completion_s": mean_completion, "ideal_mean_s": ideal,
            "mean_completion_ratio": mean_completion / ideal,
            "workers_used": len({r["data"]["pid"] for r in results})}


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.longtasks")
    parser.add_argument("--tasks", type=int, default=80)
    parser.add_argument("--mean-s", type=float, default=2.0, help="mean run time of a task")
    parser.add_argument("--workers", default="4,8")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--modes", default="consumer_group,share_group")
    parser.add_argument("--share-partitions", default="1",
                        help="partition counts of the share group's topic (1: the dispatcher's)")
    args = parser.parse_args()
    times = run_times(args.tasks, args.mean_s, args.seed)
    print(f"batch: {args.tasks} tasks, {sum(times):.1f} s of work, shortest {min(times):.2f} s, "
          f"median {statistics.median(times):.2f} s, longest {max(times):.2f} s (seed {args.seed})")
    runs = []
    for mode in args.modes.split(","):
        counts = [GROUP_PARTITIONS] if mode == "consumer_group" else \
            [int(p) for p in args.share_partitions.split(",")]
        runs += [(mode, partitions) for partitions in counts]
    rows = []
    for mode, partitions in runs:
        for workers in (int(w) for w in args.workers.split(",")):
            began = time.monotonic()
            rows.append({"mode": mode, "partitions": partitions, "workers": workers,
                         "tasks": args.tasks, **one_batch(times, workers, mode, partitions)})
            print(f"{mode} on {partitions} partitions, {workers} workers: {rows[-1]} "
                  f"({time.monotonic() - began:.0f} s)", flush=True)
    print(table("Long uneven tasks: makespan and mean completion over a shared queue's (1.0 = ideal)",
                rows))
    print(f"figures: {save('longtasks', {'seed': args.seed, 'mean_s': args.mean_s, 'rows': rows})}")


if __name__ == "__main__":
    main()
