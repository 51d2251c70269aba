"""The task store: every read and every state change of a task, in MongoDB.

Each change of a task is one conditional update of its document whose filter states the
change's precondition (the transitions of `taskmill.schema`, the attempt it belongs to),
so it is atomic on MongoDB and on the local engine alike, without transactions, and a
refused change costs one more read to say why. The dispatcher's side lives in `outbox`,
`leases` and `retention`, the per-status counts in `counts`, what is known of each service
beyond its tasks in `service_states`, why a task waits in `pending`. Connection problems
surface as `DependencyUnavailable`.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import UpdateOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from taskmill.config import Config, LifecycleConfig, RetryConfig, ServiceConfig
from taskmill.errors import StateConflict, TaskNotFound
from taskmill.schema import (
    FINAL,
    STARTABLE,
    WORKER_TRANSITIONS,
    Status,
    keyed_task_id,
    new_task_id,
    service_of,
    utcnow,
)
from taskmill.store.connection import connect, one_batch, unavailable_as_error
from taskmill.store.counts import TaskCounts
from taskmill.store.documents import (
    DEFAULT_PRIORITY,
    IN_OUTBOX,
    INDEXES,
    LIST_FIELDS,
    NEWEST,
    NOT_CANCELLED,
    REPLACED_INDEXES,
    SERVICE_STATUS_INDEX,
    STATUS_FIELDS,
    Task,
    ended_failed,
    event,
    list_index,
    new_task,
    queued,
)
from taskmill.store.inserts import GroupInserts
from taskmill.store.leases import Leases, run_again
from taskmill.store.monitoring import CommandCounter
from taskmill.store.outbox import Outbox
from taskmill.store.overview import WINDOW, RunTimes, ServiceOverview, counts_of, ended_since
from taskmill.store.pending import Pending
from taskmill.store.reports import (
    USUAL_FROM,
    Report,
    pinnable,
    pinned_filter,
    report_update,
    reported_fields,
)
from taskmill.store.retention import Retention
from taskmill.store.service_states import ServiceStates

Clock = Callable[[], datetime]


# What a change reads back: enough to answer and to move the counts.
_CHANGED_FIELDS = {"_id": 0, "task_id": 1, "service": 1, "status": 1, "attempt": 1, "lease_until": 1}
# Retries of a change that lost a race against another writer.
_RACE_ATTEMPTS = 5


class TaskStore:
    """Tasks in one MongoDB collection, their counts beside it."""

    def __init__(self, collection: Collection[Task], lifecycle: LifecycleConfig | None = None,
                 retries: Mapping[str, RetryConfig] | None = None, clock: Clock = utcnow,
                 id_factory: Callable[[str], str] = new_task_id) -> None:
        lifecycle = lifecycle or LifecycleConfig()
        self._tasks = collection
        self._inserts = GroupInserts(collection)
        self._retries = dict(retries or {})
        self._clock = clock
        self._new_id = id_factory
        self._lease = timedelta(seconds=lifecycle.lease_s)
        self._cancel_grace = timedelta(seconds=lifecycle.cancel_grace_s)
        self.counts = TaskCounts(collection, lifecycle.counts_flush_s)
        self.outbox = Outbox(collection, self.counts, clock, lifecycle.waiting_timeout_s)
        self.leases = Leases(collection, self.counts, clock, lifecycle.max_attempts)
        self.retention = Retention(collection, self.counts, clock)
        self.services = ServiceStates(collection)
        self.pending = Pending(collection, self.services, clock, lifecycle.stall_s)

    @classmethod
    def open(cls, config: Config, appname: str = "taskmill") -> TaskStore:
        """The store of a configured process, connected to its MongoDB, its commands counted."""
        return cls(connect(config.mongo, appname, [CommandCounter()]), config.lifecycle, config.retries)

    # -- set-up and health ---------------------------------------------------------------

    def ensure_indexes(self) -> None:
        """Create the indexes the queries need, then drop those they replace (idempotent;
        an api and a dispatcher may do it at once)."""
        with unavailable_as_error():
            for index in INDEXES:
                partial = {} if index.holds is None else {"partialFilterExpression": index.holds}
                self._tasks.create_index(index.keys, name=index.name, **partial)
            self._drop_replaced()

    def _drop_replaced(self) -> None:
        """Drop the indexes of an earlier version. When two processes drop one at once,
        MongoDB answers the later "index not found" and the local engine may abort either
        as a deadlock: the index is gone, or goes at the next try."""
        for attempt in range(1, _RACE_ATTEMPTS + 1):
            left = REPLACED_INDEXES & {index["name"] for index in self._tasks.list_indexes()}
            try:
                for name in left:
                    self._tasks.drop_index(name)
                return
            except OperationFailure:
                if attempt == _RACE_ATTEMPTS:
                    raise

    def close(self) -> None:
        """Write the count moves still gathered, close the connections to MongoDB."""
        self.counts.close()
        self._tasks.database.client.close()

    def ping(self) -> None:
        """Raise DependencyUnavailable unless MongoDB answers."""
        with unavailable_as_error():
            self._tasks.database.command("ping")

    # -- reads -------------------------------------------------------------------------

    def get(self, task_id: str) -> Task:
        """Return the task, or raise TaskNotFound."""
        with unavailable_as_error():
            doc = self._tasks.find_one({"_id": task_id}, {"_id": 0})
        if doc is None:
            raise TaskNotFound(task_id)
        return doc

    def get_many(self, task_ids: Sequence[str]) -> dict[str, Task]:
        """Return the status fields of the tasks that exist, by task_id (one query)."""
        with unavailable_as_error():
            found = self._tasks.find({"_id": {"$in": list(dict.fromkeys(task_ids))}}, STATUS_FIELDS)
            return {task["task_id"]: task for task in found}

    def run_times(self, service: str, last: int = 50) -> RunTimes | None:
        """The run times (running → finished) of the service's last finished tasks, or
        None before any finished."""
        with unavailable_as_error():
            ended = list(one_batch(self._tasks.find(
                {"service": service, "status": Status.FINISHED.value, "outbox": False},
                {"_id": 0, "start_time": 1, "end_time": 1}).sort("end_time", -1)
                .hint(SERVICE_STATUS_INDEX.name), last))
        runs = sorted((t["end_time"] - t["start_time"]).total_seconds() for t in ended
                      if t.get("start_time") and t.get("end_time"))
        if not runs:
            return None
        return RunTimes(median_s=runs[len(runs) // 2], p95_s=runs[math.ceil(0.95 * len(runs)) - 1],
                        last_end=max(t["end_time"] for t in ended if t.get("end_time")))

    def overview(self, services: Sequence[str]) -> list[ServiceOverview]:
        """Each of these services at a glance (`overview`), in the order given."""
        counts = self.counts.all()
        ended = ended_since(self._tasks, services, self._clock() - WINDOW)
        states = self.services.get_many(services)
        return [ServiceOverview(
            service=s, counts=counts_of(counts, s),
            ended={f.value: ended.get((s, f.value), 0) for f in (Status.FINISHED, Status.FAILED)},
            run_times=self.run_times(s), state=states[s]) for s in services]

    def list(self, page: int, p_size: int, service: str | None = None,
             status: str | None = None) -> tuple[int, list[Task]]:
        """Return the number of matching tasks and one page of them, newest first."""
        query, index = list_index(service, status)
        kept = self.counts.total(service, status)
        with unavailable_as_error():
            # The page's ids in index order, in a single batch, then the tasks themselves
            # by id: the ids always fit in one batch where a page of large conditions might not.
            ids = [t["_id"] for t in one_batch(self._tasks.find(query, {"_id": 1}).sort(NEWEST)
                                               .hint(index).skip((page - 1) * p_size), p_size)]
            found = {t["task_id"]: t for t in self._tasks.find({"_id": {"$in": ids}}, LIST_FIELDS)}
        return page_total(kept, page, p_size, len(ids)), [found[task_id] for task_id in ids
                                                          if task_id in found]

    # -- changes requested by clients -----------------------------------------------------

    def create(self, service: ServiceConfig, condition: Mapping[str, Any], start: bool = False,
               priority: int = DEFAULT_PRIORITY) -> Task:
        """Insert a new task in status ready (its start recorded when start is true), in one
        command with those other threads of the process create meanwhile (`inserts`)."""
        task = new_task(self._new_id(service.name), service, condition, start, self._clock(),
                        priority)
        with unavailable_as_error():
            try:
                self._inserts.insert(task)
            except DuplicateKeyError as ex:  # only with a broken id factory
                raise StateConflict(f"task {task['task_id']} already exists") from ex
        self.counts.moved(service.name, None, Status.READY.value)
        return task

    def create_once(self, service: ServiceConfig, condition: Mapping[str, Any], start: bool,
                    idempotency_key: str, priority: int = DEFAULT_PRIORITY) -> tuple[Task, bool]:
        """Create the task an idempotency key stands for, unless it exists: (task, created).

        The key names the task id (`keyed_task_id`), so the primary index makes concurrent
        creates with one key race-free: one insert wins, the others read what it made. The
        same key with another request (condition, start, priority) is a conflict.
        """
        task_id = keyed_task_id(service.name, idempotency_key)
        fingerprint = request_fingerprint(condition, start, priority)
        for _ in range(_RACE_ATTEMPTS):
            task = new_task(task_id, service, condition, start, self._clock(), priority)
            task.update(idempotency_key=idempotency_key, request_fingerprint=fingerprint)
            with unavailable_as_error():
                try:
                    self._inserts.insert(task)
                except DuplicateKeyError:
                    existing = self._tasks.find_one({"_id": task_id}, STATUS_FIELDS | {
                        "service": 1, "request_fingerprint": 1})
                else:
                    self.counts.moved(service.name, None, Status.READY.value)
                    return task, True
            if existing is None:
                continue  # deleted (retention) since the insert collided: create it now
            if existing.get("request_fingerprint") != fingerprint:
                raise StateConflict(f"idempotency_key {idempotency_key!r} of service {service.name} "
                                    f"was used for another request (task {task_id}): a different "
                                    "condition, start or priority")
            return existing, False
        raise StateConflict(f"task {task_id} is being changed concurrently; try again")

    def request_start(self, task_id: str) -> Task:
        """Record the start of a ready or failed task (the dispatcher publishes it)."""
        for _ in range(_RACE_ATTEMPTS):
            task = self._read(task_id, {"status": 1, "attempt": 1, "outbox": 1, "service": 1})
            if task["status"] not in STARTABLE:
                raise StateConflict(f"task {task_id} is {task['status']}; only a ready or failed "
                                    "task can be started")
            if _start_pending(task):
                raise StateConflict(f"task {task_id} is already started")
            now, attempt = self._clock(), task["attempt"] + 1
            update = {"$set": {"status": Status.READY.value, "attempt": attempt, "run_attempts": 1,
                               **queued(now), "lease_until": None, "start_time": None,
                               "end_time": None, "result": None, "progress": None,
                               **NOT_CANCELLED, "update_time": now},
                      "$push": {"history": event(Status.READY, now, attempt, "started")}}
            # The attempt changes with every start and requeue: it pins the state read above.
            if self._changed(task_id, {"status": task["status"], "attempt": task["attempt"],
                                       "outbox": task.get("outbox", False)}, update):
                self.counts.moved(task["service"], task["status"], Status.READY.value)
                return {**task, "task_id": task_id, "status": Status.READY.value, "attempt": attempt}
        raise StateConflict(f"task {task_id} is being changed concurrently; try again")

    def update_condition(self, task_id: str, condition: Mapping[str, Any]) -> Task:
        """Replace the condition of a task that is not waiting, running or already started."""
        changeable = {"$or": [{"status": {"$in": [s.value for s in FINAL]}},
                              {"status": Status.READY.value, "outbox": False}]}
        with unavailable_as_error():
            task = self._tasks.find_one_and_update(
                {"_id": task_id, **changeable},
                {"$set": {"condition": dict(condition), "update_time": self._clock()}},
                projection=_CHANGED_FIELDS)
        if task is not None:
            return task
        current = self._read(task_id, {"status": 1, "outbox": 1})
        state = "already started" if _start_pending(current) else current["status"]
        raise StateConflict(f"task {task_id} is {state}; its condition cannot change until it ends")

    def cancel(self, task_id: str, reason: str | None = None) -> Task:
        """Cancel a task that has not ended. A ready or waiting one ends failed now (a
        message of it already on Kafka is then refused to the worker that takes it); a
        running one is asked to stop: its worker learns it from its next heartbeat and
        reports, or the dispatcher ends it after cancel_grace_s (see `Leases`)."""
        message = f"cancelled: {reason or 'by client'}"
        for _ in range(_RACE_ATTEMPTS):
            task = self._read(task_id, {"status": 1, "attempt": 1, "service": 1, "cancel_message": 1})
            status = task["status"]
            if status in FINAL:
                raise StateConflict(f"task {task_id} is {status}; only a task that has not "
                                    "ended can be cancelled")
            now = self._clock()
            if status != Status.RUNNING:
                if (ended := self._end_cancelled(task_id, task, message, now)) is not None:
                    return ended
                continue
            asked = {**task, "task_id": task_id}
            if task.get("cancel_message") is not None:
                return asked  # asked already
            # The lease becomes the grace: heartbeats no longer renew it (see heartbeat).
            update = {"$set": {"cancel_message": message, "lease_until": now + self._cancel_grace,
                               "update_time": now}}
            if self._changed(task_id, {"status": status, "attempt": task["attempt"],
                                       "cancel_message": None}, update):
                return asked
        raise StateConflict(f"task {task_id} is being changed concurrently; try again")

    # -- changes reported by workers ------------------------------------------------------

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
        if self._apply(task_id, precondition, {"$set": fields}) is not None:
            return {"task_id": task_id, "status": Status.RUNNING.value,
                    "lease_until": fields["lease_until"], "cancel": False}
        current = self._read(task_id, {"status": 1, "attempt": 1, "lease_until": 1, "cancel_message": 1})
        _check_attempt(task_id, current, attempt)
        if current["status"] == Status.RUNNING and current.get("cancel_message") is not None:
            # Asked to stop: the lease is not renewed past the cancellation's grace.
            return {"task_id": task_id, "status": Status.RUNNING.value,
                    "lease_until": current["lease_until"], "cancel": True}
        raise StateConflict(f"task {task_id} is {current['status']}; only a running task has a "
                            "lease to renew")

    # -- internals ---------------------------------------------------------------------

    def _report(self, ask: Report, now: datetime) -> Task:
        fields = reported_fields(ask, now, self._lease)
        for _ in range(_RACE_ATTEMPTS):
            if ask.attempt is None or ask.retry:  # needs the task's attempt or its retry count first
                task = self._read(ask.task_id, {"status": 1, "attempt": 1, "run_attempts": 1,
                                                "service": 1, "cancel_message": 1})
                _check_attempt(ask.task_id, task, ask.attempt)
                retried = self._retried(ask.task_id, task, ask.status, ask.retry, ask.message, now)
                if retried is not None:
                    return retried
                known = task["attempt"]
            else:
                known = ask.attempt
            precondition = {"attempt": known, **_reportable(ask.status)}
            if ask.status != Status.RUNNING:
                precondition["cancel_message"] = None
            before = self._apply(ask.task_id, precondition, report_update(ask, fields, known, now))
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
        self.counts.moved(service, before, status.value)
        if status == Status.FAILED:
            self.services.run_failed(service, now)

    def _refused_report(self, task_id: str, status: Status, attempt: int, now: datetime,
                        worker: str | None) -> Task | None:
        """Why a report's update found nothing to change: the answer when it stands anyway
        (repeated, or the end of a cancelled run), None to try again, or a raised conflict."""
        current = self._read(task_id, {"status": 1, "attempt": 1, "outbox": 1, "service": 1,
                                       "lease_until": 1, "cancel_message": 1, "cancelled": 1,
                                       "worker": 1})
        _check_attempt(task_id, current, attempt)
        if current.get("cancel_message") is not None and _may_report(current, status):
            return self._end_cancelled(task_id, current, current["cancel_message"], now)
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

    def _end_cancelled(self, task_id: str, task: Task, message: str, now: datetime) -> Task | None:
        """End a cancelled task failed with the cancellation's message, if it is still as
        read (None: it changed meanwhile)."""
        pinned = {"status": task["status"], "attempt": task["attempt"],
                  "cancel_message": task.get("cancel_message")}
        if not self._changed(task_id, pinned, ended_failed(message, now, task["attempt"], cancelled=True)):
            return None
        self.counts.moved(task["service"], task["status"], Status.FAILED.value)
        return {"task_id": task_id, "service": task["service"], "status": Status.FAILED.value,
                "lease_until": None}

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
        if not self._changed(task_id, {"status": task["status"], "attempt": task["attempt"]}, update):
            raise StateConflict(f"task {task_id} is being changed concurrently; try again")
        self.counts.moved(task["service"], task["status"], Status.WAITING.value)
        self.services.run_failed(task["service"], now)
        return {"task_id": task_id, "service": task["service"], "status": Status.WAITING.value,
                "attempt": attempt, "lease_until": None}

    def _read(self, task_id: str, fields: Mapping[str, int]) -> Task:
        with unavailable_as_error():
            task = self._tasks.find_one({"_id": task_id}, dict(fields))
        if task is None:
            raise TaskNotFound(task_id)
        return task

    def _apply(self, task_id: str, precondition: Mapping[str, Any], update: Mapping[str, Any]) -> Task | None:
        """Change the task if it meets the precondition; its fields before, or None."""
        with unavailable_as_error():
            return self._tasks.find_one_and_update({"_id": task_id, **precondition}, dict(update),
                                                   projection=_CHANGED_FIELDS)

    def _changed(self, task_id: str, precondition: Mapping[str, Any], update: Mapping[str, Any]) -> bool:
        with unavailable_as_error():
            return bool(self._tasks.update_one({"_id": task_id, **precondition}, dict(update))
                        .modified_count)


def page_total(kept: int, page: int, p_size: int, on_page: int) -> int:
    """A list's total: the kept count (`counts`, which another api process's changes reach
    up to counts_flush_s late), made to agree with the page just read. A page that is not
    full ends the list, so it fixes the total exactly; a full one says there are at least
    that many; an empty one past the end, at most those before it."""
    before = (page - 1) * p_size
    if on_page == p_size:
        return max(kept, before + on_page)
    if on_page:
        return before + on_page
    return min(kept, before)


def request_fingerprint(condition: Mapping[str, Any], start: bool, priority: int) -> str:
    """What makes two creates the same request, as a short stable digest."""
    text = json.dumps({"condition": condition, "start": start, "priority": priority}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


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
                                                            and _start_pending(task))


def _start_pending(task: Task) -> bool:
    """Tell whether the task's start is recorded but its publication not yet confirmed."""
    return task["status"] == Status.READY and bool(task.get("outbox"))


def _another_worker(running_on: str | None, reporter: str | None) -> bool:
    """Whether a `running` report comes from a worker other than the one running the task
    (its message delivered twice); an unnamed side is not compared."""
    return None not in (running_on, reporter) and running_on != reporter


def _check_attempt(task_id: str, task: Task, attempt: int | None) -> None:
    """Refuse a change that names an attempt other than the task's current one."""
    if attempt is not None and attempt != task["attempt"]:
        raise StateConflict(f"attempt {attempt} of task {task_id} is stale; the current attempt "
                            f"is {task['attempt']} ({task['status']})")

