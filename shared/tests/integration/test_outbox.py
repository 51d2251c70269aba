"""The dispatcher's outbox on the real store: claims in priority and start order,
exclusive, confirmed in batches, and still working after the store has cleaned up what left
the outbox; what each service has on Kafka."""

import threading
from datetime import UTC, datetime, timedelta

import pytest

from taskmill.config import RetryConfig, ServiceConfig
from taskmill.schema import Status
from taskmill.store import TaskStore, connect

pytestmark = pytest.mark.integration

AAA = ServiceConfig("aaa", "mongo", "mq_aaa", "c_aaa")
BBB = ServiceConfig("bbb", "mysql", "mq_bbb", "c_bbb")
RETRY = RetryConfig(max_attempts=2, backoff_s=60)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)  # every change a moment after the last
        return self.now


@pytest.fixture
def store(make_config):
    store = TaskStore(connect(make_config().mongo), retries={"aaa": RETRY}, clock=Clock())
    store.ensure_indexes()
    yield store
    store.close()


def test_due_tasks_are_claimed_oldest_start_first_of_the_named_services(store: TaskStore):
    """Started tasks come out in the order they were started, only of the services asked for,
    and a task that is not started never does."""
    started = [store.create(AAA if n % 3 else BBB, {"n": n}, start=True)["task_id"] for n in range(9)]
    store.create(AAA, {}, start=False)
    claimed = store.outbox.claim_due(100, 30, "aaa")
    assert [t["task_id"] for t in claimed] == [t for n, t in enumerate(started) if n % 3]
    assert [t["task_id"] for t in store.outbox.claim_due(2, 30, "bbb")] == started[0:4:3]


def test_concurrent_claims_never_share_a_task(store: TaskStore):
    """Four dispatchers claiming at once: each started task is claimed by exactly one."""
    ids = {store.create(AAA, {}, start=True)["task_id"] for _ in range(60)}
    claims: list[list[str]] = []
    barrier = threading.Barrier(4)

    def claim() -> None:
        barrier.wait()
        claims.append([t["task_id"] for t in store.outbox.claim_due(40, 30, "aaa")])

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [task_id for claim in claims for task_id in claim]
    assert len(everything) == len(set(everything)) and set(everything) <= ids


def test_a_confirmed_batch_waits_and_a_released_one_is_claimed_again(store: TaskStore):
    ids = [store.create(AAA, {}, start=True)["task_id"] for _ in range(6)]
    batch = store.outbox.claim_due(4, 30, "aaa")
    assert store.outbox.mark_published(batch[:2]) == 2
    store.outbox.release(batch[2:])
    assert [store.get(t)["status"] for t in ids] == ["waiting"] * 2 + ["ready"] * 4
    assert [t["task_id"] for t in store.outbox.claim_due(10, 30, "aaa")] == ids[2:]
    assert store.counts.total("aaa", "waiting") == 2 and store.counts.total("aaa", "ready") == 4


def test_the_claim_works_after_the_store_cleaned_up_what_left_the_outbox(store: TaskStore, vacuum):
    """Regression: DocumentDB 0.106's ordered index scan failed ("lock BufferContent is not
    held") on index entries that vacuum had emptied; the local engine carries a fix
    (infra/documentdb/patches/). Here hundreds of tasks go through the outbox and out of it,
    the store cleans up, and the next claim must still read the outbox in order."""
    first = [store.create(AAA, {}, start=True)["task_id"] for _ in range(300)]
    while batch := store.outbox.claim_due(100, 30, "aaa"):
        store.outbox.mark_published(batch)
    later = [store.create(AAA, {}, start=True)["task_id"] for _ in range(3)]
    vacuum()
    assert [t["task_id"] for t in store.outbox.claim_due(10, 30, "aaa")] == later
    assert {store.get(t)["status"] for t in first} == {Status.WAITING}


def test_a_service_publishes_its_highest_priority_first_then_oldest_start(store: TaskStore):
    started = {name: store.create(AAA, {}, start=True, priority=priority)["task_id"]
               for name, priority in (("low", 1), ("first five", 5), ("urgent", 9),
                                      ("second five", 5), ("lowest", 0))}
    claimed = [t["task_id"] for t in store.outbox.claim_due(10, 30, "aaa")]
    assert claimed == [started[name] for name in
                       ("urgent", "first five", "second five", "low", "lowest")]


def test_in_flight_counts_what_is_published_and_not_yet_taken(store: TaskStore):
    aaa = [store.create(AAA, {}, start=True)["task_id"] for _ in range(4)]
    store.create(BBB, {}, start=True)
    store.outbox.mark_published(store.outbox.claim_due(3, 30, "aaa") + store.outbox.claim_due(1, 30, "bbb"))
    store.report(aaa[0], Status.RUNNING, attempt=1)
    assert (store.outbox.in_flight("aaa"), store.outbox.in_flight("bbb")) == (2, 1)
    assert [store.outbox.in_flight("aaa", n) for n in (1, 2, 3)] == [1, 2, 2]
    assert store.outbox.queued() == {"aaa": 1}
    # A failure run again after a backoff waits in the outbox, not on Kafka.
    store.report(aaa[0], Status.FAILED, "flaky", attempt=1, retry=True)
    assert store.get(aaa[0])["status"] == Status.WAITING
    assert store.outbox.in_flight("aaa", 10) == 2
    assert store.outbox.queued() == {"aaa": 2}


def test_anything_due_is_seen_in_one_read_until_the_outbox_is_empty(store: TaskStore):
    """The relay's idle check: nothing due while no task is started or the only one waits
    for its retry's backoff; due once one is started, and no more once it is published."""
    assert not store.outbox.any_due()
    task = store.create(AAA, {}, start=False)["task_id"]
    assert not store.outbox.any_due()
    store.request_start(task)
    assert store.outbox.any_due()
    store.outbox.mark_published(store.outbox.claim_due(10, 30, "aaa"))
    assert not store.outbox.any_due()
    store.report(task, Status.RUNNING, attempt=1)
    store.report(task, Status.FAILED, "flaky", attempt=1, retry=True)  # due again in 60 s
    assert store.get(task)["status"] == Status.WAITING and not store.outbox.any_due()
    store._clock.now += timedelta(seconds=61)
    assert store.outbox.any_due()
