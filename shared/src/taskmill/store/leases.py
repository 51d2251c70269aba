"""Recovery of lost runs: a task whose lease expired is run again, or failed at last.

A running task's lease lapses when its worker stops renewing it (the worker died or
stalled); a waiting task's when no worker took its message within waiting_timeout_s.
Each is put back to waiting with a new attempt and queued for publication again, until the
run has had max_attempts attempts; then it fails. A running task that was cancelled has
cancel_grace_s as its lease: when that lapses, its worker did not stop it, and it ends
failed, cancelled, without another attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.collection import Collection

from taskmill.schema import BUSY, Clock, Status
from taskmill.store.connection import one_batch, unavailable_as_error
from taskmill.store.counts import TaskCounts
from taskmill.store.documents import LEASE_INDEX, Task, ended_failed, event, lease_ended, queued


@dataclass(frozen=True)
class Recovered:
    """A task whose lease expired, as it is now."""

    task_id: str
    service: str
    status: Status  # waiting (run again) or failed
    attempt: int
    message: str
    cancelled: bool = False


class Leases:
    """Finds expired leases and hands their tasks back to the outbox."""

    def __init__(self, tasks: Collection[Task], counts: TaskCounts, clock: Clock,
                 max_attempts: int) -> None:
        self._tasks = tasks
        self._counts = counts
        self._clock = clock
        self._max_attempts = max_attempts

    def recover_expired(self, limit: int, services: Sequence[str]) -> list[Recovered]:
        """Run again (or fail) up to `limit` tasks whose lease expired, oldest first."""
        now = self._clock()
        query = {"status": {"$in": [s.value for s in BUSY]}, **lease_ended(now),
                 "service": {"$in": list(services)}}
        fields = {"_id": 1, "status": 1, "service": 1, "attempt": 1, "run_attempts": 1,
                  "cancel_message": 1}
        with unavailable_as_error():
            expired = list(one_batch(self._tasks.find(query, fields).sort("lease_until", 1)
                                     .hint(LEASE_INDEX.name), limit))
            recovered = [self._recover(task, now) for task in expired]
        return [r for r in recovered if r is not None]

    def _recover(self, task: Task, now: datetime) -> Recovered | None:
        lost = "worker lost" if task["status"] == Status.RUNNING else "no worker took the task"
        tries = task["run_attempts"]
        cancel = task.get("cancel_message") if task["status"] == Status.RUNNING else None
        if cancel is not None or tries >= self._max_attempts:
            status, attempt = Status.FAILED, task["attempt"]
            message = cancel or f"{lost} after {tries} attempts"
            update = ended_failed(message, now, attempt, cancelled=cancel is not None)
        else:
            status, attempt = Status.WAITING, task["attempt"] + 1
            message = f"attempt {attempt}: {lost} (lease expired)"
            update = run_again(now, attempt, tries + 1, now, [event(status, now, attempt, message)])
        # Only if still expired and untouched: renewed, reported or recovered meanwhile, it stays.
        done = self._tasks.update_one({"_id": task["_id"], "status": task["status"],
                                       "attempt": task["attempt"], "lease_until": {"$lt": now}}, update)
        if not done.modified_count:
            return None
        self._counts.moved(task["service"], task["status"], status.value)
        return Recovered(task["_id"], task["service"], status, attempt, message, cancel is not None)


def run_again(now: datetime, attempt: int, run_attempts: int, due: datetime,
              events: list[dict[str, Any]]) -> dict[str, Any]:
    """The update that makes a task wait for a new attempt, published again at `due`."""
    return {"$set": {"status": Status.WAITING.value, "attempt": attempt, "run_attempts": run_attempts,
                     **queued(due), "lease_until": None, "start_time": None, "progress": None,
                     "update_time": now},
            "$push": {"history": {"$each": events}}}
