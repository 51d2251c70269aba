"""Why a task waits, read from the real store: queue positions in publication order
(Kafka's untaken tasks first, then the outbox by priority and start), retries in their
backoff, the services' states the dispatcher writes, and the failed runs the store
remembers for the breaker."""

from datetime import timedelta
from functools import partial

import pytest

from taskmill.config import RetryConfig, ServiceConfig
from taskmill.schema import Status
from taskmill.store import TaskStore, connect
from taskmill.store.pending import POSITION_CAP
from taskmill.store.service_states import ServiceState
from tests.helpers import Clock, at_once

pytestmark = pytest.mark.integration

AAA = ServiceConfig("aaa", "mongo", "mq_aaa", "c_aaa")
BBB = ServiceConfig("bbb", "mysql", "mq_bbb", "c_bbb")


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(make_config, clock):
    store = TaskStore(connect(make_config().mongo), retries={"bbb": RetryConfig(3, 30.0)},
                      clock=clock)
    store.ensure_indexes()
    store.services.save([ServiceState("aaa", seen_at=clock(), workers=1),
                         ServiceState("bbb", seen_at=clock(), workers=1)])
    yield store
    store.close()


def explain(store, ids):
    return store.pending.explain(store.get_many(ids))


def test_positions_follow_publication_order(store, clock):
    """Published-untaken tasks run first (in publication order), then the outbox, highest
    priority first, then oldest start; each service counts its own."""
    published = []
    for _ in range(2):
        published.append(store.create(AAA, {}, start=True)["task_id"])
        store.outbox.mark_published(store.outbox.due(1, "aaa"))
        clock.advance(1)
    queued = []
    for priority in (5, 5, 9):
        queued.append(store.create(AAA, {}, start=True, priority=priority)["task_id"])
        clock.advance(1)
    other = store.create(BBB, {}, start=True)["task_id"]
    idle = store.create(AAA, {})["task_id"]
    running = store.create(AAA, {}, start=True)["task_id"]
    store.report(running, Status.RUNNING, attempt=1)

    why = explain(store, [*published, *queued, other, idle, running])
    assert [why[t][1] for t in published] == [0, 1]
    assert [why[t][1] for t in queued] == [3, 4, 2]  # the priority-9 one first
    assert why[queued[0]][0] == "queued: 3 tasks of aaa ahead"
    assert why[other] == ("queued: no task of bbb ahead", 0)
    assert why[idle] == ("not started", None)
    assert running not in why


def test_places_are_counted_up_to_the_cap_then_said_to_be_beyond_it(store, clock):
    """A relay round reads its whole batch, past the first reply of a find (101 documents on the
    local engine); the first POSITION_CAP places are counted in publication order, and a
    task further back, on Kafka or in the outbox, is told it has more ahead."""
    published = [store.create(AAA, {}, start=True)["task_id"] for _ in range(135)]
    assert store.outbox.mark_published(store.outbox.due(200, "aaa")) == 135
    clock.advance(1)
    queued = [store.create(AAA, {}, start=True)["task_id"] for _ in range(10)]

    why = explain(store, published + queued)
    in_order = sorted(published)  # published together: one time, then by id
    assert [why[t][1] for t in in_order] == [*range(POSITION_CAP), *[None] * (135 - POSITION_CAP)]
    assert {why[t] for t in queued} == {("queued: more than 100 tasks of aaa ahead", None)}


def test_positions_fall_as_tasks_ahead_run(store, clock):
    ids = []
    for _ in range(3):
        ids.append(store.create(AAA, {}, start=True)["task_id"])
        clock.advance(1)
    assert explain(store, ids[2:])[ids[2]][1] == 2
    store.outbox.mark_published(store.outbox.due(1, "aaa"))
    store.report(ids[0], Status.RUNNING, attempt=1)
    assert explain(store, ids[2:])[ids[2]][1] == 1


def test_a_retry_in_its_backoff_says_until_when_and_is_remembered_as_a_failed_run(store, clock):
    task_id = store.create(BBB, {}, start=True)["task_id"]
    store.outbox.mark_published(store.outbox.due(1, "bbb"))
    store.report(task_id, Status.RUNNING, attempt=1)
    store.report(task_id, Status.FAILED, "flaky", attempt=1, retry=True)
    assert explain(store, [task_id])[task_id] == ("retry after 2026-01-01T00:00:30.000Z", None)
    clock.advance(31)
    assert explain(store, [task_id])[task_id][1] == 0  # due: queued again
    assert store.services.get_many(["bbb"])["bbb"].failures == (clock() - timedelta(seconds=31),)


def test_the_services_states_decide_the_reason(store, clock):
    task_id = store.create(AAA, {}, start=True)["task_id"]
    store.services.save([ServiceState("aaa", seen_at=clock(), workers=1,
                                      publish_failing_since=clock())])
    assert explain(store, [task_id])[task_id][0] == (
        "publication delayed: Kafka unavailable since 2026-01-01T00:00:00.000Z")
    store.services.save([ServiceState("aaa", seen_at=clock(), workers=0,
                                      no_worker_since=clock())])
    assert explain(store, [task_id])[task_id][0] == (
        "no live worker for aaa since 2026-01-01T00:00:00.000Z")
    clock.advance(600)  # nobody wrote since: no dispatcher
    assert explain(store, [task_id])[task_id][0] == (
        "publication delayed: no dispatcher running since 2026-01-01T00:00:00.000Z")


def test_failed_runs_are_remembered_the_last_hundred(store, clock):
    for _ in range(105):
        store.services.run_failed("aaa", clock())
        clock.advance(1)
    failures = store.services.get_many(["aaa"])["aaa"].failures
    assert len(failures) == 100 and failures[-1] == clock() - timedelta(seconds=1)
    assert failures == tuple(sorted(failures))


def test_a_task_published_or_taken_after_it_was_read_keeps_its_place(store, clock):
    """status_task reads the task, then its service's queue: a task published in between
    is on Kafka behind the untaken ones only, never ahead of itself (CI once saw a
    position go 1, 0, 1, 0); one already taken has nothing ahead."""
    ids = []
    for _ in range(2):
        ids.append(store.create(AAA, {}, start=True)["task_id"])
        clock.advance(1)
    first, second = ids
    read = store.get_many(ids)
    for _ in ids:  # published one after the other
        store.outbox.mark_published(store.outbox.due(1, "aaa"))
        clock.advance(1)
    why = store.pending.explain(read)
    assert (why[first], why[second]) == (("queued: no task of aaa ahead", 0),
                                         ("queued: 1 task of aaa ahead", 1))
    store.report(first, Status.RUNNING, attempt=1)
    assert store.pending.explain(read)[first] == ("queued: no task of aaa ahead", 0)


def test_failed_runs_reported_at_once_by_many_processes_are_all_remembered(make_config, clock):
    """Eight stores (as eight api processes) each record a failed run of a service none has
    written before, at once; ten services in turn: the breaker counts every one."""
    stores = [TaskStore(connect(make_config().mongo), clock=clock) for _ in range(8)]
    try:
        for n in range(10):
            at_once([(partial(s.services.run_failed, f"new{n}", clock()), 1) for s in stores])
            [state] = stores[0].services.get_many([f"new{n}"]).values()
            assert len(state.failures) == len(stores), state.service
    finally:
        for store in stores:
            store.close()
