import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pymongo
import pytest
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from taskmill.config import ServiceConfig
from taskmill.errors import DependencyUnavailable, StateConflict, TaskNotFound
from taskmill.schema import Status
from taskmill.store import TaskStore, connect
from taskmill.store.connection import each_by_id
from tests.helpers import Clock, at_once, task_in

pytestmark = pytest.mark.integration

AAA = ServiceConfig("aaa", "mongo", "mq_aaa", "c_aaa")


@pytest.fixture
def store(make_config):
    config = make_config()
    store = TaskStore.open(config)
    store.ensure_indexes()
    yield store
    store.close()


def test_documents_round_trip_through_the_server(store: TaskStore):
    """A created task reads back with the original's fields and times in UTC."""
    task = store.create(AAA, {"x": "x", "nested": {"list": [1, "二"]}})
    back = store.get(task["task_id"])
    assert back["condition"] == {"x": "x", "nested": {"list": [1, "二"]}}
    assert back["status"] == "ready"
    assert back["status_message"] == {"failed": None, "running": None, "finished": None}
    assert back["create_time"] == task["create_time"]
    assert back["create_time"].tzinfo is not None
    assert back["start_time"] is None and back["end_time"] is None


def test_task_id_is_unique(store: TaskStore, make_config):
    """The task_id is the document's _id: a second document with the same id is refused."""
    task = store.create(AAA, {})
    collection = connect(make_config().mongo)
    try:
        with pytest.raises(pymongo.errors.DuplicateKeyError):
            collection.insert_one({"_id": task["task_id"], "task_id": task["task_id"], "status": "ready"})
        assert collection.count_documents({"task_id": task["task_id"]}) == 1
    finally:
        collection.database.client.close()


def test_unknown_task_is_not_found(store: TaskStore):
    """Reads and changes of an unknown task raise TaskNotFound."""
    with pytest.raises(TaskNotFound):
        store.get("ts_aaa_" + "0" * 32)
    with pytest.raises(TaskNotFound):
        store.request_start("ts_aaa_" + "0" * 32)


def start_at_once(store: TaskStore, task_id: str, callers: int) -> list[str]:
    """Call request_start from `callers` threads released together; return the outcomes."""
    outcomes: list[str] = []
    barrier = threading.Barrier(callers)

    def start() -> None:
        barrier.wait()
        try:
            store.request_start(task_id)
            outcomes.append("ok")
        except StateConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=start) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_tasks_created_at_once_by_many_threads_are_each_stored_once_and_counted(store: TaskStore):
    """Creates made at once share insert commands (`inserts`); each thread still gets its
    own task, stored whole, and the counts move by every one."""
    made: list[tuple[str, int]] = []

    def create(n: int) -> None:
        made.append((store.create(AAA, {"n": n})["task_id"], n))

    errors = at_once([(lambda n=n: create(n), 5) for n in range(16)])
    assert errors == []
    assert len({task_id for task_id, _ in made}) == 80
    assert all(store.get(task_id)["condition"] == {"n": n} for task_id, n in made)
    assert store.counts.total("aaa", "ready") == 80


def test_two_concurrent_starts_one_wins(store: TaskStore):
    """Of many simultaneous starts of one task exactly one succeeds."""
    for _ in range(5):
        task_id = store.create(AAA, {})["task_id"]
        assert sorted(start_at_once(store, task_id, 8)) == ["conflict"] * 7 + ["ok"]
        assert store.get(task_id)["attempt"] == 1


def test_concurrent_writes_to_one_task_all_count(make_config):
    """The server applies each update to a document whole, as every conditional update
    here relies on: increments sent at once by many clients, to a task by its _id (by
    findAndModify and by update) and to every task by the store's bulk writes, all count,
    and none fails. Nothing stands in front of the server to make it so, and the bulk
    writes lock the tasks in the same order (`each_by_id`), so PostgreSQL finds no deadlock."""
    collection = connect(make_config().mongo)
    tasks = ["ts_a", "ts_b", "ts_c"]
    collection.insert_many([{"_id": t, "n": 0} for t in tasks])
    inc = {"$inc": {"n": 1}}
    try:
        errors = at_once([  # (write, times): 8 on ts_a by findAndModify, 4 by update on a and b, 2 on all
            *[(lambda: collection.find_one_and_update({"_id": "ts_a"}, inc), 25)] * 8,
            *[(lambda: collection.update_one({"_id": "ts_a"}, inc), 25)] * 2,
            *[(lambda: collection.update_one({"_id": "ts_b"}, inc), 25)] * 2,
            *[(lambda: each_by_id(collection, {t: UpdateOne({"_id": t}, inc) for t in tasks}), 10)] * 2,
        ])
        assert errors == []
        counts = {t["_id"]: t["n"] for t in collection.find()}
        assert counts == {"ts_a": 8 * 25 + 2 * 25 + 2 * 10, "ts_b": 2 * 25 + 2 * 10, "ts_c": 2 * 10}
    finally:
        collection.database.client.close()


def test_a_bulk_write_picked_as_a_deadlocks_victim_is_done_again_from_where_it_stopped(make_config):
    """Against a writer that locks the same tasks in the opposite order, PostgreSQL picks
    one of the two as a deadlock's victim, which MongoDB never does. The store's bulk write
    then goes on from the update that failed: each of its updates counts exactly once.
    (Runs until the store's write has been a victim, or for 60 s on an engine without
    deadlocks.)"""
    collection = connect(make_config().mongo)
    tasks = [f"ts_{n}" for n in range(20)]
    collection.insert_many([{"_id": t, "n": 0} for t in tasks])
    inc = {"$inc": {"n": 1}}
    backwards = dict.fromkeys(tasks, 0)  # what the writer in the opposite order applied
    forwards = {t: UpdateOne({"_id": t}, inc) for t in tasks}
    store_writes = BulkWrites(collection)
    rounds = 0
    deadline = time.monotonic() + 60

    def in_reverse() -> None:
        try:
            collection.bulk_write([UpdateOne({"_id": t}, inc) for t in reversed(tasks)])
            applied = len(tasks)
        except BulkWriteError as ex:  # not done again: what it applied before it counts
            applied = ex.details["nModified"]
        for task in list(reversed(tasks))[:applied]:
            backwards[task] += 1

    def by_the_store() -> None:
        nonlocal rounds
        each_by_id(store_writes, forwards)
        rounds += 1

    try:
        while store_writes.calls == rounds and time.monotonic() < deadline:  # not yet a victim
            assert at_once([(in_reverse, 4), (by_the_store, 4)]) == []
        counts = {t["_id"]: t["n"] for t in collection.find()}
        assert counts == {t: rounds + backwards[t] for t in tasks}
    finally:
        collection.database.client.close()


class BulkWrites:
    """A collection's bulk writes, counted."""

    def __init__(self, collection: pymongo.collection.Collection) -> None:
        self._collection = collection
        self.calls = 0

    def bulk_write(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self._collection.bulk_write(*args, **kwargs)


def test_lifecycle_and_fencing(store: TaskStore):
    """Start, publish, run and finish; stale attempts and illegal moves are refused."""
    task_id = store.create(AAA, {})["task_id"]
    store.request_start(task_id)
    [due] = store.outbox.due(10, "aaa")
    assert due["task_id"] == task_id
    assert store.outbox.mark_published([due]) == 1
    assert store.outbox.due(10, "aaa") == []  # published: out of the outbox
    with pytest.raises(StateConflict, match="cannot go from waiting to finished"):
        store.report(task_id, Status.FINISHED, attempt=1)
    with pytest.raises(StateConflict, match="attempt 0 .* is stale"):
        store.report(task_id, Status.RUNNING, attempt=0)
    assert store.report(task_id, Status.RUNNING, "go", attempt=1)["status"] == "running"
    running = store.get(task_id)
    assert running["start_time"] is not None and running["status_message"]["running"] == "go"
    store.report(task_id, Status.FINISHED, "done", {"answer": 42}, attempt=1)
    done = store.get(task_id)
    assert done["result"] == {"answer": 42}
    assert [e["status"] for e in done["history"]] == ["ready", "ready", "waiting", "running",
                                                     "finished"]
    with pytest.raises(StateConflict, match="only a ready or failed task"):
        store.request_start(task_id)


def test_a_second_worker_reporting_a_running_attempt_running_is_refused(store: TaskStore):
    """A message delivered twice (a rebalance, a lapsed share-group lock): the worker that
    reported running first keeps the run, the second is refused and the task unchanged;
    the first's retried report is answered as before."""
    task_id = task_in(store, AAA, Status.WAITING)
    store.report(task_id, Status.RUNNING, attempt=1, worker="host-1-a")
    before = store.get(task_id)
    with pytest.raises(StateConflict, match="running on another worker"):
        store.report(task_id, Status.RUNNING, attempt=1, worker="host-2-b")
    assert store.get(task_id) == before
    assert store.report(task_id, Status.RUNNING, attempt=1, worker="host-1-a")["status"] == "running"
    store.report(task_id, Status.FINISHED, attempt=1, worker="host-1-a")
    assert store.get(task_id)["status"] == "finished"


# The contract's lifecycle (API.md, update_status_task): moves a worker may report, plus
# the same report again, which is answered as the first (idempotent per attempt).
ALLOWED = {("waiting", "running"), ("running", "finished"), ("running", "failed"),
           ("waiting", "failed"), ("running", "running"), ("finished", "finished"),
           ("failed", "failed")}


def test_every_report_from_every_state(store: TaskStore):
    """Each report a worker can send, from each state a task can be in: the allowed ones are
    applied (or answered as before), every other one is a conflict that changes nothing."""
    seen = set()
    for current in (Status.WAITING, Status.RUNNING, Status.FINISHED, Status.FAILED):
        for reported in (Status.RUNNING, Status.FINISHED, Status.FAILED):
            task_id = task_in(store, AAA, current)
            before = store.get(task_id)
            try:
                store.report(task_id, reported, attempt=1)
            except StateConflict:
                assert store.get(task_id) == before
                continue
            seen.add((current.value, reported.value))
            assert store.get(task_id)["status"] == reported
    assert seen == ALLOWED


def test_list_pages_newest_first(store: TaskStore):
    """The list counts all matches and pages them newest first."""
    clock = iter(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i) for i in range(100))
    timed = TaskStore(store._tasks, clock=lambda: next(clock))
    ids = [timed.create(AAA, {"i": i})["task_id"] for i in range(7)]
    timed.counts.flush()
    total, page = store.list(page=2, p_size=3)
    assert total == 7
    assert [t["task_id"] for t in page] == list(reversed(ids))[3:6]


def test_unreachable_server_is_dependency_unavailable(make_config):
    """A store whose server does not answer raises DependencyUnavailable, in bounded time."""
    config = make_config(env={"MONGO_URI": "mongodb://127.0.0.1:1/"}, mongo_timeout_ms=300)
    store = TaskStore(connect(config.mongo))
    try:
        with pytest.raises(DependencyUnavailable):
            store.get("ts_aaa_" + "0" * 32)
    finally:
        store.close()


def test_run_times_are_of_the_last_finished_runs(make_config):
    clock = Clock()
    store = TaskStore(connect(make_config().mongo), clock=clock)
    store.ensure_indexes()
    try:
        assert store.run_times("aaa") is None
        for seconds, status in ((1, Status.FINISHED), (10, Status.FINISHED), (2, Status.FINISHED),
                                (30, Status.FAILED), (40, None)):
            task_id = store.create(AAA, {}, start=True)["task_id"]
            store.outbox.mark_published(store.outbox.due(1, "aaa"))
            store.report(task_id, Status.RUNNING, attempt=1)
            clock.advance(seconds)
            if status is not None:
                store.report(task_id, status, result={} if status == Status.FINISHED else None,
                             attempt=1)
            if status == Status.FINISHED:
                last_success = clock()
        runs = store.run_times("aaa")
        # failed and running runs do not count
        assert (runs.median_s, runs.p95_s, runs.last_end) == (2.0, 10.0, last_success)
        assert store.run_times("aaa", last=1).median_s == 2.0
        assert store.run_times("bbb") is None
    finally:
        store.close()
