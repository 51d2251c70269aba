"""A worker's report of a task's status, as the store applies it: the update it makes, and
the status it usually leaves, from which reports sent together are applied in one write
(`TaskStore.report_each`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from taskmill.schema import Status, service_of
from taskmill.store.documents import UNQUEUED, event


@dataclass(frozen=True)
class Report:
    """One report (update_status_task) as the api checked it: the run it names (`attempt`;
    None: the current one), a failure that may run again (`retry`), the worker that sends
    it. `taskmill.client.Report` is the same report as a worker sends it: any status
    string, which the api checks (a client that turned it into a `Status` itself would
    answer a typo with a ValueError instead of the api's 400)."""

    task_id: str
    status: Status
    message: Any = None
    result: Mapping[str, Any] | None = None
    attempt: int | None = None
    retry: bool = False
    worker: str | None = None


# The status each report usually leaves: a worker reports running on a task waiting for it,
# and its end on a task it runs.
USUAL_FROM = {Status.RUNNING: Status.WAITING, Status.FINISHED: Status.RUNNING,
              Status.FAILED: Status.RUNNING}


def reported_fields(report: Report, now: datetime, lease: timedelta) -> dict[str, Any]:
    """The fields a report sets (`$set`)."""
    fields: dict[str, Any] = {"status": report.status.value,
                              f"status_message.{report.status.value}": report.message,
                              "update_time": now, **UNQUEUED}
    if report.status == Status.RUNNING:
        fields.update(start_time=now, lease_until=now + lease, worker=report.worker)
    else:
        fields.update(end_time=now, lease_until=None)
    if report.status == Status.FINISHED:
        fields.update(result=dict(report.result or {}), progress=1.0)
    return fields


def report_update(report: Report, fields: Mapping[str, Any], attempt: int, now: datetime) -> dict[str, Any]:
    """The update of a report of this attempt: its fields, and the event in the history."""
    return {"$set": dict(fields), "$push": {"history": event(report.status, now, attempt, report.message)}}


def pinnable(report: Report) -> bool:
    """Whether the report can be applied from its usual status without reading the task
    first: it names its attempt and does not ask to run again (the task's retry count
    decides what that does)."""
    return (report.attempt is not None and not report.retry
            and service_of(report.task_id) is not None)


def pinned_filter(report: Report) -> dict[str, Any]:
    """The filter of a pinnable report applied from its usual status: the task's service
    (named by its id) and that status are then known without reading it. A run asked to
    stop is not matched (its end is the cancellation's)."""
    precondition: dict[str, Any] = {"_id": report.task_id, "service": service_of(report.task_id),
                                    "attempt": report.attempt,
                                    "status": USUAL_FROM[report.status].value}
    if report.status != Status.RUNNING:
        precondition["cancel_message"] = None
    return precondition
