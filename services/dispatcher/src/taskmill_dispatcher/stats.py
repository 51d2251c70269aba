"""Task-level gauges from the store, computed on a timer: one aggregation and one outbox
query per interval, however often Prometheus scrapes."""

from __future__ import annotations

from taskmill.config import Config
from taskmill.schema import Status, utcnow
from taskmill.store import TaskStore
from taskmill_dispatcher import metrics
from taskmill_dispatcher.interval import Interval


class TaskStats:
    """Every stats_interval_s, count the tasks by service and status, and the outbox."""

    def __init__(self, config: Config, store: TaskStore) -> None:
        self._services = list(config.services)
        self._store = store
        self._interval = Interval(config.lifecycle.stats_interval_s)

    def run_due(self) -> None:
        if not self._interval.due():
            return
        self._interval.restart()
        counts = self._store.count_by_service_status()
        for service in self._services:  # every configured pair, zeros included
            for status in Status:
                metrics.TASKS.labels(service, status.value).set(counts.get((service, status.value), 0))
        backlog, oldest = self._store.outbox_backlog()
        metrics.BACKLOG.set(backlog)
        metrics.BACKLOG_AGE.set(max((utcnow() - oldest).total_seconds(), 0.0) if oldest else 0.0)
