"""Cancel, idempotent create and retention, on the real store, with a clock the test moves."""

import threading
from datetime import timedelta

import pytest

from taskmill.config import LifecycleConfig, ServiceConfig
from taskmill.errors import StateConflict, TaskNotFound
from taskmill.schema import Status
from taskmill.store import TaskStore, connect
from tests.helpers import Clock, running_task

pytestmark = pytest.mark.integration

AAA = ServiceConfig("aaa", "mongo", "mq_aaa", "c_aaa")
BBB = ServiceConfig("bbb", "mysql", "mq_bbb", "c_bbb")
GRACE_S = 30
LIFECYCLE = LifecycleConfig(lease_s=60, cancel_grace_s=GRACE_S)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(make_config, clock):
    store = TaskStore(connect(make_config().mongo), LIFECYCLE, clock=clock)
    store.ensure_indexes()
    yield store
    store.close()


def waiting_task(store: TaskStore) -> str:
    task_id = store.create(AAA, {}, start=True)["task_id"]
    store.outbox.mark_published(store.outbox.due(10, "aaa"))
    assert store.get(task_id)["status"] == Status.WAITING
    return task_id


def counts(store: TaskStore) -> dict[str, int]:
    return {status.value: store.counts.total("aaa", status.value) for status in Status}


# -- cancel ---------------------------------------------------------------------------------

@pytest.mark.parametrize("state", ["ready", "started", "waiting"])
def test_a_task_not_yet_running_ends_failed_at_once(store, state):
    task_id = {"ready": lambda: store.create(AAA, {})["task_id"],
               "started": lambda: store.create(AAA, {}, start=True)["task_id"],
               "waiting": lambda: waiting_task(store)}[state]()
    assert store.cancel(task_id, "no longer needed")["status"] == Status.FAILED
    task = store.get(task_id)
    assert (task["status"], task["cancelled"]) == ("failed", True)
    assert task["status_message"]["failed"] == "cancelled: no longer needed"
    assert task["end_time"] is not None and task["outbox"] is False
    assert counts(store)["failed"] == 1 and counts(store)[state if state == "waiting" else "ready"] == 0
    # Its message, if on Kafka, reaches a worker that reports running: refused, nothing moves.
    with pytest.raises(StateConflict, match="cancelled"):
        store.report(task_id, Status.RUNNING, attempt=task["attempt"])
    assert store.outbox.due(10, "aaa") == []
    assert store.get(task_id) == task


def test_without_a_reason_the_message_says_by_client(store):
    task_id = store.create(AAA, {})["task_id"]
    store.cancel(task_id)
    assert store.get(task_id)["status_message"]["failed"] == "cancelled: by client"


def test_a_running_task_is_asked_and_its_report_ends_it_cancelled(store, clock):
    task_id = running_task(store, AAA)
    assert store.cancel(task_id, "wrong input")["status"] == Status.RUNNING
    assert store.cancel(task_id, "asked twice")["status"] == Status.RUNNING  # no change
    lease = store.get(task_id)["lease_until"]
    assert lease == clock.now + timedelta(seconds=GRACE_S)
    clock.advance(5)
    beat = store.heartbeat(task_id, attempt=1, progress=0.5)
    assert beat["cancel"] is True and beat["lease_until"] == lease  # told, and not renewed
    assert store.get(task_id)["progress"] is None
    # Whatever the run reports now (here: finished), it ends failed with the reason.
    assert store.report(task_id, Status.FINISHED, result={"x": 1}, attempt=1)["status"] == "failed"
    task = store.get(task_id)
    assert (task["status"], task["cancelled"], task["result"]) == ("failed", True, None)
    assert task["status_message"]["failed"] == "cancelled: wrong input"
    assert counts(store)["failed"] == 1 and counts(store)["running"] == 0
    with pytest.raises(StateConflict, match="cancelled"):
        store.report(task_id, Status.FAILED, "late", attempt=1)


def test_a_run_that_does_not_stop_is_ended_after_the_grace(store, clock):
    task_id = running_task(store, AAA)
    store.cancel(task_id, "too slow")
    clock.advance(GRACE_S - 1)
    assert store.leases.recover_expired(10, ["aaa"]) == []
    clock.advance(2)
    [recovered] = store.leases.recover_expired(10, ["aaa"])
    assert (recovered.status, recovered.cancelled, recovered.attempt) == (Status.FAILED, True, 1)
    task = store.get(task_id)
    assert (task["status"], task["cancelled"], task["attempt"]) == ("failed", True, 1)
    assert task["status_message"]["failed"] == "cancelled: too slow"
    for late in (Status.FINISHED, Status.FAILED):  # the run's reports are fenced off
        with pytest.raises(StateConflict):
            store.report(task_id, late, attempt=1)
    assert store.get(task_id) == task


def test_an_ended_task_cannot_be_cancelled_and_an_unknown_one_is_not_found(store):
    task_id = running_task(store, AAA)
    store.report(task_id, Status.FINISHED, result={}, attempt=1)
    before = store.get(task_id)
    with pytest.raises(StateConflict, match="finished"):
        store.cancel(task_id)
    assert store.get(task_id) == before
    with pytest.raises(TaskNotFound):
        store.cancel("ts_aaa_" + "0" * 32)


def test_a_cancelled_task_can_be_started_again(store):
    task_id = running_task(store, AAA)
    store.cancel(task_id)
    store.report(task_id, Status.FAILED, "stopped", attempt=1)
    store.request_start(task_id)
    task = store.get(task_id)
    assert (task["status"], task["attempt"], task["cancelled"], task["cancel_message"]) == \
        ("ready", 2, False, None)
    store.outbox.mark_published(store.outbox.due(10, "aaa"))
    store.report(task_id, Status.RUNNING, attempt=2)
    assert store.heartbeat(task_id, attempt=2)["cancel"] is False
    assert store.report(task_id, Status.FINISHED, result={"ok": 1}, attempt=2)["status"] == "finished"


# -- idempotent create ----------------------------------------------------------------------

def test_concurrent_creates_with_one_key_make_one_task(store):
    answers: list[tuple[str, bool]] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        barrier.wait()
        task, created = store.create_once(AAA, {"n": 1}, True, "order-42")
        answers.append((task["task_id"], created))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(answers) == 8
    assert len({task_id for task_id, _ in answers}) == 1
    assert sorted(created for _, created in answers) == [False] * 7 + [True]
    assert store.counts.total("aaa") == 1
    assert store.outbox.queued() == {"aaa": 1}  # started once


def test_a_key_is_per_service_and_a_different_request_is_a_conflict(store):
    first, created = store.create_once(AAA, {"n": 1}, False, "k")
    assert created
    other, created = store.create_once(BBB, {"n": 1}, False, "k")
    assert created and other["task_id"] != first["task_id"]
    for condition, start in (({"n": 2}, False), ({"n": 1}, True)):
        with pytest.raises(StateConflict, match="another request"):
            store.create_once(AAA, condition, start, "k")
    # The task's later changes do not make the original request a different one.
    store.update_condition(first["task_id"], {"n": 3})
    again, created = store.create_once(AAA, {"n": 1}, False, "k")
    assert (again["task_id"], created) == (first["task_id"], False)
    assert store.counts.total() == 2


# -- retention ------------------------------------------------------------------------------

def test_retention_deletes_only_ended_tasks_past_their_age(store, clock):
    ended = {}
    for status in (Status.FINISHED, Status.FAILED):
        task_id = running_task(store, AAA)
        store.report(task_id, status, result={} if status == Status.FINISHED else None, attempt=1)
        ended[status] = task_id
    keyed, _ = store.create_once(AAA, {}, False, "kept-key")
    store.cancel(keyed["task_id"])
    alive = [store.create(AAA, {})["task_id"], waiting_task(store), running_task(store, AAA)]
    clock.advance(timedelta(days=10).total_seconds())
    young = running_task(store, AAA)
    store.report(young, Status.FINISHED, result={}, attempt=1)

    def delete(status: Status, days: float) -> int:
        return store.retention.delete_ended("aaa", status, timedelta(days=days), limit=1)

    assert delete(Status.FINISHED, 11) == 0  # not old enough
    assert delete(Status.FINISHED, 9) == 1  # one a batch: the old one, not the young one
    assert delete(Status.FINISHED, 9) == 0
    assert delete(Status.FAILED, 9) == 1 and delete(Status.FAILED, 9) == 1
    assert delete(Status.FAILED, 9) == 0
    with pytest.raises(ValueError):
        store.retention.delete_ended("aaa", Status.RUNNING, timedelta(0), limit=10)
    gone = [ended[Status.FINISHED], ended[Status.FAILED], keyed["task_id"]]
    assert store.get_many(gone) == {}
    assert set(store.get_many([*alive, young])) == {*alive, young}
    assert counts(store) == {"ready": 1, "waiting": 1, "running": 1, "finished": 1, "failed": 0}
    # The deleted task's idempotency key goes with it: the key makes a new task.
    assert store.create_once(AAA, {}, False, "kept-key")[1] is True
