"""Why a ready or waiting task is not running yet: a sentence, and its place in the queue.

From facts the system has: the task itself (started or not, due now or after a retry's
backoff, still in the outbox or published), its service's state as the dispatcher last
wrote it (`service_states`: workers, broker, breaker, the dispatcher's own liveness) and
the tasks ahead of it. Tasks run before a started one in this order: those published and
not yet taken (Kafka's), then the outbox's due tasks in publication order (highest
priority first, then oldest start). A position is counted up to `POSITION_CAP` tasks ahead
(past it, null: "more than …"), so that status_task costs the same with a million tasks
queued as with ten.

Each call reads, besides the tasks: the states of their services (one query), and per
service with a started task, what it has on Kafka and, if one of them is in the outbox,
the outbox's first ids in publication order (indexed, one query each).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta

from pymongo.collection import Collection

from taskmill.schema import Clock, Status, iso
from taskmill.store.connection import one_batch, unavailable_as_error
from taskmill.store.documents import IN_OUTBOX, PRIORITY_INDEX, PUBLISH_ORDER, SERVICE_STATUS_INDEX, Task
from taskmill.store.service_states import BreakerState, ServiceState, ServiceStates

# Reading the first 1,000 instead doubled status_task with reasons (p50 11 -> 25 ms at
# 100,000 tasks, a third of them queued; measured).
POSITION_CAP = 100
PENDING = frozenset({Status.READY.value, Status.WAITING.value})

Explained = tuple[str, int | None]  # (pending_reason, queue_position)


class Pending:
    """Explains tasks that wait: reasons and queue positions."""

    def __init__(self, tasks: Collection[Task], states: ServiceStates,
                 clock: Clock, stale_after_s: float) -> None:
        self._tasks = tasks
        self._states = states
        self._clock = clock
        self._stale_after = timedelta(seconds=stale_after_s)

    def explain(self, tasks: Mapping[str, Task]) -> dict[str, Explained]:
        """The reason and position of each ready or waiting task among these (by task_id);
        the tasks need the status fields and `service`, `outbox`, `start_requested_at`,
        `update_time` (see `documents.STATUS_FIELDS`)."""
        pending = {task_id: t for task_id, t in tasks.items() if t["status"] in PENDING}
        started = [t for t in pending.values() if is_started(t)]
        if not started:
            return {task_id: ("not started", None) for task_id in pending}
        now = self._clock()
        states = self._states.get_many(t["service"] for t in started)
        positions = self._positions(started, now)
        return {task_id: (reason(t, states.get(t["service"]), positions.get(task_id), now,
                                 self._stale_after), positions.get(task_id))
                for task_id, t in pending.items()}

    def _positions(self, started: list[Task], now: datetime) -> dict[str, int | None]:
        by_service: dict[str, list[Task]] = defaultdict(list)
        for task in started:
            by_service[task["service"]].append(task)
        positions: dict[str, int | None] = {}
        for service, tasks in by_service.items():
            queued = [t for t in tasks if t.get("outbox") and t["start_requested_at"] <= now]
            published = [t for t in tasks if not t.get("outbox")]
            if not queued and not published:
                continue  # only retries in their backoff: no place in the queue yet
            with unavailable_as_error():
                # The outbox first, then Kafka's: a task published between the two reads
                # is in both, and counted once (read the other way round, it would be in
                # neither).
                due = [] if not queued else [t["_id"] for t in one_batch(self._tasks.find(
                    {**IN_OUTBOX, "service": service, "start_requested_at": {"$lte": now}},
                    {"_id": 1}).sort(PUBLISH_ORDER).hint(PRIORITY_INDEX.name), POSITION_CAP)]
                # Published and untaken: few (the relay keeps them under its workers'
                # capacity), the first in the order they were published (their update_time).
                on_kafka = [(t["update_time"], t["_id"]) for t in one_batch(self._tasks.find(
                    {"service": service, "status": Status.WAITING.value, "outbox": False},
                    {"_id": 1, "update_time": 1}).sort([("update_time", 1), ("_id", 1)])
                    .hint(SERVICE_STATUS_INDEX.name), POSITION_CAP)]
            for task in published:
                positions[task["task_id"]] = bisect_left(on_kafka, (task["update_time"], task["task_id"]))
            on_kafka_at = {task_id: n for n, (_, task_id) in enumerate(on_kafka)}
            order = {task_id: n for n, task_id in enumerate(due)}
            for task in queued:
                positions[task["task_id"]] = queued_position(task["task_id"], due, order, on_kafka_at)
        return {task_id: None if p is None or p >= POSITION_CAP else p for task_id, p in positions.items()}


def queued_position(task_id: str, due: list[str], order: Mapping[str, int],
                    on_kafka_at: Mapping[str, int]) -> int | None:
    """The place of a task that was in the outbox when it was read, from the queue read
    after: published since (then it is on Kafka, with only the untaken ones before it
    ahead), still in the outbox (every untaken one ahead, and the outbox's before it), or
    gone from both (taken: nothing ahead). None: beyond the outbox's first POSITION_CAP."""
    if task_id in on_kafka_at:
        return on_kafka_at[task_id]
    if task_id in order:
        return len(set(on_kafka_at).union(due[:order[task_id]]))
    return 0 if len(due) < POSITION_CAP else None


def is_started(task: Task) -> bool:
    """Whether a ready or waiting task is started: in the outbox, or published."""
    return bool(task.get("outbox")) or task["status"] == Status.WAITING


def reason(task: Task, state: ServiceState | None, position: int | None, now: datetime,
           stale_after: timedelta) -> str:
    """Why this ready or waiting task is not running yet, the first cause that holds."""
    service = task["service"]
    if not is_started(task):
        return "not started"
    state = state or ServiceState(service)
    in_outbox = bool(task.get("outbox"))
    if in_outbox:
        due = task["start_requested_at"]
        if due > now:
            return f"retry after {iso(due)}"
        if state.seen_at is None or now - state.seen_at > stale_after:
            since = "" if state.seen_at is None else f" since {iso(state.seen_at)}"
            return f"publication delayed: no dispatcher running{since}"
        breaker = state.breaker
        if breaker.paused:
            paused = f"service {service} paused after {breaker.failures} failures in a row"
            if breaker.state == BreakerState.OPEN:
                return f"{paused}; next try at {iso(breaker.until)}"
            return f"{paused}; one task on trial since {iso(breaker.since)}"
        if state.publish_failing_since is not None:
            return f"publication delayed: Kafka unavailable since {iso(state.publish_failing_since)}"
    if state.no_worker_since is not None:
        return f"no live worker for {service} since {iso(state.no_worker_since)}"
    return f"queued: {ahead(position, service)}"


def ahead(position: int | None, service: str) -> str:
    if position is None:
        return f"more than {POSITION_CAP} tasks of {service} ahead"
    if position == 0:
        return f"no task of {service} ahead"
    return f"{position} task{'s' if position != 1 else ''} of {service} ahead"
