"""Recovery of lost runs: tasks whose lease expired are run again, or failed at last."""

from __future__ import annotations

import logging

from taskmill.config import Config
from taskmill.logs import task_fields
from taskmill.schema import Status
from taskmill.store import TaskStore
from taskmill_dispatcher import metrics
from taskmill_dispatcher.interval import Interval

log = logging.getLogger(__name__)


class Recovery:
    """Every recovery_interval_s, hand the store's expired tasks back to the outbox."""

    def __init__(self, config: Config, store: TaskStore, batch_size: int = 100) -> None:
        self._services = list(config.services)
        self._store = store
        self._batch_size = batch_size
        self._interval = Interval(config.lifecycle.recovery_interval_s)

    def run_due(self) -> int:
        """Recover what expired, if a round is due; return how many tasks changed."""
        if not self._interval.due():
            return 0
        recovered = self.run_once()
        # A full batch means more are waiting: come back at once.
        if recovered < self._batch_size:
            self._interval.restart()
        return recovered

    def run_once(self) -> int:
        recovered = self._store.leases.recover_expired(self._batch_size, self._services)
        for task in recovered:
            if task.cancelled:
                metrics.RECOVERED.labels(task.service, "cancelled").inc()
                log.warning("cancel grace over: the worker did not stop the run; the task ends "
                            "%s", task.message, extra=task_fields(vars(task)))
                continue
            outcome = "failed" if task.status == Status.FAILED else "requeued"
            metrics.RECOVERED.labels(task.service, outcome).inc()
            log.warning("lease expired: %s", task.message, extra=task_fields(vars(task)))
        return len(recovered)
