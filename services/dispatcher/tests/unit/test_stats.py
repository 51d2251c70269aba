"""The task counts behind the `taskmill_tasks` gauges: made every stats_interval_s, and
less often when they are slow, so that counting a large store holds the relay up for at
most a fifth of the time. The store is an in-memory stand-in whose count takes as long
as the test says, on a clock the test turns; the gauges with the real store are checked
in tests/e2e/test_metrics.py."""

from taskmill.config import load_config
from taskmill_dispatcher.stats import TaskStats, next_count_in_s
from tests.helpers import ROOT

CONFIG = load_config(ROOT / "config" / "config.yaml", {})
INTERVAL_S = CONFIG.lifecycle.stats_interval_s


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingStore:
    """Counts take `count_s` seconds of the test's clock."""

    def __init__(self, clock: Clock, count_s: float) -> None:
        self.clock = clock
        self.count_s = count_s
        self.counts = 0

    def count_by_service_status(self):
        self.counts += 1
        self.clock.now += self.count_s
        return {}

    def outbox_backlog(self):
        return 0, None


def counts_over(seconds: float, count_s: float) -> int:
    """How many counts the dispatcher's loop makes in `seconds`, calling run_due every 0.1 s."""
    clock = Clock()
    store = CountingStore(clock, count_s)
    stats = TaskStats(CONFIG, store, clock=clock)
    end = clock.now + seconds
    while clock.now < end:
        stats.run_due()
        clock.now += 0.1
    return store.counts


def test_quick_counts_are_made_every_interval():
    assert counts_over(10 * INTERVAL_S, count_s=0.01) == 10


def test_slow_counts_take_at_most_a_fifth_of_the_time():
    count_s = INTERVAL_S  # a store so large that one count takes a whole interval
    counts = counts_over(100 * INTERVAL_S, count_s)
    assert counts * count_s <= 100 * INTERVAL_S / 5 + count_s
    assert counts >= 100 / 5 - 1  # but they are still made


def test_the_pause_grows_with_the_count():
    assert next_count_in_s(15, 0.05) == 15
    assert next_count_in_s(15, 10) == 40
