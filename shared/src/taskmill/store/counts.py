"""How many tasks each service has in each status: kept up to date, reconciled on a timer.

The `tasks` list answers an exact `total`; counting the matching tasks on every call
would cost time in proportion to them (a quarter of a second at a million on the local
engine), so the counts live in a small collection of their own, one document per service
(`{_id: service, ready: n, …, version: v}`), moved by every change of status: recorded
right after the task's own update, written in batches (below). The two writes are not one
transaction (MongoDB offers none on a standalone server, FerretDB none at all): a process
that dies between them leaves a count off, and a failed count update is logged, not
raised (the task's change stands).
`TaskCounts.drift` finds such differences by counting the tasks themselves; the dispatcher
corrects a service's count when two checks in a row find the same difference and nothing
of that service moved during either (so a change caught between its two writes is not
mistaken for drift).

Every move is gathered in the process and written in a bulk write with the others gathered
meanwhile, one update per service they touch, by a background thread within `flush_s` of
the first (a task's three status changes and a batch of them cost one command for all,
where a write per move cost a command each and queued on the service's one counts
document). This process's own reads of the counts write what it gathered first, so a
client sees its own changes counted by the api process that made them; another process
sees them up to `flush_s` late (`tasks` bounds its `total` by the page it read, see
`TaskStore.list`). `close` writes what is left; a process killed before its next flush
loses at most flush_s of moves, which the dispatcher's reconciliation then restores like
any other drift. With flush_s 0 (or once closed) each move is written before `moved`
returns: the first of the threads waiting writes for all of them (a group commit).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from pymongo import UpdateOne
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, PyMongoError

from taskmill.schema import Status
from taskmill.store.connection import Created, each_by_id, unavailable_as_error

log = logging.getLogger(__name__)

STATUSES = [s.value for s in Status]
Counts = dict[tuple[str, str], int]  # (service, status) -> tasks


class TaskCounts:
    """The counts collection beside the tasks collection (`<tasks>_counts`)."""

    def __init__(self, tasks: Collection[Any], flush_s: float = 0.0) -> None:
        """flush_s: how long a move may wait to be written (0: written at once)."""
        self._tasks = tasks
        self._counts: Collection[Any] = tasks.database[f"{tasks.name}_counts"]
        self._flush_s = flush_s
        self._gathered: dict[str, Counter[str]] = {}
        self._batch = 0  # the number of the batch being gathered
        self._lock = threading.Condition()  # guards _gathered, _batch, _flusher, _closed
        self._writing = threading.Lock()  # held from taking a batch to writing it
        self._written = -1  # the last batch written (or lost to an error); under _writing
        self._flusher: threading.Thread | None = None
        self._closed = False
        self._created = Created(self._counts, {"version": 0})  # moved by updates only

    def moved(self, service: str, before: str | None, after: str | None, n: int = 1) -> None:
        """Record that n tasks of service went from status `before` to `after` (None: from
        nowhere, created; to nowhere, deleted), to be written with the next flush. Never
        raises: see the module's docstring."""
        delta: Counter[str] = Counter()
        if before is not None:
            delta[before] -= n
        if after is not None:
            delta[after] += n
        moves = {status: d for status, d in delta.items() if d}
        if moves:
            batch = self._gather(service, moves)
            if batch is not None:
                self._write_through(batch)

    def flush(self) -> None:
        """Write the gathered moves now; when it returns, every move recorded before the
        call is written (or logged as lost to an error)."""
        with self._lock:
            batch = self._batch
        self._write_through(batch)

    def close(self) -> None:
        """Stop deferring: write what is gathered; later moves are written at once."""
        with self._lock:
            self._closed = True
            self._lock.notify()
            flusher = self._flusher
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join(timeout=max(1.0, 4 * self._flush_s))
        self.flush()

    def total(self, service: str | None = None, status: str | None = None) -> int:
        """How many tasks match the service and status (None: any)."""
        self.flush()
        query = {} if service is None else {"_id": service}
        fields = STATUSES if status is None else [status]
        with unavailable_as_error():
            return sum(int(doc.get(f, 0)) for doc in self._counts.find(query) for f in fields)

    def all(self) -> Counts:
        """Every (service, status) count."""
        self.flush()
        with unavailable_as_error():
            return _as_counts(self._counts.find())

    def drift(self) -> dict[str, tuple[int, dict[str, int]]]:
        """Count the tasks themselves and compare: {service: (version, actual - kept)} for
        each service whose kept counts differ and did not move during the count."""
        self.flush()
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
        """Apply a drift found by `drift`, unless the service's counts moved since (this
        process's gathered moves are written first: they count as moving)."""
        self.flush()
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

    def _gather(self, service: str, moves: Mapping[str, int]) -> int | None:
        """Add the moves to the batch being gathered: the batch's number, to be written
        now (flush_s 0, or once closed), or None when left to the flusher (started with
        the first move)."""
        with self._lock:
            deferred = self._flush_s > 0 and not self._closed
            if deferred and not self._gathered:
                # The flusher waits for a first move; woken for every move it would wake
                # (a thread switch) three times a task to wait again.
                self._lock.notify()
            self._gathered.setdefault(service, Counter()).update(moves)
            if deferred and self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_every, name="task-counts",
                                                 daemon=True)
                self._flusher.start()
            return None if deferred else self._batch

    def _write_through(self, batch: int) -> None:
        """Return once the batch numbered `batch` is written. The writers queue for one
        pen; the first through writes every move gathered so far, those of the threads
        queued behind it too, which then find theirs written."""
        with self._writing:
            if self._written >= batch:
                return
            with self._lock:
                gathered, self._gathered = self._gathered, {}
                taken, self._batch = self._batch, self._batch + 1
            self._write(gathered)
            self._written = taken

    def _flush_every(self) -> None:
        """The flusher thread: once moves are gathered, wait flush_s for more, write them."""
        while True:
            with self._lock:
                while not self._gathered and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return  # close() writes what is left
                self._lock.wait_for(lambda: self._closed, self._flush_s)
            self.flush()

    def _write(self, moves: Mapping[str, Mapping[str, int]]) -> None:
        """One bulk write of every service's moves; logged, never raised."""
        updates = {service: UpdateOne({"_id": service}, {"$inc": {**delta, "version": 1}})
                   for service, delta in moves.items() if any(delta.values())}
        if not updates:
            return
        try:
            self._created.ensure(updates)
            each_by_id(self._counts, updates)  # in _id order, as every process writes them
        except PyMongoError as ex:
            log.warning("task counts of %s not updated (%s); the dispatcher will reconcile them",
                        ", ".join(sorted(moves)), type(ex).__name__)

def _as_counts(docs: Iterable[Mapping[str, Any]]) -> Counts:
    return {(doc["_id"], status): int(doc.get(status, 0)) for doc in docs for status in STATUSES}
