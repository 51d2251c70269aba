"""The per-service circuit breaker: a service whose runs keep failing gets none of its
tasks published for a while, so a broken algorithm (or its data source) does not burn
through its whole backlog, each task failing in turn.

Closed: tasks are published. When the service's failed runs since its last finished one
reach `breaker.failures`, it opens: its started tasks stay in the outbox (nothing is lost;
tasks already on Kafka still run) for `cooldown_s`. Then it is half open: one task is
let through (the trial). A finished run after that closes it; a failed one opens it again
for twice the last pause (up to `max_cooldown_s`); a trial that ends otherwise (cancelled,
its worker lost) lets another through. Other services are not affected.

Pure: `step` takes the facts (failed runs' times, the last finished run's end, whether the
trial is over) and returns the next state; `room` is what the relay may publish.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from taskmill.config import BreakerConfig
from taskmill.store.service_states import Breaker, BreakerState

CLOSED = Breaker()


def step(breaker: Breaker, config: BreakerConfig, failures: Sequence[datetime],
         last_success: datetime | None, trial_over: bool, now: datetime) -> Breaker:
    """The breaker after looking at the service's runs."""
    in_a_row = [f for f in failures if last_success is None or f > last_success]
    if breaker.state == BreakerState.CLOSED:
        if len(in_a_row) >= config.failures:
            return _opened(len(in_a_row), config.cooldown_s, now)
        return breaker
    if breaker.state == BreakerState.OPEN:
        if breaker.until is not None and now < breaker.until:
            return breaker
        return replace(breaker, state=BreakerState.HALF_OPEN, since=now, trial=None)
    since = breaker.since or now
    if last_success is not None and last_success >= since:
        return CLOSED
    if any(f >= since for f in failures):
        return _opened(len(in_a_row), min(breaker.cooldown_s * 2, config.max_cooldown_s), now)
    if trial_over:
        return replace(breaker, trial=None)
    return breaker


def room(breaker: Breaker, room: int) -> int:
    """How many of a service's tasks the relay may publish, of the room its workers have."""
    if breaker.state == BreakerState.CLOSED:
        return room
    if breaker.state == BreakerState.HALF_OPEN and breaker.trial is None:
        return min(room, 1)
    return 0


def _opened(failures: int, cooldown_s: float, now: datetime) -> Breaker:
    return Breaker(state=BreakerState.OPEN, failures=failures,
                   until=now + timedelta(seconds=cooldown_s), cooldown_s=cooldown_s)
