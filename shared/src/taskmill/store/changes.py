"""A change of one task: a conditional update whose filter states the change's precondition
(a transition of `taskmill.schema`, the attempt it belongs to), atomic on MongoDB and on the
local engine alike without transactions, and the read that says why one was refused. The
clients' changes (`tasks`) and the workers' reports (`reports`) are made of these.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pymongo.collection import Collection

from taskmill.errors import StateConflict, TaskNotFound
from taskmill.schema import Status
from taskmill.store.connection import unavailable_as_error
from taskmill.store.counts import TaskCounts
from taskmill.store.documents import Task, ended_failed

# What a change reads back: enough to answer and to move the counts.
CHANGED_FIELDS = {"_id": 0, "task_id": 1, "service": 1, "status": 1, "attempt": 1, "lease_until": 1}
# Retries of a change that lost a race against another writer.
RACE_ATTEMPTS = 5


class Changes:
    """Conditional changes of single tasks in one collection, and the reads beside them."""

    def __init__(self, tasks: Collection[Task], counts: TaskCounts) -> None:
        self._tasks = tasks
        self._counts = counts

    def read(self, task_id: str, fields: Mapping[str, int]) -> Task:
        """The task's `fields`, or TaskNotFound."""
        with unavailable_as_error():
            task = self._tasks.find_one({"_id": task_id}, dict(fields))
        if task is None:
            raise TaskNotFound(task_id)
        return task

    def apply(self, task_id: str, precondition: Mapping[str, Any], update: Mapping[str, Any]) -> Task | None:
        """Change the task if it meets the precondition; its fields before, or None."""
        with unavailable_as_error():
            return self._tasks.find_one_and_update({"_id": task_id, **precondition}, dict(update),
                                                   projection=CHANGED_FIELDS)

    def changed(self, task_id: str, precondition: Mapping[str, Any], update: Mapping[str, Any]) -> bool:
        """Change the task if it meets the precondition; whether it did."""
        with unavailable_as_error():
            return bool(self._tasks.update_one({"_id": task_id, **precondition}, dict(update))
                        .modified_count)

    def end_cancelled(self, task_id: str, task: Task, message: str, now: datetime) -> Task | None:
        """End a cancelled task failed with the cancellation's message, if it is still as
        read (None: it changed meanwhile)."""
        pinned = {"status": task["status"], "attempt": task["attempt"],
                  "cancel_message": task.get("cancel_message")}
        if not self.changed(task_id, pinned, ended_failed(message, now, task["attempt"], cancelled=True)):
            return None
        self._counts.moved(task["service"], task["status"], Status.FAILED.value)
        return {"task_id": task_id, "service": task["service"], "status": Status.FAILED.value,
                "lease_until": None}


def start_pending(task: Task) -> bool:
    """Tell whether the task's start is recorded but its publication not yet confirmed."""
    return task["status"] == Status.READY and bool(task.get("outbox"))


def check_attempt(task_id: str, task: Task, attempt: int | None) -> None:
    """Refuse a change that names an attempt other than the task's current one."""
    if attempt is not None and attempt != task["attempt"]:
        raise StateConflict(f"attempt {attempt} of task {task_id} is stale; the current attempt "
                            f"is {task['attempt']} ({task['status']})")
