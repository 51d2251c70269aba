"""How much each service's workers can take soon: the members of its consumer group, as
Kafka reports them, times the tasks one worker gets through in `lifecycle.lookahead_s`
(from the service's recent run times), looked up every few seconds between relay rounds.

A share group's members cannot be asked of Kafka from here (librdkafka has no
DescribeShareGroups), so a share-group service counts as many workers as it has running
tasks, plus one: a lower bound that grows as idle workers take what is published (each
relay round reads it, from the kept task counts). `members` then answers None (unknown).

The relay hands a service no more published tasks than that, so the rest of a backlog
stays in the store where priorities order it: a task started behind a backlog waits for
about lookahead_s of work per worker (at least one task each), not for the whole backlog,
and workers of short tasks still always have the next ones at hand.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable

from taskmill.config import Config
from taskmill.schema import Status
from taskmill.store import RunTimes, TaskStore
from taskmill_dispatcher import metrics
from taskmill_dispatcher.interval import Interval

log = logging.getLogger(__name__)

REFRESH_S = 2.0


class Capacity:
    """Per service: its workers (consumer group members) and the published, untaken tasks
    it may have."""

    def __init__(self, config: Config, members: Callable[[list[str]], dict[str, int]], store: TaskStore,
                 clock: Callable[[], float] = time.monotonic, refresh_s: float = REFRESH_S) -> None:
        self._lifecycle = config.lifecycle
        self._services = list(config.services)
        self._groups: dict[str, list[str]] = defaultdict(list)  # consumer group -> its services
        self._shared = [s.name for s in config.services.values() if s.shared]
        for service in config.services.values():
            if not service.shared:
                self._groups[service.consumer_id].append(service.name)
        self._describe = members
        self._store = store
        self._interval = Interval(refresh_s, clock)
        self._members: dict[str, int] = {}  # by service; absent: not known yet
        self._runs: dict[str, RunTimes] = {}  # by service; absent: none finished yet

    def __call__(self) -> dict[str, int]:
        """How many published, untaken tasks each service may have (refreshed when due)."""
        if self._interval.due():
            self._interval.restart()
            self._refresh_members()
            self._refresh_run_times()
        workers = dict(self._members)
        if self._shared:
            counts = self._store.counts.all()
            for service in self._shared:
                workers[service] = max(counts.get((service, Status.RUNNING.value), 0), 0) + 1
        return {service: max(workers.get(service, 1), 1) * self.per_worker(service)
                for service in self._services}

    def members(self, service: str) -> int | None:
        """The service's workers as Kafka last reported them (None: not known yet, or a
        share group's)."""
        return self._members.get(service)

    def run_times(self, service: str) -> RunTimes | None:
        """The service's recent run times as last read (None: none finished yet)."""
        return self._runs.get(service)

    def per_worker(self, service: str) -> int:
        """About lookahead_s of the service's recent run time, within the configured bounds."""
        low, high = self._lifecycle.min_waiting_per_worker, self._lifecycle.max_waiting_per_worker
        runs = self._runs.get(service)
        if runs is None:
            return low
        return min(max(math.ceil(self._lifecycle.lookahead_s / max(runs.median_s, 1e-3)), low), high)

    def _refresh_run_times(self) -> None:
        for service in self._services:
            runs = self._store.run_times(service)
            if runs is not None:
                self._runs[service] = runs
                metrics.RUN_SECONDS.labels(service).set(runs.median_s)

    def _refresh_members(self) -> None:
        if not self._groups:
            return
        try:
            counts = self._describe(list(self._groups))
        except Exception as ex:  # Kafka down, or its helper gone: keep what is known
            log.debug("consumer groups not described: %s", ex)
            return
        for group, count in counts.items():
            for service in self._groups[group]:
                self._members[service] = count
                metrics.WORKERS.labels(service).set(count)
