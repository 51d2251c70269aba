"""Task-level gauges and the upkeep of the task counts, between relay rounds.

Every stats_interval_s the gauges are set from the counts the store keeps (one small read)
and the outbox (indexed reads: its size and age, and per service what is queued, also as
work-seconds: times the recent 95th percentile run time `capacity` read). Every
count_check_s the counts are checked against the tasks themselves (`TaskCounts.drift`, one
aggregation over the whole collection: seconds on a large store, so after a check that
took d seconds the next waits at least 4·d and checking holds the relay up for at most a
fifth of the time); a service whose counts differ by the same amounts in two checks in a
row is corrected.

Between rounds rather than in a thread of their own: the aggregation and the relay's
claims then share the store's time instead of competing for it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from taskmill.config import Config
from taskmill.schema import Status, utcnow
from taskmill.store import RunTimes, TaskStore
from taskmill_dispatcher import metrics
from taskmill_dispatcher.interval import Interval

log = logging.getLogger(__name__)

PAUSE_PER_COUNT_SECOND = 4.0
# A service's run time before any of its tasks finished, for its backlog in work-seconds.
UNKNOWN_RUN_S = 1.0


def next_count_in_s(interval_s: float, count_took_s: float) -> float:
    """How long to wait before the next check: the interval, or longer after a slow one."""
    return max(interval_s, PAUSE_PER_COUNT_SECOND * count_took_s)


class TaskStats:
    """The `taskmill_tasks` and backlog gauges, and the counts' reconciliation."""

    def __init__(self, config: Config, store: TaskStore,
                 run_times: Callable[[str], RunTimes | None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._services = list(config.services)
        self._store = store
        self._run_times = run_times
        self._gauges = Interval(config.lifecycle.stats_interval_s, clock)
        self._checks = Interval(config.lifecycle.count_check_s, clock)
        self._clock = clock
        self._suspected: dict[str, dict[str, int]] = {}  # service -> drift seen at the last check

    def run_due(self) -> None:
        """Set the gauges and check the counts, each if its time has come."""
        if self._gauges.due():
            self._gauges.restart()
            self.set_gauges()
        if self._checks.due():
            began = self._clock()
            try:
                self.check_counts()
            finally:  # a check that failed on a timeout was slow too
                self._checks.restart(next_count_in_s(self._checks.seconds, self._clock() - began))

    def set_gauges(self) -> None:
        counts = self._store.counts.all()
        for service in self._services:  # every configured pair, zeros included
            for status in Status:
                metrics.TASKS.labels(service, status.value).set(counts.get((service, status.value), 0))
        queued = self._store.outbox.queued()
        for service in self._services:
            waiting = queued.get(service, 0) + self._store.outbox.in_flight(service)
            runs = self._run_times(service)
            metrics.QUEUED.labels(service).set(waiting)
            metrics.BACKLOG_WORK_SECONDS.labels(service).set(
                waiting * (runs.p95_s if runs else UNKNOWN_RUN_S))
        oldest = self._store.outbox.oldest_start()
        metrics.BACKLOG.set(sum(queued.values()))
        metrics.BACKLOG_AGE.set(max((utcnow() - oldest).total_seconds(), 0.0) if oldest else 0.0)

    def check_counts(self) -> None:
        """Correct the counts of a service that drifted by the same amounts twice in a row."""
        drift = self._store.counts.drift()
        suspected = {}
        for service, (version, delta) in drift.items():
            if self._suspected.get(service) != delta:
                suspected[service] = delta
            elif self._store.counts.correct(service, version, delta):
                metrics.COUNT_CORRECTIONS.labels(service).inc()
                log.warning("task counts of %s corrected by %s", service, delta)
        self._suspected = suspected
