"""The dispatcher's outbox: started tasks, claimed in batches, published, then waiting.

Every command here covers a whole batch: a claim is one read of a service's due tasks'
ids in publication order, highest priority first, then oldest start (served by the
priority index, sort included; `one_batch`) and one bulk write
that claims those still unclaimed under a token of this claim (an update per task, by its
_id: see `each_by_id`), then one read of what the token holds (another dispatcher may have
been first to some); the confirmation of a batch is one bulk write per (service, previous
status) of its tasks, so that the counts move by exactly what changed. `in_flight`
counts what a service has on Kafka (published, not yet taken), which the relay keeps
under its workers' capacity.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.collection import Collection

from taskmill.schema import Status
from taskmill.store.connection import each_by_id, one_batch, unavailable_as_error
from taskmill.store.counts import TaskCounts
from taskmill.store.documents import (
    OUTBOX_INDEX,
    PRIORITY_INDEX,
    PUBLISH_ORDER,
    RELAY_FIELDS,
    SERVICE_STATUS_INDEX,
    UNCLAIMED,
    UNQUEUED,
    Task,
    ended_failed,
    event,
)

Clock = Callable[[], datetime]


class Outbox:
    """Started tasks awaiting publication, and the dispatchers' claims on them."""

    def __init__(self, tasks: Collection[Task], counts: TaskCounts, clock: Clock,
                 waiting_timeout_s: float, token_factory: Callable[[], str] = lambda: uuid.uuid4().hex
                 ) -> None:
        self._tasks = tasks
        self._counts = counts
        self._clock = clock
        self._waiting_timeout = timedelta(seconds=waiting_timeout_s)
        self._new_token = token_factory

    def any_due(self) -> bool:
        """Whether any task of any service may be due for publication (one indexed read:
        an idle relay round costs this instead of two reads per service)."""
        with unavailable_as_error():
            return self._tasks.find_one(_due(self._clock()), {"_id": 1},
                                        hint=OUTBOX_INDEX[0]) is not None

    def claim_due(self, limit: int, claim_s: float, service: str) -> list[Task]:
        """Claim up to `limit` tasks of `service` due for publication, highest priority
        first, then oldest start."""
        now = self._clock()
        due = {**_due(now), "service": service,
               "$or": [{"claim_until": None}, {"claim_until": {"$lt": now}}]}
        token = self._new_token()
        with unavailable_as_error():
            ids = [t["_id"] for t in one_batch(self._tasks.find(due, {"_id": 1})
                                               .sort(PUBLISH_ORDER).hint(PRIORITY_INDEX[0]), limit)]
            if not ids:
                return []
            claim = {"$set": {"claim_until": now + timedelta(seconds=claim_s), "claim_token": token}}
            each_by_id(self._tasks, {task_id: UpdateOne({**due, "_id": task_id}, claim) for task_id in ids})
            claimed = list(self._tasks.find({"_id": {"$in": ids}, "claim_token": token}, RELAY_FIELDS))
        order = {task_id: n for n, task_id in enumerate(ids)}
        return sorted(claimed, key=lambda task: order[task["task_id"]])

    def mark_published(self, published: Sequence[Task]) -> int:
        """Record that the broker confirmed the messages of these claimed tasks: they wait for
        a worker. Return how many changed (a task a worker already reported running, which
        took it out of the outbox, has nothing left to record)."""
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
        """The update of a claimed task whose message the broker confirmed: it waits."""
        return UpdateOne({"_id": task["task_id"], "claim_token": task["claim_token"], "outbox": True,
                          "status": task["status"]},
                         {"$set": {"status": Status.WAITING.value, **UNQUEUED, "update_time": now,
                                   "lease_until": now + self._waiting_timeout},
                          "$push": {"history": event(Status.WAITING, now, task["attempt"], None)}})

    def refuse(self, task: Task, reason: str) -> bool:
        """End a claimed task failed: its message can never be published (reason says why)."""
        now = self._clock()
        with unavailable_as_error():
            done = self._tasks.update_one(
                {"_id": task["task_id"], "claim_token": task["claim_token"], "outbox": True},
                ended_failed(reason, now, task["attempt"]))
        if done.modified_count:
            self._counts.moved(task["service"], task["status"], Status.FAILED.value)
        return bool(done.modified_count)

    def release(self, claimed: Sequence[Task]) -> None:
        """Give claimed tasks back to the outbox (their publication failed)."""
        if not claimed:
            return
        unclaim = {t["task_id"]: UpdateOne({"_id": t["task_id"], "claim_token": t["claim_token"]},
                                           {"$set": UNCLAIMED}) for t in claimed}
        with unavailable_as_error():
            each_by_id(self._tasks, unclaim)

    def in_flight(self, service: str, at_most: int | None = None) -> int:
        """How many tasks of the service are published and not yet taken by a worker
        (counted up to `at_most`). The relay keeps them few, so their ids are read: the
        local engine's count and aggregate read the whole index range, ten times slower
        (measured)."""
        with unavailable_as_error():
            found = self._tasks.find({"service": service, "status": Status.WAITING.value,
                                      "outbox": False}, {"_id": 1}).hint(SERVICE_STATUS_INDEX[0])
            return len(list(found if at_most is None else one_batch(found, at_most)))

    def queued(self) -> dict[str, int]:
        """How many started tasks of each service await publication."""
        with unavailable_as_error():
            groups = self._tasks.aggregate([{"$match": {"outbox": True}},
                                            {"$group": {"_id": "$service", "n": {"$sum": 1}}}],
                                           hint=OUTBOX_INDEX[0])
            return {group["_id"]: group["n"] for group in groups}

    def oldest_start(self) -> datetime | None:
        """When the longest-waiting task awaiting publication was started (None: none is)."""
        with unavailable_as_error():
            oldest = self._tasks.find_one({"outbox": True}, {"_id": 0, "start_requested_at": 1},
                                          sort=[("start_requested_at", ASCENDING)],
                                          hint=OUTBOX_INDEX[0])
        return None if oldest is None else oldest["start_requested_at"]


def _due(now: datetime) -> dict[str, Any]:
    """Started tasks whose time to be published has come (a retry's backoff may not have)."""
    return {"outbox": True, "start_requested_at": {"$lte": now}}

