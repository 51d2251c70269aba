"""Retention: ended tasks are deleted some days after their end, a bounded batch at a time.

A batch is one read of ids, served by the index on (service, status, outbox, end_time)
(outbox is always false for an ended task), and one bulk write that deletes each of them
whose status and end time still qualify (by its _id: see `each_by_id`), so a task
started again meanwhile stays. No TTL index: its timing
is the server's, and the counts must move with each deletion.
"""

from __future__ import annotations

from datetime import timedelta

from pymongo import DeleteOne
from pymongo.collection import Collection

from taskmill.schema import FINAL, Clock, Status
from taskmill.store.connection import each_by_id, one_batch, unavailable_as_error
from taskmill.store.counts import TaskCounts
from taskmill.store.documents import SERVICE_STATUS_INDEX, Task


class Retention:
    """Deletes ended tasks past their age."""

    def __init__(self, tasks: Collection[Task], counts: TaskCounts, clock: Clock) -> None:
        self._tasks = tasks
        self._counts = counts
        self._clock = clock

    def delete_ended(self, service: str, status: Status, older_than: timedelta, limit: int) -> int:
        """Delete up to `limit` tasks of `service` that ended in `status` more than
        `older_than` ago; return how many went."""
        if status not in FINAL:
            raise ValueError(f"only ended tasks are deleted, not {status} ones")
        query = {"service": service, "status": status.value, "outbox": False,
                 "end_time": {"$lt": self._clock() - older_than}}
        with unavailable_as_error():
            ids = [t["_id"] for t in one_batch(self._tasks.find(query, {"_id": 1}).sort("end_time", 1)
                                               .hint(SERVICE_STATUS_INDEX.name), limit)]
            if not ids:
                return 0
            deleted = each_by_id(self._tasks, {i: DeleteOne({**query, "_id": i}) for i in ids})
        self._counts.moved(service, status.value, None, deleted)
        return deleted
