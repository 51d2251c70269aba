"""Each service at a glance, for the people who run it: its tasks by status, what ended
recently, how long runs take, and what the dispatcher last saw of it.

Read from what the store keeps anyway: the kept counts (`counts`, one query), the tasks
that ended in the window (one aggregate over the `service_status` index), the last runs'
times (one indexed query per service) and the services' states (one query).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.collection import Collection

from taskmill.schema import FINAL, Status
from taskmill.store.connection import unavailable_as_error
from taskmill.store.counts import STATUSES, Counts
from taskmill.store.documents import SERVICE_STATUS_INDEX, Task
from taskmill.store.service_states import ServiceState

# What "recently" means: throughput and failure rate are over the last hour.
WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class RunTimes:
    """A service's recent finished runs: how long they took, and when the last ended."""

    median_s: float
    p95_s: float
    last_end: datetime


@dataclass(frozen=True)
class ServiceOverview:
    """One service: its tasks by status, those that ended in the window, its run times
    (None before any finished) and its state as the dispatcher last wrote it."""

    service: str
    counts: dict[str, int]
    ended: dict[str, int]  # finished / failed within WINDOW
    run_times: RunTimes | None
    state: ServiceState

    @property
    def failure_rate(self) -> float | None:
        """Failed of the tasks that ended in the window (None: none ended)."""
        done = sum(self.ended.values())
        return self.ended[Status.FAILED.value] / done if done else None

    @property
    def per_minute(self) -> float:
        """Tasks that ended in the window, a minute."""
        return sum(self.ended.values()) / (WINDOW.total_seconds() / 60)


def counts_of(counts: Counts, service: str) -> dict[str, int]:
    """A service's kept counts by status (every status, zero when none)."""
    return {status: counts.get((service, status), 0) for status in STATUSES}


def ended_since(tasks: Collection[Task], services: Sequence[str], since: datetime) -> Counts:
    """How many tasks of these services ended (finished or failed) at or after `since`, by
    (service, status): one aggregate, served by the index of a service's tasks of one
    status by end time."""
    ended = sorted(s.value for s in FINAL)
    pipeline: list[dict[str, Any]] = [
        {"$match": {"service": {"$in": list(services)}, "status": {"$in": ended},
                    "outbox": False, "end_time": {"$gte": since}}},
        {"$group": {"_id": {"service": "$service", "status": "$status"}, "n": {"$sum": 1}}}]
    with unavailable_as_error():
        found = tasks.aggregate(pipeline, hint=SERVICE_STATUS_INDEX.name)
        return {(doc["_id"]["service"], doc["_id"]["status"]): int(doc["n"]) for doc in found}
