"""The dispatcher's watch on the real store, on a clock the test turns: failed runs the api
reported open a service's breaker, which pauses only that service and says so to
status_task; after the cool-down one task goes through and its finished run closes the
breaker. Workers and the broker's answers become the states the api explains tasks with.
(Capacity is a stand-in: the consumer groups are Kafka's, tested end to end.)"""

from types import SimpleNamespace

import pytest

from taskmill.config import ServiceConfig
from taskmill.schema import Status
from taskmill.store import TaskStore, connect
from taskmill.store.service_states import BreakerState
from taskmill_dispatcher.watch import ServiceWatch
from tests.helpers import Clock, running_task

pytestmark = pytest.mark.integration

AAA = ServiceConfig("aaa", "mongo", "mq_aaa", "c_aaa")


@pytest.fixture
def system(make_config):
    config = make_config(breaker={"failures": 3, "cooldown_s": 60})
    clock = Clock()
    store = TaskStore(connect(config.mongo), config.lifecycle, clock=clock)
    store.ensure_indexes()
    members = {"aaa": 1, "bbb": 1}
    capacity = SimpleNamespace(members=members.get, run_times=store.run_times)
    watch = ServiceWatch(config, store, capacity, clock=clock)
    yield SimpleNamespace(store=store, clock=clock, watch=watch, members=members)
    store.close()


def why(store, task_id):
    return store.pending.explain(store.get_many([task_id]))[task_id][0]


def fail_runs(store, n):
    for _ in range(n):
        store.report(running_task(store, AAA), Status.FAILED, "boom", attempt=1)


def test_the_breaker_opens_pauses_one_service_half_opens_and_closes(system):
    store, clock, watch = system.store, system.clock, system.watch
    fail_runs(store, 3)
    waiting = store.create(AAA, {}, start=True)["task_id"]
    watch.refresh()
    assert watch.room("aaa", 10) == 0 and watch.room("bbb", 10) == 10
    assert why(store, waiting) == ("service aaa paused after 3 failures in a row; next try at "
                                   "2026-01-01T00:01:00.000Z")

    clock.advance(60)
    watch.refresh()
    assert store.services.get_many(["aaa"])["aaa"].breaker.state == BreakerState.HALF_OPEN
    assert watch.room("aaa", 10) == 1
    [trial] = store.outbox.due(1, "aaa")
    store.outbox.mark_published([trial])
    watch.published("aaa", [trial])
    assert watch.room("aaa", 10) == 0  # one at a time

    store.report(trial["task_id"], Status.RUNNING, attempt=1)
    clock.advance(1)
    store.report(trial["task_id"], Status.FINISHED, result={}, attempt=1)
    watch.refresh()  # the capacity stand-in reads the run times afresh
    assert watch.room("aaa", 10) == 10
    assert store.services.get_many(["aaa"])["aaa"].breaker.state == BreakerState.CLOSED


def test_a_failed_trial_pauses_the_service_again_for_twice_as_long(system):
    store, clock, watch = system.store, system.clock, system.watch
    fail_runs(store, 3)
    watch.refresh()
    clock.advance(60)
    watch.refresh()
    clock.advance(1)
    fail_runs(store, 1)
    watch.refresh()
    breaker = store.services.get_many(["aaa"])["aaa"].breaker
    assert (breaker.state, breaker.failures, breaker.cooldown_s) == (BreakerState.OPEN, 4, 120)


def test_workers_and_the_broker_become_the_reasons_and_go_away_with_their_causes(system):
    store, clock, watch = system.store, system.clock, system.watch
    task_id = store.create(AAA, {}, start=True)["task_id"]
    system.members["aaa"] = 0
    watch.refresh()
    clock.advance(5)
    watch.refresh()  # still none: since the first look that found none
    assert why(store, task_id) == "no live worker for aaa since 2026-01-01T00:00:00.000Z"
    system.members["aaa"] = 2
    watch.not_published("aaa", "Local: Message timed out")
    watch.refresh()
    assert why(store, task_id) == "publication delayed: Kafka unavailable since 2026-01-01T00:00:05.000Z"
    watch.published("aaa", [{"task_id": "another"}])
    watch.refresh()
    assert why(store, task_id) == "queued: no task of aaa ahead"


def test_a_restarted_dispatcher_goes_on_from_what_was_written(system, make_config):
    store, clock = system.store, system.clock
    fail_runs(store, 3)
    system.watch.refresh()
    config = make_config(breaker={"failures": 3, "cooldown_s": 60})
    again = ServiceWatch(config, store, SimpleNamespace(members=system.members.get,
                                                        run_times=store.run_times), clock=clock)
    again.refresh()
    assert again.room("aaa", 5) == 0
