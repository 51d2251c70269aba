"""The dispatcher's outbox: started tasks, read in batches, published, then waiting.

One dispatcher at a time relays a service's outbox (it holds the service's relay:
`ServiceStates.hold_relay`), so a batch is one read of the service's due tasks in
publication order, highest priority first, then oldest start (served by the priority
index, sort included; `one_batch`), with no write to mark them taken. The confirmation
of a batch is one bulk write per (service, previous status) of its tasks (an update per
task, by its _id: see `each_by_id`), each conditional on the task still being in the
outbox at the attempt that was published, so that the counts move by exactly what
changed. `in_flight` counts what a service has on Kafka (published, not yet taken), which
the relay keeps under its workers' capacity.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.collection import Collection

from taskmill.schema import Clock, Status
from taskmill.store.connection import each_by_id, one_batch, unavailable_as_error
from taskmill.store.counts import TaskCounts
from taskmill.store.documents import (
    IN_OUTBOX,
    OUTBOX_INDEX,
    PRIORITY_INDEX,
    PUBLISH_ORDER,
    RELAY_FIELDS,
    SERVICE_STATUS_INDEX,
    UNQUEUED,
    Task,
    ended_failed,
    event,
)


class Outbox:
    """Started tasks awaiting publication."""

    def __init__(self, tasks: Collection[Task], counts: TaskCounts, clock: Clock,
                 waiting_timeout_s: float) -> None:
        self._tasks = tasks
        self._counts = counts
        self._clock = clock
        self._waiting_timeout = timedelta(seconds=waiting_timeout_s)

    def any_due(self) -> bool:
        """Whether any task of any service may be due for publication (one indexed read:
        an idle relay round costs this instead of two reads per service)."""
        with unavailable_as_error():
            return self._tasks.find_one(_due(self._clock()), {"_id": 1},
                                        hint=OUTBOX_INDEX.name) is not None

    def due(self, limit: int, service: str) -> list[Task]:
        """Up to `limit` tasks of `service` due for publication, highest priority first, then
        oldest start. Only the dispatcher that holds the service's relay reads them to
        publish: nothing marks them taken."""
        with unavailable_as_error():
            return list(one_batch(self._tasks.find({**_due(self._clock()), "service": service},
                                                   RELAY_FIELDS)
                                  .sort(PUBLISH_ORDER).hint(PRIORITY_INDEX.name), limit))

    def mark_published(self, published: Sequence[Task]) -> int:
        """Record that the broker confirmed the messages of these tasks: they wait for a
        worker. Return how many changed (a task that left the outbox meanwhile, reported
        running by a worker, cancelled, or started again at a later attempt, has nothing
        left to record)."""
        now = self._clock()
        batches: dict[tuple[str, str], list[Task]] = defaultdict(list)
        for task in published:
            batches[(task["service"], task["status"])].append(task)
        changed = 0
        with unavailable_as_error():
            for (service, status), tasks in batches.items():
                moved = each_by_id(self._tasks, {t["task_id"]: self._published(t, now) for t in tasks})
                self._counts.moved(service, status, Status.WAITING.value, moved)
                changed += moved
        return changed

    def _published(self, task: Task, now: datetime) -> UpdateOne[Task]:
        """The update of a task whose message the broker confirmed: it waits."""
        return UpdateOne(_as_read(task),
                         {"$set": {"status": Status.WAITING.value, **UNQUEUED, "update_time": now,
                                   "lease_until": now + self._waiting_timeout},
                          "$push": {"history": event(Status.WAITING, now, task["attempt"], None)}})

    def refuse(self, task: Task, reason: str) -> bool:
        """End a task failed: its message can never be published (reason says why)."""
        now = self._clock()
        with unavailable_as_error():
            done = self._tasks.update_one(_as_read(task), ended_failed(reason, now, task["attempt"]))
        if done.modified_count:
            self._counts.moved(task["service"], task["status"], Status.FAILED.value)
        return bool(done.modified_count)

    def in_flight(self, service: str, at_most: int | None = None) -> int:
        """How many tasks of the service are published and not yet taken by a worker
        (counted up to `at_most`). The relay keeps them few, so their ids are read: the
        local engine's count and aggregate read the whole index range, ten times slower
        (measured)."""
        with unavailable_as_error():
            found = self._tasks.find({"service": service, "status": Status.WAITING.value,
                                      "outbox": False}, {"_id": 1}).hint(SERVICE_STATUS_INDEX.name)
            return len(list(found if at_most is None else one_batch(found, at_most)))

    def queued(self) -> dict[str, int]:
        """How many started tasks of each service await publication."""
        with unavailable_as_error():
            groups = self._tasks.aggregate([{"$match": IN_OUTBOX},
                                            {"$group": {"_id": "$service", "n": {"$sum": 1}}}],
                                           hint=OUTBOX_INDEX.name)
            return {group["_id"]: group["n"] for group in groups}

    def oldest_start(self) -> datetime | None:
        """When the longest-waiting task awaiting publication was started (None: none is)."""
        with unavailable_as_error():
            oldest = self._tasks.find_one(IN_OUTBOX, {"_id": 0, "start_requested_at": 1},
                                          sort=[("start_requested_at", ASCENDING)],
                                          hint=OUTBOX_INDEX.name)
        return None if oldest is None else oldest["start_requested_at"]


def _as_read(task: Task) -> dict[str, Any]:
    """A task still in the outbox as `due` read it: the same attempt, in the same status (a
    task cancelled, started again or reported running meanwhile is not matched)."""
    return {"_id": task["task_id"], **IN_OUTBOX, "attempt": task["attempt"],
            "status": task["status"]}


def _due(now: datetime) -> dict[str, Any]:
    """Started tasks whose time to be published has come (a retry's backoff may not have)."""
    return {**IN_OUTBOX, "start_requested_at": {"$lte": now}}

