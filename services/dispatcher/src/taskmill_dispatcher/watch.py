"""What the dispatcher sees of each service, written where the api reads it, and the
services' circuit breakers (`breaker`).

Every few seconds (as often as `capacity` looks at Kafka), between relay rounds: the
service's workers (its consumer group's members, from `capacity`) and since when it has
had none, whether the broker confirmed its last messages (from the relay) and since when
it has not, and its breaker, moved on from the failed runs the store remembers and the
last finished run; all services in one write (`ServiceStates.save`), whose time
(`seen_at`) also tells the api that a dispatcher runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from taskmill.config import Config
from taskmill.schema import FINAL, Clock, iso, utcnow
from taskmill.store import Task, TaskStore
from taskmill.store.service_states import Breaker, BreakerState, ServiceState
from taskmill_dispatcher import breaker, metrics
from taskmill_dispatcher.capacity import REFRESH_S, Capacity
from taskmill_dispatcher.interval import Interval

log = logging.getLogger(__name__)

BREAKER_GAUGE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class ServiceWatch:
    """Each service's state as this dispatcher sees it."""

    def __init__(self, config: Config, store: TaskStore, capacity: Capacity,
                 clock: Clock = utcnow,
                 monotonic: Callable[[], float] = time.monotonic, refresh_s: float = REFRESH_S) -> None:
        self._config = config
        self._store = store
        self._capacity = capacity
        self._clock = clock
        self._interval = Interval(refresh_s, monotonic)
        self._states: dict[str, ServiceState] = {}  # read from the store at the first refresh

    def run_due(self) -> None:
        """Refresh and write the services' states, if it is time."""
        if self._interval.due():
            self._interval.restart()
            self.refresh()

    def refresh(self) -> None:
        now = self._clock()
        stored = self._store.services.get_many(self._config.services)
        if not self._states:  # a restarted dispatcher goes on from what was written
            self._states = dict(stored)
        for service in self._config.services:
            state = self._states[service]
            workers = self._capacity.members(service)
            if workers is None:
                since = state.no_worker_since
            else:
                since = None if workers else state.no_worker_since or now
            runs = self._capacity.run_times(service)
            moved = breaker.step(state.breaker, self._config.breaker, stored[service].failures,
                                 runs.last_end if runs else None, self._trial_over(state.breaker),
                                 now)
            self._breaker_moved(service, state.breaker, moved)
            self._states[service] = replace(state, seen_at=now, workers=workers,
                                            no_worker_since=since, breaker=moved)
        self._store.services.save(self._states.values())

    def room(self, service: str, room: int) -> int:
        """What the relay may publish of the service, of its workers' room (its breaker)."""
        state = self._states.get(service)
        return room if state is None else breaker.room(state.breaker, room)

    def published(self, service: str, tasks: Sequence[Task]) -> None:
        """The broker confirmed these tasks' messages (the first is a half-open breaker's trial)."""
        state = self._states.get(service)
        if state is None or not tasks:
            return
        trial = state.breaker
        if trial.state == BreakerState.HALF_OPEN and trial.trial is None:
            trial = replace(trial, trial=tasks[0]["task_id"])
        self._states[service] = replace(state, publish_failing_since=None, publish_error=None,
                                        breaker=trial)

    def not_published(self, service: str, error: str) -> None:
        """The broker did not confirm a message of the service (it is published again later)."""
        state = self._states.get(service)
        if state is not None:
            self._states[service] = replace(
                state, publish_failing_since=state.publish_failing_since or self._clock(),
                publish_error=error)

    def _trial_over(self, state: Breaker) -> bool:
        """Whether a half-open breaker's trial ended without a run's outcome (cancelled,
        its worker lost, deleted) or went back to the outbox: another may go."""
        if state.state != BreakerState.HALF_OPEN or state.trial is None:
            return False
        task = self._store.get_many([state.trial]).get(state.trial)
        return task is None or task["status"] in FINAL or bool(task.get("outbox"))

    def _breaker_moved(self, service: str, before: Breaker, after: Breaker) -> None:
        metrics.BREAKER_STATE.labels(service).set(BREAKER_GAUGE[after.state])
        if after.state == before.state:
            return
        if after.state == BreakerState.OPEN:
            metrics.BREAKER_OPENED.labels(service).inc()
            log.warning("service %s paused after %d failed runs in a row: none of its tasks is "
                        "published until %s", service, after.failures, iso(after.until))
        elif after.state == BreakerState.HALF_OPEN:
            log.info("service %s: one task let through to try it", service)
        else:
            log.info("service %s resumed: a run finished", service)
