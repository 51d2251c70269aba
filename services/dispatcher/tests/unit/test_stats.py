"""The upkeep of the task counts: checked against the tasks every count_check_s, and less
often when a check is slow, so that checking a large store holds the relay up for at most
a fifth of the time; corrected only when the same drift is seen twice in a row. The store
is an in-memory stand-in whose check takes as long as the test says, on a clock the test
turns; the counts on the real store are checked in shared/tests/integration/test_counts.py
and the gauges in tests/e2e/test_metrics.py."""

from datetime import UTC, datetime
from types import SimpleNamespace

from taskmill.config import load_config
from taskmill.store import RunTimes
from taskmill_dispatcher import metrics
from taskmill_dispatcher.stats import TaskStats, next_count_in_s
from tests.helpers import ROOT

CONFIG = load_config(ROOT / "config" / "config.yaml", {})
INTERVAL_S = CONFIG.lifecycle.count_check_s


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Counts:
    """Checks take `check_s` seconds of the test's clock and find `drifts` in turn."""

    def __init__(self, clock: Clock, check_s: float = 0.01, drifts=()) -> None:
        self.clock = clock
        self.check_s = check_s
        self.drifts = list(drifts)
        self.checks = 0
        self.corrected: list[tuple[str, int, dict]] = []

    def drift(self):
        self.checks += 1
        self.clock.now += self.check_s
        return self.drifts.pop(0) if self.drifts else {}

    def correct(self, service, version, delta):
        self.corrected.append((service, version, delta))
        return True

    def all(self):
        return {}


def stats_with(counts: Counts, queued=None, in_flight=None, run_times=None) -> TaskStats:
    store = SimpleNamespace(counts=counts, outbox=SimpleNamespace(
        queued=lambda: dict(queued or {}), in_flight=lambda service: (in_flight or {}).get(service, 0),
        oldest_start=lambda: None))
    return TaskStats(CONFIG, store, lambda service: (run_times or {}).get(service),
                     clock=counts.clock)


def checks_over(seconds: float, check_s: float) -> int:
    """How many checks the dispatcher's loop makes in `seconds`, calling run_due every 0.1 s."""
    counts = Counts(Clock(), check_s)
    stats = stats_with(counts)
    end = counts.clock.now + seconds
    while counts.clock.now < end:
        stats.run_due()
        counts.clock.now += 0.1
    return counts.checks


def test_quick_checks_are_made_every_interval():
    assert checks_over(10 * INTERVAL_S, check_s=0.01) == 10


def test_slow_checks_take_at_most_a_fifth_of_the_time():
    check_s = INTERVAL_S  # a store so large that one check takes a whole interval
    checks = checks_over(100 * INTERVAL_S, check_s)
    assert checks * check_s <= 100 * INTERVAL_S / 5 + check_s
    assert checks >= 100 / 5 - 1  # but they are still made


def test_the_pause_grows_with_the_check():
    assert next_count_in_s(15, 0.05) == 15
    assert next_count_in_s(15, 10) == 40


def test_a_drift_seen_twice_in_a_row_is_corrected_once():
    """The same drift in two checks is corrected (with the version of the second); a drift
    seen once, or changing between checks, is left alone."""
    counts = Counts(Clock(), drifts=[
        {"aaa": (7, {"running": 1}), "bbb": (3, {"ready": -1})},
        {"aaa": (9, {"running": 1}), "bbb": (3, {"ready": -2})},
        {"bbb": (4, {"ready": -1})},
    ])
    stats = stats_with(counts)
    for _ in range(3):
        stats.check_counts()
    assert counts.corrected == [("aaa", 9, {"running": 1})]


def test_the_backlog_in_work_seconds_is_queued_tasks_times_the_p95_run_time():
    """What a service has queued (in the store and on Kafka) times its recent p95 run time;
    a service with no finished run counts a second a task."""
    runs = RunTimes(median_s=1.0, p95_s=2.5, last_end=datetime(2026, 1, 1, tzinfo=UTC))
    stats = stats_with(Counts(Clock()), queued={"aaa": 3, "bbb": 2}, in_flight={"aaa": 1},
                       run_times={"aaa": runs})
    stats.set_gauges()
    assert metrics.BACKLOG_WORK_SECONDS.labels("aaa")._value.get() == 10.0
    assert metrics.BACKLOG_WORK_SECONDS.labels("bbb")._value.get() == 2.0
