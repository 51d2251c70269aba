"""Leases, attempts with fencing, recovery of lost runs and retries, on the real store."""

import threading

import pytest

from taskmill.config import LifecycleConfig, RetryConfig, ServiceConfig
from taskmill.errors import StateConflict
from taskmill.schema import Status
from taskmill.store import Recovered, TaskStore, connect
from tests.helpers import Clock, running_task

pytestmark = pytest.mark.integration

AAA = ServiceConfig("aaa", "mongo", "mq_aaa", "c_aaa")
BBB = ServiceConfig("bbb", "mysql", "mq_bbb", "c_bbb")
LIFECYCLE = LifecycleConfig(lease_s=10, max_attempts=2, waiting_timeout_s=100)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(make_config, clock):
    config = make_config()
    store = TaskStore(connect(config.mongo), LIFECYCLE,
                      {"aaa": RetryConfig(max_attempts=3, backoff_s=5)}, clock=clock)
    store.ensure_indexes()
    yield store
    store.close()


def publish(store: TaskStore, service: str = "aaa") -> list[dict]:
    due = store.outbox.due(100, service)
    assert store.outbox.mark_published(due) == len(due)
    return due


def test_a_lost_worker_s_task_runs_again_and_the_old_attempt_is_fenced(store, clock):
    """Lease expired: waiting again as attempt 2, published again; attempt 1 is refused."""
    task_id = running_task(store, AAA)
    clock.advance(9)
    assert store.leases.recover_expired(10, ["aaa"]) == []
    clock.advance(2)
    [recovered] = store.leases.recover_expired(10, ["aaa"])
    assert (recovered.status, recovered.attempt) == ("waiting", 2)
    assert "worker lost (lease expired)" in recovered.message
    assert store.get(task_id)["history"][-1]["message"] == recovered.message

    [due] = publish(store)
    assert (due["task_id"], due["attempt"]) == (task_id, 2)
    for late in (lambda: store.heartbeat(task_id, attempt=1),
                 lambda: store.report(task_id, Status.FINISHED, result={"old": 1}, attempt=1)):
        with pytest.raises(StateConflict, match="attempt 1 .* is stale"):
            late()
    store.report(task_id, Status.RUNNING, attempt=2)
    assert store.report(task_id, Status.FINISHED, result={"new": 2}, attempt=2)["status"] == "finished"
    done = store.get(task_id)
    assert done["result"] == {"new": 2}
    assert [(e["status"], e["attempt"]) for e in done["history"]] == [
        ("ready", 1), ("waiting", 1), ("running", 1), ("waiting", 2), ("waiting", 2),
        ("running", 2), ("finished", 2)]


def test_heartbeats_keep_a_running_task_s_lease(store, clock):
    """A worker that renews its lease is never presumed dead."""
    task_id = running_task(store, AAA)
    for _ in range(5):
        clock.advance(8)
        store.heartbeat(task_id, attempt=1, progress=0.5)
        assert store.leases.recover_expired(10, ["aaa"]) == []
    assert store.get(task_id)["status"] == "running"


def test_after_max_attempts_the_task_fails_saying_the_worker_was_lost(store, clock):
    """max_attempts lost runs: failed, `worker lost after N attempts`, not published again."""
    task_id = running_task(store, AAA)
    clock.advance(11)
    store.leases.recover_expired(10, ["aaa"])
    publish(store)
    store.report(task_id, Status.RUNNING, attempt=2)
    clock.advance(11)
    [lost] = store.leases.recover_expired(10, ["aaa"])
    failed = store.get(task_id)
    assert lost.status == failed["status"] == "failed" and failed["end_time"] == clock.now
    assert failed["status_message"]["failed"] == lost.message == "worker lost after 2 attempts"
    assert publish(store) == []
    store.request_start(task_id)  # a user may start it again: a fresh run
    restarted = store.get(task_id)
    assert (restarted["attempt"], restarted["run_attempts"]) == (3, 1)


def test_a_message_no_worker_takes_is_published_again(store, clock):
    """Waiting past waiting_timeout_s: requeued as a new attempt."""
    task_id = store.create(AAA, {}, start=True)["task_id"]
    publish(store)
    clock.advance(99)
    assert store.leases.recover_expired(10, ["aaa"]) == []
    clock.advance(2)
    [requeued] = store.leases.recover_expired(10, ["aaa"])
    assert (requeued.task_id, requeued.attempt) == (task_id, 2)
    assert "no worker took the task" in store.get(task_id)["history"][-1]["message"]


def test_only_the_named_services_are_recovered(store, clock):
    """A dispatcher configured for other services leaves these tasks alone."""
    running_task(store, BBB)
    clock.advance(11)
    assert store.leases.recover_expired(10, ["aaa"]) == []
    assert len(store.leases.recover_expired(10, ["bbb"])) == 1


def test_a_transient_failure_is_retried_after_backoff_when_the_service_opts_in(store, clock):
    """aaa retries up to 3 attempts, 5 s then 10 s apart; then the failure stands."""
    task_id = running_task(store, AAA)
    for attempt, backoff in ((1, 5), (2, 10)):
        again = store.report(task_id, Status.FAILED, "flaky", attempt=attempt, retry=True)
        assert (again["status"], again["attempt"]) == ("waiting", attempt + 1)
        clock.advance(backoff - 1)
        assert publish(store) == []
        clock.advance(1)
        assert [t["task_id"] for t in publish(store)] == [task_id]
        store.report(task_id, Status.RUNNING, attempt=attempt + 1)
    assert store.report(task_id, Status.FAILED, "flaky", attempt=3, retry=True)["status"] == "failed"
    final = store.get(task_id)
    assert (final["status"], final["status_message"]["failed"]) == ("failed", "flaky")
    assert [e["status"] for e in final["history"]].count("failed") == 3


def test_a_permanent_failure_or_a_service_without_retries_fails_at_once(store):
    """retry=false (the default), or no policy for the service: failed stays failed."""
    aaa = running_task(store, AAA)
    assert store.report(aaa, Status.FAILED, "bad condition", attempt=1)["status"] == "failed"
    bbb = running_task(store, BBB)
    assert store.report(bbb, Status.FAILED, "flaky", attempt=1, retry=True)["status"] == "failed"


def test_concurrent_recoverers_recover_each_task_once(store, clock):
    """Several dispatchers recovering at once: each expired task gets exactly one new attempt."""
    ids = [running_task(store, AAA) for _ in range(12)]
    clock.advance(11)
    results: list[list[Recovered]] = []
    threads = [threading.Thread(target=lambda: results.append(store.leases.recover_expired(100, ["aaa"])))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    recovered = [t.task_id for batch in results for t in batch]
    assert sorted(recovered) == sorted(ids)
    assert {store.get(t)["attempt"] for t in ids} == {2}
