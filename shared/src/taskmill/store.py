"""The MongoDB task store: every read and every state change of a task.

Each state change is one conditional update of one document (compare-and-set on the
document's `version`), so it is atomic on real MongoDB and on FerretDB alike, without
transactions. Connection problems surface as `DependencyUnavailable`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pymongo
from pymongo.collection import Collection
from pymongo.errors import ConnectionFailure, DuplicateKeyError, ExecutionTimeout

from taskmill.config import Config, LifecycleConfig, MongoConfig, RetryConfig, ServiceConfig
from taskmill.errors import DependencyUnavailable, StateConflict, TaskNotFound
from taskmill.schema import (
    BUSY,
    STARTABLE,
    WORKER_TRANSITIONS,
    Status,
    new_task_id,
    utcnow,
)

Task = dict[str, Any]
Clock = Callable[[], datetime]

# Retries of a compare-and-set that lost a race against another writer.
_CAS_ATTEMPTS = 5

OUTBOX_INDEX = "outbox_due"  # (outbox, start_requested_at): the dispatcher reads due tasks in its order
STATUS_FIELDS = {"_id": 0, "task_id": 1, "status": 1, "status_message": 1, "start_time": 1,
                 "end_time": 1, "attempt": 1, "progress": 1}
LIST_FIELDS = {"_id": 0, "task_id": 1, "service": 1, "status": 1, "condition": 1, "create_time": 1}


def connect(config: MongoConfig, appname: str = "taskmill") -> Collection[Task]:
    """Return the tasks collection, with timeouts that keep every call bounded."""
    client: pymongo.MongoClient[Task] = pymongo.MongoClient(
        config.uri,
        appname=appname,
        tz_aware=True,
        serverSelectionTimeoutMS=config.timeout_ms,
        connectTimeoutMS=config.timeout_ms,
        socketTimeoutMS=config.timeout_ms * 2,
        retryWrites=False,
    )
    return client[config.dbname][config.collection]


@contextmanager
def _unavailable_as_error() -> Iterator[None]:
    try:
        yield
    except (ConnectionFailure, ExecutionTimeout) as ex:
        raise DependencyUnavailable(f"MongoDB is unavailable: {type(ex).__name__}") from ex


class TaskStore:
    """Tasks in one MongoDB collection."""

    def __init__(self, collection: Collection[Task], lifecycle: LifecycleConfig | None = None,
                 retries: Mapping[str, RetryConfig] | None = None, clock: Clock = utcnow,
                 id_factory: Callable[[str], str] = new_task_id) -> None:
        self._tasks = collection
        self._lifecycle = lifecycle = lifecycle or LifecycleConfig()
        self._retries = dict(retries or {})
        self._clock = clock
        self._new_id = id_factory
        self._lease = timedelta(seconds=lifecycle.lease_s)
        self._waiting_timeout = timedelta(seconds=lifecycle.waiting_timeout_s)

    @classmethod
    def open(cls, config: Config, appname: str = "taskmill") -> TaskStore:
        """The store of a configured process, connected to its MongoDB."""
        return cls(connect(config.mongo, appname), config.lifecycle, config.retries)

    # -- set-up and health ---------------------------------------------------------------

    def ensure_indexes(self) -> None:
        """Create the indexes the queries need (idempotent)."""
        with _unavailable_as_error():
            self._tasks.create_index("task_id", unique=True, name="task_id_unique")
            # The list's sort (create_time, task_id) newest first, after its filters.
            newest = [("create_time", -1), ("task_id", -1)]
            self._tasks.create_index(newest, name="list_newest")
            self._tasks.create_index([("service", 1), *newest], name="list_service")
            self._tasks.create_index([("status", 1), *newest], name="list_status")
            self._tasks.create_index([("service", 1), ("status", 1), *newest], name="list_service_status")
            self._tasks.create_index([("outbox", 1), ("start_requested_at", 1)], name=OUTBOX_INDEX)
            self._tasks.create_index([("status", 1), ("lease_until", 1)], name="leases")

    def close(self) -> None:
        """Close the connections to MongoDB."""
        self._tasks.database.client.close()

    def ping(self) -> None:
        """Raise DependencyUnavailable unless MongoDB answers."""
        with _unavailable_as_error():
            self._tasks.database.command("ping")

    # -- reads -------------------------------------------------------------------------

    def get(self, task_id: str) -> Task:
        """Return the task, or raise TaskNotFound."""
        with _unavailable_as_error():
            doc = self._tasks.find_one({"task_id": task_id}, {"_id": 0})
        if doc is None:
            raise TaskNotFound(task_id)
        return doc

    def get_many(self, task_ids: Sequence[str]) -> dict[str, Task]:
        """Return the status fields of the tasks that exist, by task_id.

        One lookup per id rather than one `$in` query: FerretDB v1 cannot push `$in` down
        to its storage and decodes every task of the collection to answer it, while an
        equality lookup is served by an index there as on MongoDB (a few ids, a few
        round trips).
        """
        found: dict[str, Task] = {}
        with _unavailable_as_error():
            for task_id in dict.fromkeys(task_ids):
                doc = self._tasks.find_one({"task_id": task_id}, STATUS_FIELDS)
                if doc is not None:
                    found[task_id] = doc
        return found

    def list(self, page: int, p_size: int, service: str | None = None,
             status: str | None = None) -> tuple[int, list[Task]]:
        """Return the number of matching tasks and one page of them, newest first."""
        query: dict[str, str] = {}
        if service is not None:
            query["service"] = service
        if status is not None:
            query["status"] = status
        with _unavailable_as_error():
            total = self._tasks.count_documents(query)
            cursor = (self._tasks.find(query, LIST_FIELDS)
                      .sort([("create_time", -1), ("task_id", -1)])
                      .skip((page - 1) * p_size).limit(p_size))
            return total, list(cursor)

    # -- changes requested by clients -----------------------------------------------------

    def create(self, service: ServiceConfig, condition: Mapping[str, Any], start: bool = False) -> Task:
        """Insert a new task in status ready (its start recorded when start is true)."""
        task = new_task(self._new_id(service.name), service, condition, start, self._clock())
        with _unavailable_as_error():
            try:
                self._tasks.insert_one(task)
            except DuplicateKeyError as ex:  # only with a broken id factory
                raise StateConflict(f"task {task['task_id']} already exists") from ex
        task.pop("_id", None)
        return task

    def request_start(self, task_id: str) -> Task:
        """Record the start of a ready or failed task (the dispatcher publishes it)."""
        def change(task: Task, now: datetime) -> dict[str, Any]:
            status = task["status"]
            if status not in STARTABLE:
                raise StateConflict(f"task {task_id} is {status}; only a ready or failed task "
                                    "can be started")
            if _start_pending(task):
                raise StateConflict(f"task {task_id} is already started")
            attempt = task["attempt"] + 1
            return {
                "$set": {"status": Status.READY.value, "attempt": attempt, "run_attempts": 1,
                         **_queued(now), "lease_until": None, "start_time": None,
                         "end_time": None, "result": None, "progress": None},
                "$push": {"history": _event(Status.READY, now, attempt, "started")},
            }
        return self._compare_and_set(task_id, change)

    def update_condition(self, task_id: str, condition: Mapping[str, Any]) -> Task:
        """Replace the condition of a task that is not waiting or running."""
        def change(task: Task, now: datetime) -> dict[str, Any]:
            if task["status"] in BUSY:
                raise StateConflict(f"task {task_id} is {task['status']}; its condition cannot "
                                    "change until it ends")
            if _start_pending(task):
                raise StateConflict(f"task {task_id} is already started; its condition cannot "
                                    "change until it ends")
            return {"$set": {"condition": dict(condition)}}
        return self._compare_and_set(task_id, change)

    # -- changes reported by workers ------------------------------------------------------

    def report(self, task_id: str, status: Status, message: Any = None,
               result: Mapping[str, Any] | None = None, attempt: int | None = None,
               retry: bool = False) -> Task:
        """Apply a worker's status report, refusing stale attempts and illegal transitions.

        A failure reported with `retry` is run again when the service's retry policy has
        attempts left (after its backoff); otherwise the task ends failed.
        """
        def change(task: Task, now: datetime) -> dict[str, Any]:
            current = task["status"]
            _check_attempt(task, attempt)
            if current not in WORKER_TRANSITIONS[status] and not _published_unconfirmed(task, status):
                raise StateConflict(f"task {task_id} cannot go from {current} to {status}")
            event = _event(status, now, task["attempt"], message)
            if status == Status.FAILED and retry:
                policy = self._retries.get(task["service"])
                if policy is not None and task["run_attempts"] < policy.max_attempts:
                    return self._run_again(task, now, [event], policy.delay_s(task["run_attempts"]),
                                           f"retry after: {message}")
            fields: dict[str, Any] = {"status": status.value, f"status_message.{status.value}": message}
            if status == Status.RUNNING:
                fields.update(start_time=now, lease_until=now + self._lease, **_UNQUEUED)
            else:
                fields.update(end_time=now, lease_until=None)
            if status == Status.FINISHED:
                fields.update(result=dict(result or {}), progress=1.0)
            return {"$set": fields, "$push": {"history": event}}
        return self._compare_and_set(task_id, change)

    def heartbeat(self, task_id: str, attempt: int | None, progress: float | None = None,
                  message: Any = None) -> Task:
        """Renew a running task's lease, with optional progress and message."""
        def change(task: Task, now: datetime) -> dict[str, Any]:
            _check_attempt(task, attempt)
            if task["status"] != Status.RUNNING:
                raise StateConflict(f"task {task_id} is {task['status']}; only a running task "
                                    "has a lease to renew")
            fields: dict[str, Any] = {"lease_until": now + self._lease}
            if progress is not None:
                fields["progress"] = progress
            if message is not None:
                fields["status_message.running"] = message
            return {"$set": fields}
        return self._compare_and_set(task_id, change)

    # -- the dispatcher's outbox ----------------------------------------------------------

    def claim_due(self, limit: int, claim_s: float, services: Sequence[str]) -> list[Task]:
        """Claim up to `limit` tasks of `services` due for publication, oldest first.

        Each task is claimed by one conditional findAndModify of its own (unclaimed or
        claim expired, then claimed until claim_s from now), which also returns it, so
        replicas never claim the same task. (One command each, not one bulk write:
        FerretDB v1 holds a PostgreSQL connection per statement until the whole command
        ends, and a bulk of more than its pool, ~50, never ends. Nor a find of the claimed
        batch afterwards: on FerretDB that decodes the whole outbox, ~45 ms a claim at
        3,000 started tasks.)

        The due tasks are read in the order of the outbox index rather than sorted: on
        MongoDB that is oldest start first all the same; FerretDB cannot sort without
        decoding the whole outbox (seconds at 10,000 started tasks, past the socket
        timeout), but without a sort it stops at `limit` and reads in creation order.
        Every change here names its task by task_id, which both serve from an index.
        """
        now = self._clock()
        # `outbox` first: an equality FerretDB can push down into its SQL.
        query = {"outbox": True, "start_requested_at": {"$lte": now},
                 "service": {"$in": list(services)},
                 "$or": [{"claim_until": None}, {"claim_until": {"$lt": now}}]}
        claim = {"$set": {"claim_until": now + timedelta(seconds=claim_s)}, "$inc": {"version": 1}}
        with _unavailable_as_error():
            due = [t["task_id"] for t in self._tasks.find(query, {"_id": 0, "task_id": 1})
                   .hint(OUTBOX_INDEX).limit(limit)]
            if not due:
                return []
            # No projection: FerretDB v1 does not implement it in findAndModify.
            claimed = [self._tasks.find_one_and_update(
                {**query, "task_id": task_id}, claim, return_document=pymongo.ReturnDocument.AFTER)
                for task_id in due]
        tasks = [{k: v for k, v in doc.items() if k not in ("_id", "history")}
                 for doc in claimed if doc is not None]  # None: another replica was first
        return sorted(tasks, key=lambda task: task["start_requested_at"])

    def mark_published(self, published: Iterable[tuple[str, int]]) -> int:
        """Record that the broker confirmed these (task_id, attempt) messages: the tasks wait
        for a worker. Return how many changed."""
        now = self._clock()
        changed = 0
        with _unavailable_as_error():
            for task_id, attempt in published:
                changed += self._tasks.update_one(
                    {"task_id": task_id, "outbox": True, "attempt": attempt,
                     "status": {"$in": [Status.READY.value, Status.WAITING.value]}},
                    {"$set": {"status": Status.WAITING.value, **_UNQUEUED, "update_time": now,
                              "lease_until": now + self._waiting_timeout},
                     "$inc": {"version": 1},
                     "$push": {"history": _event(Status.WAITING, now, attempt, None)}}).modified_count
        # A task that did not change was reported running first (which took it out of
        # the outbox) or started again meanwhile; either way nothing is left to record.
        return changed

    def release_claims(self, task_ids: Sequence[str]) -> None:
        """Give claimed tasks back to the outbox (their publication failed)."""
        with _unavailable_as_error():
            for task_id in task_ids:
                self._tasks.update_one({"task_id": task_id, "outbox": True},
                                       {"$set": _UNCLAIMED, "$inc": {"version": 1}})

    # -- figures for the metrics ----------------------------------------------------------

    def count_by_service_status(self) -> dict[tuple[str, str], int]:
        """How many tasks each (service, status) has: one aggregation over the collection."""
        with _unavailable_as_error():
            groups = self._tasks.aggregate([
                {"$group": {"_id": {"service": "$service", "status": "$status"}, "n": {"$sum": 1}}}])
            return {(g["_id"]["service"], g["_id"]["status"]): g["n"] for g in groups}

    def outbox_backlog(self) -> tuple[int, datetime | None]:
        """How many started tasks await publication, and when the oldest was started."""
        # Two queries, not one $group with $min: FerretDB v1 does not implement $min there.
        with _unavailable_as_error():
            oldest = list(self._tasks.find({"outbox": True}, {"_id": 0, "start_requested_at": 1})
                          .sort([("start_requested_at", 1)]).limit(1))
            if not oldest:
                return 0, None
            return self._tasks.count_documents({"outbox": True}), oldest[0]["start_requested_at"]

    # -- recovery of lost runs ------------------------------------------------------------

    def recover_expired(self, limit: int, services: Sequence[str]) -> list[Task]:
        """Run again (or fail) up to `limit` tasks whose lease expired; return their new state.

        A running task's lease lapses when its worker stops renewing it (the worker died or
        stalled); a waiting task's when no worker took its message for waiting_timeout_s.
        Each is put back to waiting with a new attempt and published again, until the run
        has had max_attempts attempts; then it fails.
        """
        now = self._clock()
        expired: list[str] = []
        with _unavailable_as_error():
            for status in BUSY:  # one equality per query: FerretDB pushes it down into SQL
                if len(expired) >= limit:
                    break
                query = {"status": status.value, "lease_until": {"$lt": now},
                         "service": {"$in": list(services)}}
                cursor = (self._tasks.find(query, {"_id": 0, "task_id": 1}).sort([("lease_until", 1)])
                          .limit(limit - len(expired)))
                expired += [t["task_id"] for t in cursor]
        recovered = []
        for task_id in expired:
            try:
                recovered.append(self._compare_and_set(task_id, self._recovery))
            except (StateConflict, TaskNotFound):
                continue  # renewed, reported or recovered by someone else meanwhile
        return recovered

    def _recovery(self, task: Task, now: datetime) -> dict[str, Any]:
        lease = task.get("lease_until")
        if task["status"] not in BUSY or lease is None or lease >= now:
            raise StateConflict(f"task {task['task_id']} is no longer expired")
        tries = task["run_attempts"]
        lost = ("worker lost" if task["status"] == Status.RUNNING
                else "no worker took the task")
        if tries >= self._lifecycle.max_attempts:
            message = f"{lost} after {tries} attempts"
            return {"$set": {"status": Status.FAILED.value, "status_message.failed": message,
                             "end_time": now, "lease_until": None},
                    "$push": {"history": _event(Status.FAILED, now, task["attempt"], message)}}
        return self._run_again(task, now, [], 0.0, f"{lost} (lease expired)")

    def _run_again(self, task: Task, now: datetime, events: list[dict[str, Any]], delay_s: float,
                   why: str) -> dict[str, Any]:
        """The update that queues a new attempt of the task for publication after delay_s."""
        attempt, tries = task["attempt"] + 1, task["run_attempts"] + 1
        return {"$set": {"status": Status.WAITING.value, "attempt": attempt, "run_attempts": tries,
                         **_queued(now + timedelta(seconds=delay_s)),
                         "lease_until": None, "start_time": None, "progress": None},
                "$push": {"history": {"$each": [
                    *events, _event(Status.WAITING, now, attempt, f"attempt {attempt}: {why}")]}}}

    # -- internals ---------------------------------------------------------------------

    def _compare_and_set(self, task_id: str,
                         change: Callable[[Task, datetime], dict[str, Any]]) -> Task:
        for _ in range(_CAS_ATTEMPTS):
            task = self.get(task_id)
            now = self._clock()
            update = change(task, now)
            update.setdefault("$set", {})["update_time"] = now
            update["$inc"] = {"version": 1}
            with _unavailable_as_error():
                # No projection: FerretDB v1 does not implement it in findAndModify.
                new = self._tasks.find_one_and_update(
                    {"task_id": task_id, "version": task["version"]}, update,
                    return_document=pymongo.ReturnDocument.AFTER)
            if new is not None:
                new.pop("_id", None)
                return new
        raise StateConflict(f"task {task_id} is being changed concurrently; try again")


# A task in the outbox is due for publication at start_requested_at (a retry's backoff
# puts that in the future); a dispatcher's claim on it lives in claim_until.
# Entering or leaving the outbox sets all three together, and always drops the claim.
_UNCLAIMED: dict[str, Any] = {"claim_until": None}
_UNQUEUED: dict[str, Any] = {"outbox": False, "start_requested_at": None, **_UNCLAIMED}


def _queued(at: datetime) -> dict[str, Any]:
    return {"outbox": True, "start_requested_at": at, **_UNCLAIMED}


def new_task(task_id: str, service: ServiceConfig, condition: Mapping[str, Any], start: bool,
             now: datetime) -> Task:
    """The document of a new task, in status ready (its start recorded when start is true)."""
    attempt = 1 if start else 0
    return {
        "task_id": task_id,
        "status": Status.READY.value,
        "service": service.name,
        "source_name": service.source_name,
        "condition": dict(condition),
        "start_time": None,
        "end_time": None,
        "create_time": now,
        "update_time": now,
        "status_message": {"failed": None, "running": None, "finished": None},
        "result": None,
        "attempt": attempt,
        "run_attempts": attempt,
        **(_queued(now) if start else _UNQUEUED),
        "lease_until": None,
        "progress": None,
        "version": 1,
        "history": [_event(Status.READY, now, attempt, "started" if start else None)],
    }


def _start_pending(task: Task) -> bool:
    """Tell whether the task's start is recorded but its publication is not yet confirmed."""
    return task["status"] == Status.READY and bool(task.get("outbox"))


def _published_unconfirmed(task: Task, status: Status) -> bool:
    # A worker holds the message of a task whose publication the dispatcher has not
    # recorded yet: the message in its hands proves the publication.
    return status == Status.RUNNING and _start_pending(task)


def _check_attempt(task: Task, attempt: int | None) -> None:
    """Refuse an update that names an attempt other than the task's current one."""
    if attempt is not None and attempt != task["attempt"]:
        raise StateConflict(f"attempt {attempt} of task {task['task_id']} is stale; the current "
                            f"attempt is {task['attempt']} ({task['status']})")


def _event(status: Status, when: datetime, attempt: int, message: Any) -> dict[str, Any]:
    return {"status": status.value, "time": when, "attempt": attempt, "message": message}
