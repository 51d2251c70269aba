"""The kept task counts behind the list's `total`: they move with every change of status,
and a count that drifted (a process died between a task's update and its count's) is found
by counting the tasks themselves and corrected."""

import threading
from collections import Counter
from functools import partial

import pytest

from taskmill.config import LifecycleConfig, ServiceConfig
from taskmill.schema import Status
from taskmill.store import TaskStore, connect
from tests.helpers import at_once
from tests.system import wait_until

pytestmark = pytest.mark.integration

AAA = ServiceConfig("aaa", "mongo", "mq_aaa", "c_aaa")
BBB = ServiceConfig("bbb", "mysql", "mq_bbb", "c_bbb")


@pytest.fixture
def store(make_config):
    store = TaskStore(connect(make_config().mongo), LifecycleConfig(max_attempts=1))
    store.ensure_indexes()
    yield store
    store.close()


def actual(store: TaskStore) -> Counter:
    return Counter((t["service"], t["status"]) for t in store._tasks.find({}, {"service": 1, "status": 1}))


def test_totals_follow_every_change_of_status(store: TaskStore):
    """Through creates, starts, publication, runs, failures and refusals, the list's total
    for every filter equals the number of tasks that match it."""
    ids = [store.create(AAA if n % 2 else BBB, {}, start=n % 3 > 0)["task_id"] for n in range(12)]
    store.request_start(ids[0])
    batch = store.outbox.due(100, "aaa") + store.outbox.due(100, "bbb")
    store.outbox.refuse(batch[0], "too large")
    store.outbox.mark_published(batch[1:5])
    for task in batch[1:4]:
        store.report(task["task_id"], Status.RUNNING, attempt=task["attempt"])
    store.report(batch[1]["task_id"], Status.FINISHED, result={}, attempt=batch[1]["attempt"])
    store.report(batch[2]["task_id"], Status.FAILED, "no", attempt=batch[2]["attempt"])
    counts = actual(store)
    assert sum(counts.values()) == 12 and len({status for _, status in counts}) == 5
    for service in (None, "aaa", "bbb"):
        for status in (None, *[s.value for s in Status]):
            expected = sum(n for (sv, st), n in counts.items()
                           if service in (None, sv) and status in (None, st))
            assert store.list(1, 1, service, status)[0] == expected, (service, status)


def test_concurrent_changes_from_two_stores_all_count(store: TaskStore, make_config):
    """Sixteen threads over two stores (as two api processes) create, start and run tasks at
    once; their moves share writes, and once every call has returned the totals are exact."""
    other = TaskStore(connect(make_config().mongo), LifecycleConfig(max_attempts=1))

    def churn(on: TaskStore, n: int) -> None:
        for i in range(8):
            task = on.create(AAA if (n + i) % 2 else BBB, {}, start=True)
            if i % 2:
                on.report(task["task_id"], Status.RUNNING, attempt=1)
            if i % 4 == 3:
                on.report(task["task_id"], Status.FINISHED, result={}, attempt=1)

    threads = [threading.Thread(target=churn, args=(store if n % 2 else other, n)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    other.close()
    counts = actual(store)
    assert sum(counts.values()) == 128 and counts[("aaa", "finished")] == 16
    assert {key: store.counts.total(*key) for key in counts} == dict(counts)
    assert store.counts.drift() == {}


def move_and_write(store: TaskStore, service: str) -> None:
    store.counts.moved(service, None, Status.READY.value)
    store.counts.flush()


def test_the_first_moves_of_a_service_made_at_once_by_many_processes_all_count(make_config):
    """Eight stores (as eight api processes) each count a task of a service none has
    counted before, at once; twenty services in turn: every count is kept."""
    stores = [TaskStore(connect(make_config().mongo)) for _ in range(8)]
    try:
        for n in range(20):
            service = f"new{n}"
            at_once([(partial(move_and_write, s, service), 1) for s in stores])
            assert stores[0].counts.total(service, Status.READY.value) == len(stores), service
    finally:
        for store in stores:
            store.close()


def test_a_drifted_count_is_found_and_corrected_only_while_it_stands_still(store: TaskStore):
    for _ in range(3):
        store.create(AAA, {})
    store.counts.moved("aaa", "ready", "running")  # as if a task's own update had been lost
    assert store.counts.total("aaa", "running") == 1
    [(service, (version, delta))] = store.counts.drift().items()
    assert (service, delta) == ("aaa", {"ready": 1, "running": -1})
    store.create(AAA, {})  # the counts move: the drift found before no longer applies
    assert not store.counts.correct("aaa", version, delta)
    [(_, (version, delta))] = store.counts.drift().items()
    assert store.counts.correct("aaa", version, delta)
    assert store.counts.drift() == {}
    assert (store.counts.total("aaa", "ready"), store.counts.total("aaa", "running")) == (4, 0)


def test_moves_are_counted_in_batches_that_every_reader_sees(make_config):
    """Creates and reports move the counts in batches: another process sees them once the
    batch is written (within counts_flush_s), the process that made them at once, and
    closing the store writes what is still gathered."""
    reporting = TaskStore(connect(make_config().mongo), LifecycleConfig(counts_flush_s=3600))
    reading = TaskStore(connect(make_config().mongo), LifecycleConfig())
    ids = [reporting.create(AAA, {}, start=True)["task_id"] for _ in range(3)]
    for task_id in ids:
        reporting.report(task_id, Status.RUNNING, attempt=1)
    assert reading.counts.total("aaa") == 0  # gathered, not yet written
    assert reporting.counts.total("aaa", "running") == 3  # its own reads write the batch first
    assert reading.counts.total("aaa", "running") == 3
    reporting.report(ids[0], Status.FINISHED, result={}, attempt=1)
    reporting.report(ids[1], Status.FAILED, "no", attempt=1)
    assert reading.counts.total("aaa", "running") == 3  # gathered, not yet written
    reporting.close()
    assert [reading.counts.total("aaa", s) for s in ("running", "finished", "failed")] == [1, 1, 1]

    prompt = TaskStore(connect(make_config().mongo), LifecycleConfig(counts_flush_s=0.05))
    prompt.report(ids[2], Status.FINISHED, result={}, attempt=1)
    wait_until("the batch written", lambda: reading.counts.total("aaa", "finished") == 2, 10)
    assert reading.counts.total("aaa", "running") == 0 and reading.counts.drift() == {}
    prompt.close()
    reading.close()


def test_a_lists_total_agrees_with_its_page_while_the_counts_catch_up(make_config):
    """While another process's creates are not yet counted, a page that is not full says
    the exact total, a full one at least the tasks up to it."""
    creating = TaskStore(connect(make_config().mongo), LifecycleConfig(counts_flush_s=3600))
    reading = TaskStore(connect(make_config().mongo), LifecycleConfig())
    reading.ensure_indexes()
    for n in range(5):
        creating.create(AAA, {"n": n})
    assert reading.counts.total("aaa") == 0  # gathered in the creating process
    assert [len(page) for _, page in (reading.list(1, 10, "aaa"), reading.list(3, 2, "aaa"))] == [5, 1]
    assert reading.list(1, 10, "aaa")[0] == 5 and reading.list(3, 2, "aaa")[0] == 5
    assert reading.list(1, 2, "aaa")[0] == 2 and reading.list(2, 2, "aaa")[0] == 4
    assert reading.list(1, 10, "aaa", "running")[0] == 0
    creating.close()
    assert reading.list(1, 2, "aaa")[0] == 5  # the counts caught up
    reading.close()
