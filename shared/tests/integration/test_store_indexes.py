"""The store's queries are served by indexes, sorts included, so they cost the same at any size.

Checked by the server's own query plan: MongoDB's explain names IXSCAN and (for a sort it
could not take from the index) SORT stages; the local engine answers with the plan of the
SQL it runs in PostgreSQL, which names an index scan with a condition on the document (or
its _id) and,
for such a sort, a Sort node. (Its full read is an index scan too, of the primary key by
the collection's shard key alone: that one does not count.)
"""

import re
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from pymongo.collection import Collection

from taskmill.config import MongoConfig, ServiceConfig
from taskmill.schema import BUSY, Status, new_task_id, utcnow
from taskmill.store import TaskStore, connect, new_task
from taskmill.store.documents import (
    IN_OUTBOX,
    INDEXES,
    LEASE_INDEX,
    LIST_INDEXES,
    NEWEST,
    OUTBOX_INDEX,
    PRIORITY_INDEX,
    PUBLISH_ORDER,
    REPLACED_INDEXES,
    SERVICE_STATUS_INDEX,
    lease_ended,
    list_index,
)

pytestmark = pytest.mark.integration

SERVICES = [ServiceConfig("aaa", "mongo", "mq_aaa", "c_aaa"),
            ServiceConfig("bbb", "mysql", "mq_bbb", "c_bbb")]
TASKS = 3000  # enough that a planner prefers an index to reading the table


@pytest.fixture(scope="module")
def filled(mongo_uri: str) -> Iterator[Collection]:
    """A tasks collection with the store's indexes and TASKS tasks of mixed services and statuses."""
    dbname = f"test_indexes_{uuid.uuid4().hex[:8]}"
    collection = connect(MongoConfig(uri=mongo_uri, dbname=dbname, collection="tasks", timeout_ms=30000))
    TaskStore(collection).ensure_indexes()
    now = utcnow()
    docs = []
    for n in range(TASKS):
        service = SERVICES[n % 2]
        doc = new_task(new_task_id(service.name), service, {"n": n}, False, now)
        doc["status"] = list(Status)[n % 5].value
        if doc["status"] in BUSY:  # waiting or running: a lease, some of them expired
            doc["lease_until"] = now + timedelta(seconds=n % 7 - 3)
        elif doc["status"] == Status.READY and n % 3 == 0:  # started: in the outbox
            doc.update(outbox=True, start_requested_at=now)
        docs.append(doc)
    collection.insert_many(docs)
    yield collection
    collection.database.client.drop_database(dbname)
    collection.database.client.close()


def stages(plan: Any) -> Iterator[str]:
    """Every stage (MongoDB) or node type (PostgreSQL under the local engine) in an explain
    answer; an index scan of the local engine whose condition is on the document is
    `Index Scan on document`; each index a scan reads, by name, as `reads <name>`
    (MongoDB's indexName; the local engine's Index Name is the index's MongoDB name)."""
    if isinstance(plan, Mapping):
        for key in ("stage", "Node Type"):
            if isinstance(plan.get(key), str):
                on_document = re.search(r"\b(document|object_id)\b", str(plan.get("Index Cond", "")))
                yield f"{plan[key]} on document" if on_document else plan[key]
        for key in ("indexName", "Index Name"):
            if isinstance(plan.get(key), str):
                yield f"reads {plan[key]}"
        for value in plan.values():
            yield from stages(value)
    elif isinstance(plan, list):
        for value in plan:
            yield from stages(value)


def plan_of(collection: Collection, query: Mapping[str, Any], **options: Any) -> list[str]:
    answer = collection.database.command("explain", {"find": collection.name, "filter": dict(query),
                                                     **options}, verbosity="queryPlanner")
    return list(stages(answer))


def reads(plan: list[str], index: str) -> bool:
    """Whether the plan reads that index (all of it, for a partial index whose filter the
    query states: no condition is left for the scan to apply)."""
    return f"reads {index}" in plan


def uses_index(plan: list[str]) -> bool:
    return any(stage == "IXSCAN" or stage.endswith("Index Scan on document") for stage in plan)


def sorts(plan: list[str]) -> bool:
    return any(stage in ("SORT", "Sort", "Incremental Sort") for stage in plan)


@pytest.mark.parametrize("what, query", [
    ("a task by id (every api call, every report)", {"_id": "ts_aaa_" + "0" * 32}),
    ("ten tasks by id (status_task)", {"_id": {"$in": [f"ts_aaa_{n:032x}" for n in range(10)]}}),
    ("running tasks, for recovery", {"status": "running"}),
])
def test_lookup_is_served_by_an_index(filled: Collection, what: str, query: dict[str, Any]):
    plan = plan_of(filled, query)
    assert uses_index(plan), f"{what}: {query} reads the whole collection ({plan})"


@pytest.mark.parametrize("service, status",
                         [(None, None), ("aaa", None), (None, "running"), ("aaa", "failed")])
def test_a_list_page_is_read_in_index_order(filled: Collection, service, status):
    """Every filter of the task list has an index that serves the filter and the sort: a
    page reads its tasks in order from the index instead of sorting all the matches."""
    query, index = list_index(service, status)
    plan = plan_of(filled, query, sort=dict(NEWEST), limit=20, hint=index)
    assert uses_index(plan) and not sorts(plan), f"{query}: {plan}"


def test_the_dispatcher_reads_due_tasks_in_start_order_from_the_index(filled: Collection):
    options = {"sort": {"start_requested_at": 1}, "limit": 200, "hint": OUTBOX_INDEX.name}
    plan = plan_of(filled, IN_OUTBOX, **options)
    assert reads(plan, OUTBOX_INDEX.name) and not sorts(plan), plan


def test_the_relays_idle_check_is_served_by_the_outbox_index(filled: Collection):
    plan = plan_of(filled, {**IN_OUTBOX, "start_requested_at": {"$lte": utcnow()}}, limit=1,
                   hint=OUTBOX_INDEX.name)
    assert uses_index(plan), plan


def test_a_services_due_tasks_are_read_in_priority_order_from_the_index(filled: Collection):
    due = {**IN_OUTBOX, "service": "aaa", "start_requested_at": {"$lte": utcnow()}}
    plan = plan_of(filled, due, sort=dict(PUBLISH_ORDER), limit=200, hint=PRIORITY_INDEX.name)
    assert uses_index(plan) and not sorts(plan), plan


@pytest.mark.parametrize("what, query", [
    ("published tasks no worker took (the relay's room)",
     {"service": {"$in": ["aaa", "bbb"]}, "status": "waiting", "outbox": False}),
    ("ended tasks past retention",
     {"service": "aaa", "status": "finished", "outbox": False, "end_time": {"$lt": utcnow()}}),
])
def test_the_dispatchers_counts_and_deletions_are_served_by_an_index(filled: Collection, what, query):
    assert uses_index(plan_of(filled, query, hint=SERVICE_STATUS_INDEX.name)), what


def test_expired_leases_are_read_oldest_first_from_the_lease_index(filled: Collection):
    expired = {"status": {"$in": ["waiting", "running"]}, **lease_ended(utcnow())}
    options = {"sort": {"lease_until": 1}, "limit": 100, "hint": LEASE_INDEX.name}
    plan = plan_of(filled, expired, **options)
    assert reads(plan, LEASE_INDEX.name) and not sorts(plan), plan


def test_every_list_filter_has_its_index(filled: Collection):
    assert {index.name for index in LIST_INDEXES.values()} <= {i["name"] for i in filled.list_indexes()}


def test_the_outbox_and_lease_indexes_hold_only_their_tasks(filled: Collection):
    held = {i["name"]: i.get("partialFilterExpression") for i in filled.list_indexes()}
    assert held[OUTBOX_INDEX.name] == held[PRIORITY_INDEX.name] == {"outbox": True}
    assert held[LEASE_INDEX.name] == {"lease_until": {"$type": "date"}}


def test_indexes_an_earlier_version_made_are_replaced(mongo_uri: str):
    """A store whose outbox and lease indexes hold every task (as before they were
    partial) gets the partial ones, and the full ones are dropped, also by two processes
    ensuring the indexes at once; its tasks are found as before."""
    dbname = f"test_indexes_{uuid.uuid4().hex[:8]}"
    collection = connect(MongoConfig(uri=mongo_uri, dbname=dbname, collection="tasks", timeout_ms=30000))
    try:
        collection.create_index([("outbox", 1), ("start_requested_at", 1)], name="outbox_due")
        collection.create_index([("outbox", 1), ("service", 1), *PUBLISH_ORDER], name="outbox_priority")
        collection.create_index([("status", 1), ("lease_until", 1)], name="leases")
        store = TaskStore(collection)
        task_id = store.create(SERVICES[0], {}, start=True)["task_id"]
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda _: TaskStore(collection).ensure_indexes(), range(2)))
        names = {i["name"] for i in collection.list_indexes()}
        assert {index.name for index in INDEXES} <= names
        assert not names & REPLACED_INDEXES
        assert [t["task_id"] for t in store.outbox.due(10, "aaa")] == [task_id]
    finally:
        collection.database.client.drop_database(dbname)
        collection.database.client.close()


def test_the_check_can_tell_a_full_read_and_a_sort(filled: Collection):
    """A field no index covers is read from the whole collection, and a sort no index serves
    is a sort: the checks are not blind."""
    assert not uses_index(plan_of(filled, {"no_such_field": 1}))
    assert sorts(plan_of(filled, {"status": "ready"}, sort={"condition.n": 1}, limit=20))
