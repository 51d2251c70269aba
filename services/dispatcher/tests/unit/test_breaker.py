"""The circuit breaker's moves on a clock the test turns: it opens after the configured
failures in a row, half-opens after the cool-down, lets exactly one task through, and
closes on a finished run or opens again, for twice as long, on a failed one."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from taskmill.config import BreakerConfig
from taskmill.store.service_states import BreakerState
from taskmill_dispatcher.breaker import CLOSED, room, step

CONFIG = BreakerConfig(failures=3, cooldown_s=60, max_cooldown_s=150)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_opens_after_failures_in_a_row_only():
    failures = [at(1), at(2), at(3)]
    # A finished run after the first failure: two in a row, not three.
    assert step(CLOSED, CONFIG, failures, at(1.5), False, at(4)) == CLOSED
    opened = step(CLOSED, CONFIG, failures, at(0.5), False, at(4))
    assert (opened.state, opened.failures, opened.until) == (BreakerState.OPEN, 3, at(64))
    assert room(opened, 10) == 0 and room(CLOSED, 10) == 10


def test_open_half_open_then_closed_on_a_finished_run():
    failures = [at(1), at(2), at(3)]
    opened = step(CLOSED, CONFIG, failures, None, False, at(4))
    assert step(opened, CONFIG, failures, None, False, at(63)) == opened  # cooling down
    half = step(opened, CONFIG, failures, None, False, at(64))
    assert (half.state, half.since, half.trial) == (BreakerState.HALF_OPEN, at(64), None)
    assert room(half, 10) == 1
    trying = replace(half, trial="ts_aaa_1")
    assert room(trying, 10) == 0  # one trial at a time
    assert step(trying, CONFIG, failures, None, False, at(70)) == trying  # still running
    assert step(trying, CONFIG, failures, at(80), False, at(81)) == CLOSED


def test_a_failed_trial_opens_it_again_for_longer_up_to_the_maximum():
    failures = [at(1), at(2), at(3)]
    opened = step(CLOSED, CONFIG, failures, None, False, at(4))
    half = step(opened, CONFIG, failures, None, False, at(64))
    again = step(half, CONFIG, [*failures, at(70)], None, False, at(71))
    assert (again.state, again.failures, again.until) == (BreakerState.OPEN, 4, at(71 + 120))
    half = step(again, CONFIG, [*failures, at(70)], None, False, at(191))
    third = step(half, CONFIG, [*failures, at(70), at(200)], None, False, at(201))
    assert third.until == at(201 + 150)  # 240 capped at max_cooldown_s


def test_a_trial_that_ended_without_an_outcome_lets_another_through():
    failures = [at(1), at(2), at(3)]
    half = step(step(CLOSED, CONFIG, failures, None, False, at(4)), CONFIG, failures, None,
                False, at(64))
    trying = replace(half, trial="ts_aaa_1")
    after = step(trying, CONFIG, failures, None, True, at(70))  # cancelled, say
    assert after.state == BreakerState.HALF_OPEN and room(after, 5) == 1
