"""Task-level gauges from the store, computed on a timer between relay rounds: one
aggregation and one outbox query per interval, however often Prometheus scrapes. On a
large store the aggregation takes seconds (on FerretDB, a second for every ~2,000
tasks), so after a count that took d seconds the next one waits at least 4·d: counting
holds the relay up for at most a fifth of the time.

Between rounds rather than in a thread of their own, on purpose: on FerretDB a count and
a claim running at once each take twice as long, past the socket timeout, and the server
goes on with the queries the client gave up on; at a backlog of 10,000 started tasks the
relay then never got a claim through (measured)."""

from __future__ import annotations

import time
from collections.abc import Callable

from taskmill.config import Config
from taskmill.schema import Status, utcnow
from taskmill.store import TaskStore
from taskmill_dispatcher import metrics
from taskmill_dispatcher.interval import Interval

PAUSE_PER_COUNT_SECOND = 4.0


def next_count_in_s(interval_s: float, count_took_s: float) -> float:
    """How long to wait before the next count: the interval, or longer after a slow count."""
    return max(interval_s, PAUSE_PER_COUNT_SECOND * count_took_s)


class TaskStats:
    """Every stats_interval_s (or longer, see above), count the tasks by service and
    status, and the outbox."""

    def __init__(self, config: Config, store: TaskStore,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._services = list(config.services)
        self._store = store
        self._interval = Interval(config.lifecycle.stats_interval_s, clock)
        self._clock = clock

    def run_due(self) -> None:
        if not self._interval.due():
            return
        began = self._clock()
        try:
            self.run_once()
        finally:  # a count that failed on a timeout was slow too
            self._interval.restart(next_count_in_s(self._interval.seconds, self._clock() - began))

    def run_once(self) -> None:
        counts = self._store.count_by_service_status()
        for service in self._services:  # every configured pair, zeros included
            for status in Status:
                metrics.TASKS.labels(service, status.value).set(counts.get((service, status.value), 0))
        backlog, oldest = self._store.outbox_backlog()
        metrics.BACKLOG.set(backlog)
        metrics.BACKLOG_AGE.set(max((utcnow() - oldest).total_seconds(), 0.0) if oldest else 0.0)
