"""Workers' reports of their tasks' status, as the store applies them (`WorkerReports`):
the update a report makes, and the status it usually leaves, from which reports sent
together are applied in one write (`report_each`); a report that is not the usual one, or
that the write did not apply, is a conditional change of its own (`changes`)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import UpdateOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from taskmill.config import RetryConfig
from taskmill.errors import StateConflict, TaskNotFound
from taskmill.schema import WORKER_TRANSITIONS, Clock, Status, service_of
from taskmill.store.changes import RACE_ATTEMPTS, Changes, check_attempt, start_pending
from taskmill.store.connection import unavailable_as_error
from taskmill.store.counts import TaskCounts
from taskmill.store.documents import IN_OUTBOX, UNQUEUED, Task, event
from taskmill.store.leases import run_again
from taskmill.store.service_states import ServiceStates


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


class WorkerReports:
    """Workers' reports of their tasks (`update_status_task`) and heartbeats, applied to the
    tasks in one collection, the counts moved with them."""

    def __init__(self, tasks: Collection[Task], changes: Changes, counts: TaskCounts,
                 services: ServiceStates, clock: Clock, lease: timedelta,
                 retries: Mapping[str, RetryConfig]) -> None:
        self._tasks = tasks
        self._changes = changes
        self._counts = counts
        self._services = services
        self._clock = clock
        self._lease = lease
        self._retries = retries

    def report(self, task_id: str, status: Status, message: Any = None,
               result: Mapping[str, Any] | None = None, attempt: int | None = None,
               retry: bool = False, worker: str | None = None) -> Task:
        """Apply a worker's status report, refusing stale attempts and illegal transitions.

        Reports are idempotent per attempt: the same report again (a request retried after
        its answer was lost) is answered as the first was, and changes nothing. A failure
        reported with `retry` is run again when the service's retry policy has
        attempts left (after its backoff); otherwise the task ends failed. A run asked to
        stop (`cancel`) ends failed with the cancellation's message whatever it reports,
        and once it has ended so, every later report of it is refused. A `running` report
        names its `worker`: the same attempt reported running by another named worker (its
        message delivered twice) is refused, so it does not run beside the first; an
        unnamed report is not compared.
        """
        return self._report(Report(task_id, status, message, result, attempt, retry, worker),
                            self._clock())

    def report_each(self, reports: Sequence[Report]) -> list[Task | TaskNotFound | StateConflict]:
        """Apply reports sent together, each as `report` would alone: for each, in order, the
        task as `report` answers it or the refusal it met.

        Those that name their attempt and leave the status they usually do (`USUAL_FROM`:
        a worker's pair, one run's end and the next one's start) are written first, in one
        bulk write of updates pinned to that status, so that each one's count moves by a
        known key without a read: one command where `report` makes one per report. Each
        carries this call's token (`report_token`), by which the tasks it changed are read
        back when not all were; those it did not change, and the others, then go through
        `report`. A list that names a task twice goes through `report`, one at a time.
        """
        now = self._clock()
        usual = {i: r for i, r in enumerate(reports) if pinnable(r)}
        if len(usual) < 2 or len({r.task_id for r in reports}) < len(reports):
            return [self._report_or_refusal(r, now) for r in reports]
        token = uuid.uuid4().hex
        fields = {i: {**reported_fields(r, now, self._lease), "report_token": token}
                  for i, r in usual.items()}
        # In _id order, as the dispatcher's bulk writes lock the tasks they share.
        writes = [UpdateOne(pinned_filter(r), report_update(r, fields[i], r.attempt, now))
                  for i, r in sorted(usual.items(), key=lambda item: item[1].task_id)]
        with unavailable_as_error():
            try:
                changed = self._tasks.bulk_write(writes, ordered=False).modified_count
            except BulkWriteError as ex:  # one refused (a deadlock's victim): it goes through `report`
                changed = ex.details["nModified"]
            if changed < len(usual):
                marked = {t["_id"] for t in self._tasks.find(
                    {"_id": {"$in": [r.task_id for r in usual.values()]}},
                    {"_id": 1, "report_token": 1}) if t.get("report_token") == token}
                usual = {i: r for i, r in usual.items() if r.task_id in marked}
        applied: dict[int, Task] = {}
        for i, ask in usual.items():  # before any other report can fail the call
            service = service_of(ask.task_id)
            self._reported(service, USUAL_FROM[ask.status].value, ask.status, now)
            applied[i] = {"task_id": ask.task_id, "service": service, "status": ask.status.value,
                          "attempt": ask.attempt, "lease_until": fields[i]["lease_until"]}
        return [applied[i] if i in applied else self._report_or_refusal(ask, now)
                for i, ask in enumerate(reports)]

    def heartbeat(self, task_id: str, attempt: int | None, progress: float | None = None,
                  message: Any = None) -> Task:
        """Renew a running task's lease, with optional progress and message."""
        now = self._clock()
        fields: dict[str, Any] = {"lease_until": now + self._lease, "update_time": now}
        if progress is not None:
            fields["progress"] = progress
        if message is not None:
            fields["status_message.running"] = message
        precondition: dict[str, Any] = {"status": Status.RUNNING.value, "cancel_message": None}
        if attempt is not None:
            precondition["attempt"] = attempt
        if self._changes.apply(task_id, precondition, {"$set": fields}) is not None:
            return {"task_id": task_id, "status": Status.RUNNING.value,
                    "lease_until": fields["lease_until"], "cancel": False}
        current = self._changes.read(task_id, {"status": 1, "attempt": 1, "lease_until": 1,
                                               "cancel_message": 1})
        check_attempt(task_id, current, attempt)
        if current["status"] == Status.RUNNING and current.get("cancel_message") is not None:
            # Asked to stop: the lease is not renewed past the cancellation's grace.
            return {"task_id": task_id, "status": Status.RUNNING.value,
                    "lease_until": current["lease_until"], "cancel": True}
        raise StateConflict(f"task {task_id} is {current['status']}; only a running task has a "
                            "lease to renew")

    # -- internals ---------------------------------------------------------------------

    def _report(self, ask: Report, now: datetime) -> Task:
        fields = reported_fields(ask, now, self._lease)
        for _ in range(RACE_ATTEMPTS):
            if ask.attempt is None or ask.retry:  # needs the task's attempt or its retry count first
                task = self._changes.read(ask.task_id, {"status": 1, "attempt": 1, "run_attempts": 1,
                                                "service": 1, "cancel_message": 1})
                check_attempt(ask.task_id, task, ask.attempt)
                retried = self._retried(ask.task_id, task, ask.status, ask.retry, ask.message, now)
                if retried is not None:
                    return retried
                known = task["attempt"]
            else:
                known = ask.attempt
            precondition = {"attempt": known, **_reportable(ask.status)}
            if ask.status != Status.RUNNING:
                precondition["cancel_message"] = None
            before = self._changes.apply(ask.task_id, precondition, report_update(ask, fields, known, now))
            if before is not None:
                self._reported(before["service"], before["status"], ask.status, now)
                return {**before, "status": ask.status.value, "lease_until": fields["lease_until"]}
            answer = self._refused_report(ask.task_id, ask.status, known, now, ask.worker)
            if answer is not None:
                return answer
        raise StateConflict(f"task {ask.task_id} is being changed concurrently; try again")

    def _report_or_refusal(self, ask: Report, now: datetime) -> Task | TaskNotFound | StateConflict:
        try:
            return self._report(ask, now)
        except (TaskNotFound, StateConflict) as refusal:
            return refusal

    def _reported(self, service: str, before: str, status: Status, now: datetime) -> None:
        """Move the counts of a report that changed its task; a failure is the service's."""
        self._counts.moved(service, before, status.value)
        if status == Status.FAILED:
            self._services.run_failed(service, now)

    def _refused_report(self, task_id: str, status: Status, attempt: int, now: datetime,
                        worker: str | None) -> Task | None:
        """Why a report's update found nothing to change: the answer when it stands anyway
        (repeated, or the end of a cancelled run), None to try again, or a raised conflict."""
        current = self._changes.read(task_id, {"status": 1, "attempt": 1, "outbox": 1, "service": 1,
                                       "lease_until": 1, "cancel_message": 1, "cancelled": 1,
                                       "worker": 1})
        check_attempt(task_id, current, attempt)
        if current.get("cancel_message") is not None and _may_report(current, status):
            return self._changes.end_cancelled(task_id, current, current["cancel_message"], now)
        if current.get("cancelled"):
            raise StateConflict(f"task {task_id} was cancelled; this run's reports are no "
                                "longer taken")
        if current["status"] == status:  # the same report again (a retried request): done
            if status == Status.RUNNING and _another_worker(current.get("worker"), worker):
                raise StateConflict(f"task {task_id} is running on another worker")
            return {"task_id": task_id, "service": current["service"], "status": status.value,
                    "lease_until": current.get("lease_until")}
        if not _may_report(current, status):
            raise StateConflict(f"task {task_id} cannot go from {current['status']} to {status}")
        return None

    def _retried(self, task_id: str, task: Task, status: Status, retry: bool, message: Any,
                 now: datetime) -> Task | None:
        """Queue the task for another run if this is a retryable failure with attempts left."""
        policy = self._retries.get(task["service"])
        if not (status == Status.FAILED and retry and policy is not None
                and task.get("cancel_message") is None
                and task["run_attempts"] < policy.max_attempts):
            return None
        if not _may_report(task, status):
            raise StateConflict(f"task {task_id} cannot go from {task['status']} to {status}")
        attempt, tries = task["attempt"] + 1, task["run_attempts"] + 1
        due = now + timedelta(seconds=policy.delay_s(task["run_attempts"]))
        update = run_again(now, attempt, tries, due, [
            event(Status.FAILED, now, task["attempt"], message),
            event(Status.WAITING, now, attempt, f"attempt {attempt}: retry after: {message}")])
        if not self._changes.changed(task_id, {"status": task["status"], "attempt": task["attempt"]}, update):
            raise StateConflict(f"task {task_id} is being changed concurrently; try again")
        self._counts.moved(task["service"], task["status"], Status.WAITING.value)
        self._services.run_failed(task["service"], now)
        return {"task_id": task_id, "service": task["service"], "status": Status.WAITING.value,
                "attempt": attempt, "lease_until": None}


def _reportable(status: Status) -> dict[str, Any]:
    """The states a worker may report `status` from (the schema's transitions), as a filter.

    A task whose start is recorded but whose publication the dispatcher has not confirmed
    yet is still ready: a worker holding its message may report it running (the message
    in its hands proves the publication).
    """
    allowed = {"status": {"$in": [s.value for s in WORKER_TRANSITIONS[status]]}}
    if status != Status.RUNNING:
        return allowed
    return {"$or": [allowed, {"status": Status.READY.value, **IN_OUTBOX}]}


def _may_report(task: Task, status: Status) -> bool:
    return task["status"] in WORKER_TRANSITIONS[status] or (status == Status.RUNNING
                                                            and start_pending(task))


def _another_worker(running_on: str | None, reporter: str | None) -> bool:
    """Whether a `running` report comes from a worker other than the one running the task
    (its message delivered twice); an unnamed side is not compared."""
    return None not in (running_on, reporter) and running_on != reporter
