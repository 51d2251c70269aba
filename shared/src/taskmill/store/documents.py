"""The stored task: its document, the events of its history, and the indexes its queries use.

A task's `_id` is its task_id: the one unique key, served by the primary index of every
engine. A task in the outbox (started, not yet published) is due for publication at
`start_requested_at` (a retry's backoff puts that in the future); entering or leaving the
outbox sets both together. A running task asked to stop holds `cancel_message` (what it
will end with); a task that ended so has `cancelled` true. `report_token` is the token of
the last list of worker reports that changed the task in one write (`WorkerReports.report_each`
reads back by it which of the list's tasks that write changed).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from taskmill.config import ServiceConfig
from taskmill.schema import Status

Task = dict[str, Any]

# The list's order, newest first; task_id breaks ties between tasks of one millisecond.
NEWEST = [("create_time", -1), ("task_id", -1)]


class Index(NamedTuple):
    """An index of the tasks collection: its name (what queries hint), its keys, and, for a
    partial index, the filter of the tasks it holds (a query reaches it only by stating
    that filter itself)."""

    name: str
    keys: list[tuple[str, int]]
    holds: Mapping[str, Any] | None = None


# Each list filter has the index that serves it and the sort: an equality prefix, then the
# order (a store sorts a page by walking the index, never by reading every match).
LIST_INDEXES: dict[tuple[str, ...], Index] = {
    (): Index("list_newest", NEWEST),
    ("service",): Index("list_service", [("service", 1), *NEWEST]),
    ("status",): Index("list_status", [("status", 1), *NEWEST]),
    ("service", "status"): Index("list_service_status", [("service", 1), ("status", 1), *NEWEST]),
}
# The outbox in start order (its size and age), and per service in the order the
# dispatcher publishes it: highest priority first, then oldest start. Both hold only the
# tasks in the outbox, and the lease index only the tasks that hold a lease (waiting for
# or running on a worker): every write of a task adds an entry to each index that holds
# it (on the local engine index entries are most of a write's cost), and most writes are
# of tasks in neither. A partial index's filter is not among its keys: the local engine
# takes a sort from an index only if every key before the sorted ones is matched by a
# condition it keeps, and it drops the condition the filter implies. It refuses `$in` in
# a partial filter (status waiting or running): a held lease is a date, an ended or
# unstarted task's is null.
IN_OUTBOX: dict[str, Any] = {"outbox": True}
LEASE_HELD: dict[str, Any] = {"lease_until": {"$type": "date"}}
OUTBOX_INDEX = Index("outbox_queue", [("start_requested_at", 1)], IN_OUTBOX)
PUBLISH_ORDER = [("priority", -1), ("start_requested_at", 1)]
PRIORITY_INDEX = Index("outbox_publish_order", [("service", 1), *PUBLISH_ORDER], IN_OUTBOX)
# Expired leases oldest first, read in the index's order (however many expire at once).
LEASE_INDEX = Index("held_leases", [("lease_until", 1), ("status", 1)], LEASE_HELD)
# A service's tasks of one status, published or not (the tasks waiting on Kafka), ended
# when (retention).
SERVICE_STATUS_INDEX = Index("service_status", [("service", 1), ("status", 1), ("outbox", 1),
                                                ("end_time", 1)])
INDEXES = [*LIST_INDEXES.values(), OUTBOX_INDEX, PRIORITY_INDEX, LEASE_INDEX, SERVICE_STATUS_INDEX]
# Indexes of earlier versions that those above replace: dropped once these exist.
REPLACED_INDEXES = frozenset({"outbox_due", "outbox_priority", "leases"})

DEFAULT_PRIORITY = 5

# status_task's fields, and what explains a task that waits (`pending`).
STATUS_FIELDS = {"_id": 0, "task_id": 1, "status": 1, "status_message": 1, "start_time": 1,
                 "end_time": 1, "attempt": 1, "progress": 1, "cancelled": 1, "service": 1,
                 "outbox": 1, "start_requested_at": 1, "update_time": 1}
LIST_FIELDS = {"_id": 0, "task_id": 1, "service": 1, "status": 1, "condition": 1, "create_time": 1}
# What a dispatcher needs of a task it publishes: everything but the history.
RELAY_FIELDS = {"_id": 0, "history": 0}

# No cancellation asked of the current run, and the task did not end cancelled.
NOT_CANCELLED: dict[str, Any] = {"cancel_message": None, "cancelled": False}
UNQUEUED: dict[str, Any] = {"outbox": False, "start_requested_at": None}


def queued(at: datetime) -> dict[str, Any]:
    """The fields of a task in the outbox, due for publication at `at`."""
    return {**IN_OUTBOX, "start_requested_at": at}


def lease_ended(before: datetime) -> dict[str, Any]:
    """The filter of the tasks whose lease ended before then (the lease index's filter
    stated, so that the query reaches it)."""
    return {"lease_until": {**LEASE_HELD["lease_until"], "$lt": before}}


def list_index(service: str | None, status: str | None) -> tuple[dict[str, str], str]:
    """The filter of a list query and the name of the index that serves it."""
    query = {k: v for k, v in (("service", service), ("status", status)) if v is not None}
    return query, LIST_INDEXES[tuple(query)].name


def new_task(task_id: str, service: ServiceConfig, condition: Mapping[str, Any], start: bool,
             now: datetime, priority: int = DEFAULT_PRIORITY) -> Task:
    """The document of a new task, in status ready (its start recorded when start is true)."""
    attempt = 1 if start else 0
    return {
        "_id": task_id,
        "task_id": task_id,
        "status": Status.READY.value,
        "service": service.name,
        "source_name": service.source_name,
        "condition": dict(condition),
        "priority": priority,
        "start_time": None,
        "end_time": None,
        "create_time": now,
        "update_time": now,
        "status_message": {"failed": None, "running": None, "finished": None},
        "result": None,
        "attempt": attempt,
        "run_attempts": attempt,
        **(queued(now) if start else UNQUEUED),
        "lease_until": None,
        "progress": None,
        **NOT_CANCELLED,
        "history": [event(Status.READY, now, attempt, "started" if start else None)],
    }


def ended_failed(message: str, now: datetime, attempt: int, cancelled: bool = False) -> dict[str, Any]:
    """The update that ends a task failed with this message (out of the outbox, no lease)."""
    return {"$set": {"status": Status.FAILED.value, "status_message.failed": message,
                     "end_time": now, "lease_until": None, **UNQUEUED, "update_time": now,
                     **({"cancelled": True} if cancelled else {})},
            "$push": {"history": event(Status.FAILED, now, attempt, message)}}


def event(status: Status, when: datetime, attempt: int, message: Any) -> dict[str, Any]:
    """One entry of a task's history."""
    return {"status": status.value, "time": when, "attempt": attempt, "message": message}
