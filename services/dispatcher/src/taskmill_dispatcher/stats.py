"""Task-level gauges from the store, computed on a timer: one aggregation and one outbox
query per interval, however often Prometheus scrapes."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from taskmill.schema import Status, utcnow
from taskmill.store import TaskStore
from taskmill_dispatcher import metrics


class TaskStats:
    def __init__(self, store: TaskStore, services: Sequence[str], interval_s: float = 15.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._services = list(services)
        self._interval_s = interval_s
        self._clock = clock
        self._next_at = clock()

    def run_due(self) -> None:
        if self._clock() < self._next_at:
            return
        self._next_at = self._clock() + self._interval_s
        counts = self._store.count_by_service_status()
        for service in self._services:  # every configured pair, zeros included
            for status in Status:
                metrics.TASKS.labels(service, status.value).set(counts.get((service, status.value), 0))
        backlog, oldest = self._store.outbox_backlog()
        metrics.BACKLOG.set(backlog)
        metrics.BACKLOG_AGE.set(max((utcnow() - oldest).total_seconds(), 0.0) if oldest else 0.0)
