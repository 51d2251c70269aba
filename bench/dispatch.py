"""Dispatch: start→message-on-topic latency at idle, and publication rate with a backlog.

    uv run python -m bench.dispatch [--backlog 10000] [--samples 30] [--repeat 3]

Idle: one task at a time (after one to warm up) is created with start, and timed until its
message arrives on the topic; then, with one worker, until the worker reports it running
(from the task's own history: its start and its `running`, both stamped by the api).
Backlog: with the dispatcher stopped, `backlog` started tasks (the store's own
document shape) go into the store at once; then the dispatcher (its per-worker cap lifted)
starts and is timed until every message is on the topic.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

from confluent_kafka import Consumer

from bench import stack
from bench.figures import percentile, save, table
from taskmill.config import ServiceConfig
from taskmill.schema import new_task_id
from taskmill.store import new_task
from tests.system import topic_reader

# The relay's per-worker cap lifted: with no worker, it would otherwise publish one task
# and keep the rest for when one joins (lifecycle.min_waiting_per_worker).
UNCAPPED = {"min_waiting_per_worker": 10**9, "max_waiting_per_worker": 10**9}


def arrivals(consumer: Consumer, wanted: set[str], timeout_s: float) -> dict[str, float]:
    """Wall-clock arrival time of each wanted task's message."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    while wanted - seen.keys():
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(wanted - seen.keys())} messages did not arrive")
        msg = consumer.poll(0.1)  # returns as soon as a message is there
        if msg is not None and msg.error() is None:
            seen.setdefault(msg.key().decode(), time.time())
    return seen


def idle_latency(samples: int) -> list[float]:
    with stack.system(lifecycle=UNCAPPED) as (system, _):
        reader = topic_reader(system.env["KAFKA_BOOTSTRAP_SERVERS"], system.services["slow"]["topic_name"])
        latencies = []
        warm = system.api.create_task("slow", {}, start=True)
        arrivals(reader, {warm}, 30)
        for _ in range(samples):
            sent = time.time()
            task_id = system.api.create_task("slow", {}, start=True)
            latencies.append(arrivals(reader, {task_id}, 30)[task_id] - sent)
        reader.close()
        return latencies


def idle_to_running(samples: int) -> list[float]:
    """Seconds from start_task to the worker's `running`, one task at a time, one worker."""
    with stack.system(workers=1) as (system, _):
        system.wait_final([system.api.create_task("slow", {}, start=True)], timeout_s=120)  # warm
        latencies = []
        for _ in range(samples):
            task_id = system.api.create_task("slow", {})
            system.api.start_task(task_id)
            system.wait_final([task_id])
            history = system.api.result_task(task_id)["history"]
            started = next(e["time"] for e in history if e["message"] == "started")
            running = next(e["time"] for e in history if e["status"] == "running")
            latencies.append((_when(running) - _when(started)).total_seconds())
        return latencies


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def backlog_run(backlog: int) -> dict[str, float]:
    with stack.system(lifecycle=UNCAPPED) as (system, collection):
        names = system.services["slow"]
        service = ServiceConfig("slow", "mongo", names["topic_name"], names["consumer_id"])
        reader = topic_reader(system.env["KAFKA_BOOTSTRAP_SERVERS"], service.topic_name)
        system.stop("dispatcher")  # once it has created the topics
        started = {}
        for first in range(0, backlog, 5000):
            docs = [new_task(new_task_id("slow"), service, {}, True, datetime.now(UTC))
                    for _ in range(min(5000, backlog - first))]
            collection.insert_many(docs)
            started.update((d["task_id"], d["start_requested_at"].timestamp()) for d in docs)
        began = time.time()
        system.start_dispatcher()
        seen = arrivals(reader, set(started), timeout_s=120 + backlog / 10)
        reader.close()
        elapsed = max(seen.values()) - began
        waits = [seen[t] - started[t] for t in started]
        return {"published_per_s": backlog / elapsed, "elapsed_s": elapsed,
                "p50_s": statistics.median(waits), "p99_s": percentile(waits, 99)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.dispatch")
    parser.add_argument("--backlog", type=int, default=10000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    idle_rows = [_latency_row("idle: start → message on the topic", idle_latency(args.samples)),
                 _latency_row("idle: start → worker reports running", idle_to_running(args.samples))]
    print(table("one task at a time", idle_rows), flush=True)
    runs = [backlog_run(args.backlog) for _ in range(args.repeat)]
    rate = [r["published_per_s"] for r in runs]
    backlog_row = {"backlog": args.backlog, "published_per_s": statistics.median(rate),
                   "min": min(rate), "max": max(rate),
                   "p50_s": statistics.median(r["p50_s"] for r in runs),
                   "p99_s": statistics.median(r["p99_s"] for r in runs)}
    print(table("backlog drained by one dispatcher (median of runs)", [backlog_row]))
    print(f"figures: {save('dispatch', {'idle': idle_rows, 'backlog': backlog_row, 'repeat': args.repeat})}")


def _latency_row(case: str, latencies: list[float]) -> dict[str, object]:
    return {"case": case, "tasks": len(latencies), "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000, "min_ms": min(latencies) * 1000,
            "max_ms": max(latencies) * 1000}


if __name__ == "__main__":
    main()
