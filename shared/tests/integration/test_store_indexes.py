"""The store's point lookups are served by an index, so they cost the same at any size.

Checked by the server's own query plan: MongoDB's explain names an IXSCAN stage; FerretDB
answers with the plan of the SQL it runs in PostgreSQL, which names an index scan when
the GIN companions of infra/ferretdb/companion-indexes.sql are in place.
"""

import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from pymongo.collection import Collection

from taskmill.config import MongoConfig, ServiceConfig
from taskmill.schema import new_task_id, utcnow
from taskmill.store import TaskStore, connect, new_task

pytestmark = pytest.mark.integration

AAA = ServiceConfig("aaa", "mongo", "mq_aaa", "c_aaa")
TASKS = 3000  # enough that a planner prefers an index to reading the table


@pytest.fixture(scope="module")
def filled(mongo_uri: str) -> Iterator[Collection]:
    """A tasks collection with the store's indexes and TASKS ready tasks."""
    dbname = f"test_indexes_{uuid.uuid4().hex[:8]}"
    collection = connect(MongoConfig(uri=mongo_uri, dbname=dbname, collection="tasks", timeout_ms=30000))
    TaskStore(collection).ensure_indexes()
    now = utcnow()
    collection.insert_many([new_task(new_task_id("aaa"), AAA, {"n": n}, False, now) for n in range(TASKS)])
    yield collection
    collection.database.client.drop_database(dbname)
    collection.database.client.close()


def stages(plan: Any) -> Iterator[str]:
    """Every stage (MongoDB) or node type (PostgreSQL under FerretDB) in an explain answer."""
    if isinstance(plan, Mapping):
        for key in ("stage", "Node Type"):
            if isinstance(plan.get(key), str):
                yield plan[key]
        for value in plan.values():
            yield from stages(value)
    elif isinstance(plan, list):
        for value in plan:
            yield from stages(value)


def plan_of(collection: Collection, query: Mapping[str, Any]) -> list[str]:
    answer = collection.database.command("explain", {"find": collection.name, "filter": dict(query)},
                                         verbosity="queryPlanner")
    return list(stages(answer))


def uses_index(plan: list[str]) -> bool:
    return any(stage == "IXSCAN" or "Index Scan" in stage for stage in plan)


@pytest.mark.parametrize("what, query", [
    ("a task by id (every api call, every report)", {"task_id": "ts_aaa_" + "0" * 32}),
    ("the dispatcher's due tasks", {"outbox": True}),
    ("running tasks, for recovery", {"status": "running"}),
])
def test_lookup_is_served_by_an_index(filled: Collection, what: str, query: dict[str, Any]):
    plan = plan_of(filled, query)
    assert uses_index(plan), f"{what}: {query} reads the whole collection ({plan})"


def test_the_check_can_tell_a_full_read(filled: Collection):
    """A field no index covers is read from the whole collection: the check is not blind."""
    plan = plan_of(filled, {"no_such_field": 1})
    assert not uses_index(plan), plan
