"""The task store: every read and every state change of a task, in MongoDB.

Each change of a task is one conditional update of its document whose filter states the
change's precondition (`changes`), so it is atomic on MongoDB and on the local engine
alike, without transactions, and a refused change costs one more read to say why. Here
are the reads and the clients' changes; the workers' reports live in `reports`, the
dispatcher's side in `outbox`, `leases` and `retention`, the per-status counts in
`counts`, what is known of each service beyond its tasks in `service_states`, why a task
waits in `pending`. Connection problems surface as `DependencyUnavailable`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, OperationFailure

from taskmill.config import Config, LifecycleConfig, RetryConfig, ServiceConfig
from taskmill.errors import StateConflict, TaskNotFound
from taskmill.schema import (
    FINAL,
    STARTABLE,
    Clock,
    Status,
    keyed_task_id,
    new_task_id,
    utcnow,
)
from taskmill.store.changes import CHANGED_FIELDS, RACE_ATTEMPTS, Changes, start_pending
from taskmill.store.connection import connect, one_batch, unavailable_as_error
from taskmill.store.counts import TaskCounts
from taskmill.store.documents import (
    DEFAULT_PRIORITY,
    INDEXES,
    LIST_FIELDS,
    NEWEST,
    NOT_CANCELLED,
    REPLACED_INDEXES,
    SERVICE_STATUS_INDEX,
    STATUS_FIELDS,
    Task,
    event,
    list_index,
    new_task,
    queued,
)
from taskmill.store.inserts import GroupInserts
from taskmill.store.leases import Leases
from taskmill.store.monitoring import CommandCounter
from taskmill.store.outbox import Outbox
from taskmill.store.overview import WINDOW, RunTimes, ServiceOverview, counts_of, ended_since
from taskmill.store.pending import Pending
from taskmill.store.reports import Report, WorkerReports
from taskmill.store.retention import Retention
from taskmill.store.service_states import ServiceStates


class TaskStore:
    """Tasks in one MongoDB collection, their counts beside it."""

    def __init__(self, collection: Collection[Task], lifecycle: LifecycleConfig | None = None,
                 retries: Mapping[str, RetryConfig] | None = None, clock: Clock = utcnow,
                 id_factory: Callable[[str], str] = new_task_id) -> None:
        lifecycle = lifecycle or LifecycleConfig()
        self._tasks = collection
        self._inserts = GroupInserts(collection)
        self._clock = clock
        self._new_id = id_factory
        self._cancel_grace = timedelta(seconds=lifecycle.cancel_grace_s)
        self.counts = TaskCounts(collection, lifecycle.counts_flush_s)
        self._changes = Changes(collection, self.counts)
        self.outbox = Outbox(collection, self.counts, clock, lifecycle.waiting_timeout_s)
        self.leases = Leases(collection, self.counts, clock, lifecycle.max_attempts)
        self.retention = Retention(collection, self.counts, clock)
        self.services = ServiceStates(collection)
        self.pending = Pending(collection, self.services, clock, lifecycle.stall_s)
        self._reports = WorkerReports(collection, self._changes, self.counts, self.services, clock,
                                      timedelta(seconds=lifecycle.lease_s), dict(retries or {}))

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
        for attempt in range(1, RACE_ATTEMPTS + 1):
            left = REPLACED_INDEXES & {index["name"] for index in self._tasks.list_indexes()}
            try:
                for name in left:
                    self._tasks.drop_index(name)
                return
            except OperationFailure:
                if attempt == RACE_ATTEMPTS:
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
        for _ in range(RACE_ATTEMPTS):
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
        for _ in range(RACE_ATTEMPTS):
            task = self._changes.read(task_id, {"status": 1, "attempt": 1, "outbox": 1, "service": 1})
            if task["status"] not in STARTABLE:
                raise StateConflict(f"task {task_id} is {task['status']}; only a ready or failed "
                                    "task can be started")
            if start_pending(task):
                raise StateConflict(f"task {task_id} is already started")
            now, attempt = self._clock(), task["attempt"] + 1
            update = {"$set": {"status": Status.READY.value, "attempt": attempt, "run_attempts": 1,
                               **queued(now), "lease_until": None, "start_time": None,
                               "end_time": None, "result": None, "progress": None,
                               **NOT_CANCELLED, "update_time": now},
                      "$push": {"history": event(Status.READY, now, attempt, "started")}}
            # The attempt changes with every start and requeue: it pins the state read above.
            if self._changes.changed(task_id, {"status": task["status"], "attempt": task["attempt"],
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
                projection=CHANGED_FIELDS)
        if task is not None:
            return task
        current = self._changes.read(task_id, {"status": 1, "outbox": 1})
        state = "already started" if start_pending(current) else current["status"]
        raise StateConflict(f"task {task_id} is {state}; its condition cannot change until it ends")

    def cancel(self, task_id: str, reason: str | None = None) -> Task:
        """Cancel a task that has not ended. A ready or waiting one ends failed now (a
        message of it already on Kafka is then refused to the worker that takes it); a
        running one is asked to stop: its worker learns it from its next heartbeat and
        reports, or the dispatcher ends it after cancel_grace_s (see `Leases`)."""
        message = f"cancelled: {reason or 'by client'}"
        for _ in range(RACE_ATTEMPTS):
            task = self._changes.read(task_id, {"status": 1, "attempt": 1, "service": 1, "cancel_message": 1})
            status = task["status"]
            if status in FINAL:
                raise StateConflict(f"task {task_id} is {status}; only a task that has not "
                                    "ended can be cancelled")
            now = self._clock()
            if status != Status.RUNNING:
                if (ended := self._changes.end_cancelled(task_id, task, message, now)) is not None:
                    return ended
                continue
            asked = {**task, "task_id": task_id}
            if task.get("cancel_message") is not None:
                return asked  # asked already
            # The lease becomes the grace: heartbeats no longer renew it (see heartbeat).
            update = {"$set": {"cancel_message": message, "lease_until": now + self._cancel_grace,
                               "update_time": now}}
            if self._changes.changed(task_id, {"status": status, "attempt": task["attempt"],
                                       "cancel_message": None}, update):
                return asked
        raise StateConflict(f"task {task_id} is being changed concurrently; try again")

    # -- changes reported by workers (`reports`) ------------------------------------------

    def report(self, task_id: str, status: Status, message: Any = None,
               result: Mapping[str, Any] | None = None, attempt: int | None = None,
               retry: bool = False, worker: str | None = None) -> Task:
        """Apply a worker's status report (`WorkerReports.report`)."""
        return self._reports.report(task_id, status, message, result, attempt, retry, worker)

    def report_each(self, reports: Sequence[Report]) -> list[Task | TaskNotFound | StateConflict]:
        """Apply reports sent together, each as `report` would alone (`WorkerReports.report_each`)."""
        return self._reports.report_each(reports)

    def heartbeat(self, task_id: str, attempt: int | None, progress: float | None = None,
                  message: Any = None) -> Task:
        """Renew a running task's lease (`WorkerReports.heartbeat`)."""
        return self._reports.heartbeat(task_id, attempt, progress, message)


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
