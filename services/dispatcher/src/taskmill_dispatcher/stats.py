"""Task-level gauges from the store, computed on a timer in a thread of their own: one
aggregation and one outbox query per interval, however often Prometheus scrapes. However
long the aggregation takes on a large store, the relay does not wait for it, and the
counting takes at most a fifth of the store's time: after a count that took d seconds,
the next one waits at least 4·d."""

from __future__ import annotations

import logging
import threading
import time

from taskmill.config import Config
from taskmill.errors import DependencyUnavailable
from taskmill.schema import Status, utcnow
from taskmill.store import TaskStore
from taskmill_dispatcher import metrics

log = logging.getLogger(__name__)

PAUSE_PER_COUNT_SECOND = 4.0


def next_count_in_s(interval_s: float, count_took_s: float) -> float:
    """How long to wait before the next count: the interval, or longer after a slow count."""
    return max(interval_s, PAUSE_PER_COUNT_SECOND * count_took_s)


class TaskStats:
    """Every stats_interval_s, count the tasks by service and status, and the outbox."""

    def __init__(self, config: Config, store: TaskStore) -> None:
        self._services = list(config.services)
        self._store = store
        self._interval_s = config.lifecycle.stats_interval_s

    def start(self, stopping: threading.Event) -> threading.Thread:
        """Count in a daemon thread until `stopping` is set; the thread."""
        thread = threading.Thread(target=self._run, args=(stopping,), name="taskmill-stats", daemon=True)
        thread.start()
        return thread

    def _run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            began = time.monotonic()
            try:
                self.run_once()
            except DependencyUnavailable as ex:
                metrics.LOOP_ERRORS.labels("mongodb").inc()
                log.warning("task stats not counted: %s", ex)
            stopping.wait(next_count_in_s(self._interval_s, time.monotonic() - began))

    def run_once(self) -> None:
        counts = self._store.count_by_service_status()
        for service in self._services:  # every configured pair, zeros included
            for status in Status:
                metrics.TASKS.labels(service, status.value).set(counts.get((service, status.value), 0))
        backlog, oldest = self._store.outbox_backlog()
        metrics.BACKLOG.set(backlog)
        metrics.BACKLOG_AGE.set(max((utcnow() - oldest).total_seconds(), 0.0) if oldest else 0.0)
