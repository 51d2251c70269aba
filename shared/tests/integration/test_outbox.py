"""The dispatcher's outbox on the real store: due tasks in priority and start order,
confirmed in batches (only what is still as published), and still read in order after the
store has cleaned up what left the outbox; the one dispatcher at a time that relays a
service; what each service has on Kafka."""

from datetime import UTC, datetime, timedelta

import pytest

from taskmill.config import RetryConfig, ServiceConfig
from taskmill.schema import Status
from taskmill.store import TaskStore, connect
from taskmill.store.service_states import RelayHold
from tests.helpers import at_once

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


def test_due_tasks_come_oldest_start_first_of_the_named_services(store: TaskStore):
    """Started tasks come out in the order they were started, only of the services asked for,
    and a task that is not started never does."""
    started = [store.create(AAA if n % 3 else BBB, {"n": n}, start=True)["task_id"] for n in range(9)]
    store.create(AAA, {}, start=False)
    due = store.outbox.due(100, "aaa")
    assert [t["task_id"] for t in due] == [t for n, t in enumerate(started) if n % 3]
    assert "history" not in due[0] and due[0]["condition"] == {"n": 1}
    assert [t["task_id"] for t in store.outbox.due(2, "bbb")] == started[0:4:3]


def test_one_dispatcher_at_a_time_relays_a_service(store: TaskStore):
    """Eight dispatchers ask for a free service's relay at once: exactly one gets it, the
    others are told whose it is and until when. It is taken over once it ends unrenewed, at
    once when let go or when its holder is named as gone; a renewal by its holder never
    fails."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    until = now + timedelta(seconds=30)
    holds: dict[str, RelayHold] = {}

    def ask(holder: str) -> None:
        holds[holder] = store.services.hold_relay("aaa", holder, now, until)

    assert at_once([(lambda h=f"d{n}": ask(h), 1) for n in range(8)]) == []
    [winner] = {hold.holder for hold in holds.values()}
    assert set(holds.values()) == {RelayHold(winner, until)}
    loser = "d1" if winner == "d0" else "d0"
    later = now + timedelta(seconds=10)
    assert store.services.hold_relay("aaa", loser, later, later + timedelta(seconds=30)) == \
        RelayHold(winner, until)
    renewed = later + timedelta(seconds=30)
    assert store.services.hold_relay("aaa", winner, later, renewed) == RelayHold(winner, renewed)
    # Not renewed again (its holder died): ended, and taken over.
    after = renewed + timedelta(seconds=1)
    assert store.services.hold_relay("aaa", loser, after, after + timedelta(seconds=30)).holder == loser
    store.services.let_go_relay("aaa", winner)  # not its holder any more: changes nothing
    assert store.services.hold_relay("aaa", winner, after, after).holder == loser
    store.services.let_go_relay("aaa", loser)
    assert store.services.hold_relay("aaa", winner, after, until) == RelayHold(winner, until)
    assert store.services.hold_relay("bbb", loser, now, until) == RelayHold(loser, until)
    # A holder known to be gone is replaced while its hold lasts; naming another is refused.
    assert store.services.hold_relay("bbb", winner, now, until, replacing="d9").holder == loser
    assert store.services.hold_relay("bbb", winner, now, until, replacing=loser) == RelayHold(winner, until)


def test_a_confirmed_batch_waits_and_the_rest_stays_due(store: TaskStore):
    ids = [store.create(AAA, {}, start=True)["task_id"] for _ in range(6)]
    batch = store.outbox.due(4, "aaa")
    assert store.outbox.mark_published(batch[:2]) == 2
    assert [store.get(t)["status"] for t in ids] == ["waiting"] * 2 + ["ready"] * 4
    assert [t["task_id"] for t in store.outbox.due(10, "aaa")] == ids[2:]
    assert store.counts.total("aaa", "waiting") == 2 and store.counts.total("aaa", "ready") == 4


def test_only_tasks_still_as_read_are_confirmed(store: TaskStore):
    """Between the read of a batch and the broker's confirmation, one task is cancelled and
    another cancelled and started again: only the untouched one waits; the restarted one
    stays due at its new attempt, to be published again."""
    ids = [store.create(AAA, {}, start=True)["task_id"] for _ in range(3)]
    batch = store.outbox.due(10, "aaa")
    store.cancel(ids[1])
    store.cancel(ids[2])
    store.request_start(ids[2])
    assert store.outbox.mark_published(batch) == 1
    assert [store.get(t)["status"] for t in ids] == ["waiting", "failed", "ready"]
    [again] = store.outbox.due(10, "aaa")
    assert (again["task_id"], again["attempt"]) == (ids[2], 2)
    assert not store.outbox.refuse(batch[2], "too large")  # its old attempt: nothing to end
    assert store.get(ids[2])["status"] == "ready"
    assert (store.counts.total("aaa", "waiting"), store.counts.total("aaa", "ready"),
            store.counts.total("aaa", "failed")) == (1, 1, 1)


def test_the_outbox_is_read_in_order_after_the_store_cleaned_up_what_left_it(store: TaskStore, vacuum):
    """Regression: DocumentDB 0.106's ordered index scan failed ("lock BufferContent is not
    held") on index entries that vacuum had emptied; the local engine carries a fix
    (infra/documentdb/patches/). Here hundreds of tasks go through the outbox and out of it,
    the store cleans up, and the next read must still come in order."""
    first = [store.create(AAA, {}, start=True)["task_id"] for _ in range(300)]
    while batch := store.outbox.due(100, "aaa"):
        store.outbox.mark_published(batch)
    later = [store.create(AAA, {}, start=True)["task_id"] for _ in range(3)]
    vacuum()
    assert [t["task_id"] for t in store.outbox.due(10, "aaa")] == later
    assert {store.get(t)["status"] for t in first} == {Status.WAITING}


def test_a_service_publishes_its_highest_priority_first_then_oldest_start(store: TaskStore):
    started = {name: store.create(AAA, {}, start=True, priority=priority)["task_id"]
               for name, priority in (("low", 1), ("first five", 5), ("urgent", 9),
                                      ("second five", 5), ("lowest", 0))}
    due = [t["task_id"] for t in store.outbox.due(10, "aaa")]
    assert due == [started[name] for name in
                       ("urgent", "first five", "second five", "low", "lowest")]


def test_in_flight_counts_what_is_published_and_not_yet_taken(store: TaskStore):
    aaa = [store.create(AAA, {}, start=True)["task_id"] for _ in range(4)]
    store.create(BBB, {}, start=True)
    store.outbox.mark_published(store.outbox.due(3, "aaa") + store.outbox.due(1, "bbb"))
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
    store.outbox.mark_published(store.outbox.due(10, "aaa"))
    assert not store.outbox.any_due()
    store.report(task, Status.RUNNING, attempt=1)
    store.report(task, Status.FAILED, "flaky", attempt=1, retry=True)  # due again in 60 s
    assert store.get(task)["status"] == Status.WAITING and not store.outbox.any_due()
    store._clock.now += timedelta(seconds=61)
    assert store.outbox.any_due()
