"""Scale: `tasks` pages and `status_task` latency with 10k, 100k and 1M tasks in the store.

    uv run python -m bench.scale [--sizes 10000,100000,1000000] [--repeat 50] [--budget-s 100]

Fills a fresh database of MONGO_URI with tasks (the store's own document shape, mixed
services, statuses and priorities, one second apart, about two sevenths of them queued
for publication), growing it size by size, sets the kept counts to what was loaded, and
times the store calls the two endpoints make: the list's page 1 with each combination of
filters and page 50, and status_task's ten tasks by id with why those that wait do
(random tasks, queued ones deep in the backlog, the first ten of a service's queue; and
the random ones without the reasons, as the baseline). A call whose time would grow
with the collection is not run at a size where one run is projected, linearly from the
last size, to take longer than the budget (the table says so), and is run three times
rather than --repeat times where those would. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import time
import uuid
from datetime import timedelta

from bench.figures import save, table, timed_ms
from taskmill.config import MongoConfig, ServiceConfig
from taskmill.schema import Status, new_task_id, utcnow
from taskmill.store import TaskStore, connect, new_task
from taskmill.store.documents import PUBLISH_ORDER, UNQUEUED
from taskmill.store.service_states import ServiceState

SERVICES = [ServiceConfig("aaa", "mongo", "mq_aaa", "c_aaa"),
            ServiceConfig("bbb", "mysql", "mq_bbb", "c_bbb")]
STATUSES = [s.value for s in Status]


def fill(store_collection, start: int, stop: int, rng: random.Random) -> tuple[list[str], list[str]]:
    """Insert tasks number start..stop-1 (task n created n seconds after an epoch); their
    ids, and the ids of those started and queued in the outbox.

    Half the ready tasks are started and every waiting one is back in the outbox (a
    backlog of about two sevenths of the store, in start order); one waiting task in a
    thousand is published (the relay keeps those few)."""
    epoch = utcnow() - timedelta(days=400)
    batch, ids, queued = [], [], []
    for n in range(start, stop):
        service = SERVICES[n % 2]
        status = rng.choice(STATUSES)
        started = status == "waiting" or (status == "ready" and n % 2 == 0)
        doc = new_task(new_task_id(service.name), service, {"n": n}, started,
                       epoch + timedelta(seconds=n), priority=rng.randint(0, 9))
        doc["status"] = status
        if status == "waiting" and n % 1000 == 0:
            doc.update(UNQUEUED)  # published
        elif started:
            queued.append(doc["task_id"])
        batch.append(doc)
        ids.append(doc["task_id"])
        if len(batch) == 5000:
            store_collection.insert_many(batch, ordered=False)
            batch = []
    if batch:
        store_collection.insert_many(batch, ordered=False)
    return ids, queued


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.scale")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--budget-s", type=float, default=100.0,
                        help="skip a call where one run is projected to take longer than this")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    uri = os.environ.get("MONGO_URI", "mongodb://127.0.0.1:27017/")
    dbname = f"bench_scale_{uuid.uuid4().hex[:8]}"
    collection = connect(MongoConfig(uri=uri, dbname=dbname, collection="tasks", timeout_ms=3_600_000))
    store = TaskStore(collection)
    store.ensure_indexes()
    rng = random.Random(7)
    rows, ids, queued = [], [], []
    last_ms: dict[str, tuple[int, float]] = {}  # call -> (size, median ms) at the last size run
    try:
        loaded = 0
        for size in sizes:
            began = time.perf_counter()
            more, more_queued = fill(collection, loaded, size, rng)
            ids, queued = ids + more, queued + more_queued
            load_s = time.perf_counter() - began
            store.counts.recount()
            print(f"loaded {size - loaded:,} tasks in {load_s:.1f}s "
                  f"({(size - loaded) / load_s:,.0f}/s)", flush=True)
            loaded = size
            sample, deep = rng.sample(ids, 10), rng.sample(queued, 10)
            front = [t["_id"] for t in collection.find(
                {"outbox": True, "service": "aaa"}, {"_id": 1}).sort(PUBLISH_ORDER).limit(10)]
            store.services.save([ServiceState(s.name, seen_at=utcnow(), workers=4)
                                 for s in SERVICES])
            calls = {
                "tasks page 1": lambda: store.list(1, 20),
                "tasks page 1 service": lambda: store.list(1, 20, service="aaa"),
                "tasks page 1 status": lambda: store.list(1, 20, status="running"),
                "tasks page 1 service+status": lambda: store.list(1, 20, service="aaa",
                                                                  status="finished"),
                "tasks page 50": lambda: store.list(50, 20),
                "tasks page 50 service": lambda: store.list(50, 20, service="aaa"),
                "status_task 10 ids, no reasons": lambda ids=sample: store.get_many(ids),
                "status_task 10 ids": lambda ids=sample: status_task(store, ids),
                "status_task 10 queued ids": lambda ids=deep: status_task(store, ids),
                "status_task 10 at the front": lambda ids=front: status_task(store, ids),
            }
            for name, call in calls.items():
                row = {"tasks": size, "call": name}
                projected_ms = _projected_ms(last_ms.get(name), size)
                if projected_ms > args.budget_s * 1000:
                    rows.append({**row, "p50_ms": None, "p99_ms": None, "min_ms": None, "max_ms": None,
                                 "note": f"not run: projected {projected_ms / 1000:,.0f}s a call"})
                    print(f"  {name}: not run (projected {projected_ms / 1000:,.0f}s a call)", flush=True)
                    continue
                # Slow calls are repeated three times, not --repeat times: still a median.
                repeat = args.repeat if projected_ms * args.repeat <= args.budget_s * 1000 else 3
                figures = timed_ms(call, repeat)
                last_ms[name] = (size, figures["p50_ms"])
                rows.append({**row, **figures, "note": ""})
                print(f"  {name}: p50 {figures['p50_ms']:.1f} ms", flush=True)
    finally:
        collection.database.client.drop_database(dbname)
        store.close()
    print(table("store latency by number of tasks (ms)", rows))
    print(f"figures: {save('scale', {'repeat': args.repeat, 'budget_s': args.budget_s, 'rows': rows})}")


def status_task(store: TaskStore, ids: list[str]) -> None:
    """The store's part of status_task: the tasks, and why those that wait do."""
    store.pending.explain(store.get_many(ids))


def _projected_ms(last: tuple[int, float] | None, size: int) -> float:
    """One call's time at `size`, if it grows linearly from the last size it was run at."""
    if last is None:
        return 0.0
    last_size, last_ms = last
    return last_ms * size / last_size


if __name__ == "__main__":
    main()
