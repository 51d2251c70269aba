"""How many tasks each service has in each status: kept up to date, reconciled on a timer.

The `tasks` list answers an exact `total`; counting the matching tasks on every call
would cost time in proportion to them (a quarter of a second at a million on the local
engine), so the counts live in a small collection of their own, one document per service
(`{_id: service, ready: n, …, version: v}`), moved by every change of status right after
the task's own update. The two writes are not one transaction (MongoDB offers none on a
standalone server, FerretDB none at all): a process that dies between them leaves a count
off by one, and a failed count update is logged, not raised (the task's change stands).
`TaskCounts.drift` finds such differences by counting the tasks themselves; the dispatcher
corrects a service's count when two checks in a row find the same difference and nothing
of that service moved during either (so a change caught between its two writes is not
mistaken for drift).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, PyMongoError

from taskmill.schema import Status
from taskmill.store.connection import unavailable_as_error

log = logging.getLogger(__name__)

STATUSES = [s.value for s in Status]
Counts = dict[tuple[str, str], int]  # (service, status) -> tasks


class TaskCounts:
    """The counts collection beside the tasks collection (`<tasks>_counts`)."""

    def __init__(self, tasks: Collection[Any]) -> None:
        self._tasks = tasks
        self._counts: Collection[Any] = tasks.database[f"{tasks.name}_counts"]

    def moved(self, service: str, before: str | None, after: str | None, n: int = 1) -> None:
        """Record that n tasks of service went from status `before` to `after` (None: from
        nowhere, created; to nowhere, deleted). Never raises: see the module's docstring."""
        delta: dict[str, int] = {}
        if before is not None:
            delta[before] = -n
        if after is not None:
            delta[after] = delta.get(after, 0) + n
        delta = {k: v for k, v in delta.items() if v}
        if not delta or not n:
            return
        try:
            self._inc(service, delta)
        except PyMongoError as ex:
            log.warning("task counts of %s not updated (%s); the dispatcher will reconcile them",
                        service, type(ex).__name__)

    def total(self, service: str | None = None, status: str | None = None) -> int:
        """How many tasks match the service and status (None: any)."""
        query = {} if service is None else {"_id": service}
        fields = STATUSES if status is None else [status]
        with unavailable_as_error():
            return sum(int(doc.get(f, 0)) for doc in self._counts.find(query) for f in fields)

    def all(self) -> Counts:
        """Every (service, status) count."""
        with unavailable_as_error():
            return _as_counts(self._counts.find())

    def drift(self) -> dict[str, tuple[int, dict[str, int]]]:
        """Count the tasks themselves and compare: {service: (version, actual - kept)} for
        each service whose kept counts differ and did not move during the count."""
        with unavailable_as_error():
            before = {d["_id"]: d for d in self._counts.find()}
            groups = self._tasks.aggregate([
                {"$group": {"_id": {"service": "$service", "status": "$status"}, "n": {"$sum": 1}}}])
            actual = {(g["_id"]["service"], g["_id"]["status"]): g["n"] for g in groups}
            after = {d["_id"]: d for d in self._counts.find()}
        drift = {}
        for service in {s for s, _ in actual} | set(after):
            version = after.get(service, {}).get("version", 0)
            if before.get(service, {}).get("version", 0) != version:
                continue  # moved while the tasks were counted: not comparable
            kept = _as_counts([after[service]]) if service in after else {}
            delta = {st: actual.get((service, st), 0) - kept.get((service, st), 0) for st in STATUSES}
            delta = {st: d for st, d in delta.items() if d}
            if delta:
                drift[service] = (version, delta)
        return drift

    def correct(self, service: str, version: int, delta: Mapping[str, int]) -> bool:
        """Apply a drift found by `drift`, unless the service's counts moved since."""
        with unavailable_as_error():
            done = self._counts.update_one({"_id": service, "version": version},
                                           {"$inc": {**delta, "version": 1}})
            if done.matched_count or version:
                return bool(done.matched_count)
            try:  # the service had no counts at all yet
                self._counts.insert_one({"_id": service, **delta, "version": 1})
                return True
            except DuplicateKeyError:
                return False

    def recount(self) -> None:
        """Set the counts to the tasks' own, for a store nothing else changes meanwhile (one
        that was loaded directly, as the benchmarks do)."""
        for service, (version, delta) in self.drift().items():
            self.correct(service, version, delta)

    def _inc(self, service: str, delta: dict[str, int]) -> None:
        update = {"$inc": {**delta, "version": 1}}
        try:
            self._counts.update_one({"_id": service}, update, upsert=True)
        except DuplicateKeyError:  # two first counts of a service at once: the other inserted
            self._counts.update_one({"_id": service}, update)


def _as_counts(docs: Iterable[Mapping[str, Any]]) -> Counts:
    return {(doc["_id"], status): int(doc.get(status, 0)) for doc in docs for status in STATUSES}
