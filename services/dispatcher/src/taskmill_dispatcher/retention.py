"""Retention: every interval_s, delete the ended tasks past their age, service by service."""

from __future__ import annotations

import logging
from datetime import timedelta

from taskmill.config import Config
from taskmill.schema import FINAL
from taskmill.store import TaskStore
from taskmill_dispatcher import metrics
from taskmill_dispatcher.interval import Interval

log = logging.getLogger(__name__)


class Retention:
    """Deletes finished and failed tasks `retention.*_days` after their end."""

    def __init__(self, config: Config, store: TaskStore) -> None:
        self._config = config.retention
        self._services = list(config.services)
        self._store = store
        self._interval = Interval(config.retention.interval_s)

    def run_due(self) -> int:
        """Delete one batch per service and end status, if a round is due; return how many."""
        if not self._interval.due():
            return 0
        deleted, full = self.run_once()
        if not full:  # a full batch means more are due: come back at once
            self._interval.restart()
        return deleted

    def run_once(self) -> tuple[int, bool]:
        """One batch per service and end status: (tasks deleted, whether any batch was full)."""
        total, full = 0, False
        for service in self._services:
            for status in sorted(FINAL):
                age = timedelta(days=self._config.days(service, status.value))
                deleted = self._store.retention.delete_ended(service, status, age,
                                                             self._config.batch_size)
                if deleted:
                    metrics.DELETED.labels(service, status.value).inc(deleted)
                    log.info("retention: deleted %d %s tasks of %s ended before %s ago", deleted,
                             status.value, service, age, extra={"service": service})
                total += deleted
                full = full or deleted >= self._config.batch_size
        return total, full
