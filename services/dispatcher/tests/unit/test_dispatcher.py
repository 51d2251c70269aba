"""The dispatcher's loop: relaying does not wait for the task counts, and slow counts are
made less often.

On a large store the aggregation behind the `taskmill_tasks` gauges takes seconds (on
FerretDB, a second for every ~2,000 tasks); a start must not wait for it. The store here
is an in-memory stand-in whose count blocks until the test lets it go; the relay and the
gauges with the real store are in tests/e2e.
"""

import threading
from types import SimpleNamespace

from taskmill.config import load_config
from taskmill.health import Liveness
from taskmill_dispatcher.__main__ import Dispatcher
from taskmill_dispatcher.stats import next_count_in_s
from tests.helpers import ROOT
from tests.system import wait_until

CONFIG = load_config(ROOT / "config" / "config.yaml", {})


class SlowCountStore:
    """No task is ever due; counting the tasks blocks until `release` is set."""

    def __init__(self) -> None:
        self.claims = 0
        self.counting = threading.Event()
        self.release = threading.Event()

    def ensure_indexes(self) -> None:
        pass

    def claim_due(self, limit, claim_s, services):
        self.claims += 1
        return []

    def mark_published(self, published):
        return 0

    def recover_expired(self, limit, services):
        return []

    def count_by_service_status(self):
        self.counting.set()
        self.release.wait(30)
        return {}

    def outbox_backlog(self):
        return 0, None


class QuietProducer:
    def flush(self, timeout):
        return 0

    def poll(self, timeout):
        return 0


class AdminWithTopics:
    """An admin client for which every configured topic exists already."""

    def list_topics(self, timeout):
        return SimpleNamespace(topics={s.topic_name: None for s in CONFIG.services.values()})


def test_the_relay_goes_on_while_the_tasks_are_counted():
    store = SlowCountStore()
    dispatcher = Dispatcher(CONFIG, store, QuietProducer(), AdminWithTopics(), Liveness(60))
    loop = threading.Thread(target=dispatcher.run)
    loop.start()
    try:
        assert store.counting.wait(10), "the dispatcher never counted the tasks"
        claims_when_counting = store.claims
        wait_until("the relay claims again while the count is in progress",
                   lambda: store.claims >= claims_when_counting + 3, 10)
        assert dispatcher.liveness.alive()
    finally:
        store.release.set()
        dispatcher.stopping.set()
        loop.join(10)
    assert not loop.is_alive(), "the dispatcher did not stop"


def test_a_slow_count_is_made_less_often():
    """Counts that take long (a large store) are spaced so they take a fifth of the time."""
    assert next_count_in_s(15, 0.05) == 15
    assert next_count_in_s(15, 10) == 40
