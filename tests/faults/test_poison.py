"""Poison: one bad item never stops the system. Each scenario puts something hostile in
the way of real processes and checks that it ends with a clear reason while every other
task still finishes, and that no process died."""

from __future__ import annotations

import pytest

from taskmill.config import MongoConfig, ServiceConfig
from taskmill.store import TaskStore, connect
from tests.faults.conftest import FAST_KAFKA, audit
from tests.faults.test_faults import create_started
from tests.system import System

pytestmark = [pytest.mark.e2e, pytest.mark.faults]


def store_of(system: System) -> TaskStore:
    """The system's task store, opened directly (as an older api or a script might write it)."""
    db = system.env["MONGO_DBNAME"]
    return TaskStore(connect(MongoConfig(uri=system.env["MONGO_URI"], dbname=db, collection=db,
                                         timeout_ms=5000)))


def still_running(system: System) -> list[str]:
    return [name for name, proc in system.procs.items() if proc.poll() is None]


def test_a_task_too_large_for_kafka_fails_and_the_others_run(start_system, fast_lifecycle):
    """A started task whose message exceeds the broker's limit (written past the api's cap):
    it ends failed saying the broker refused it; the tasks started around it finish."""
    system = start_system(workers=("slow",), lifecycle=fast_lifecycle, kafka_settings=FAST_KAFKA)
    before = create_started(system, 5)
    store = store_of(system)
    try:
        slow = ServiceConfig("slow", "mongo", **{k: system.services["slow"][k]
                                                 for k in ("topic_name", "consumer_id")})
        huge = store.create(slow, {"blob": "x" * 1_100_000}, start=True)["task_id"]
    finally:
        store.close()
    after = create_started(system, 5)
    system.wait_final([*before, huge, *after], timeout_s=120)
    results = {r["task_id"]: r for r in audit(system, "poison: a message too large for Kafka",
                                              [*before, huge, *after])}
    assert results.pop(huge)["message"].startswith("the broker refused the task's message")
    assert {r["status"] for r in results.values()} == {"finished"}
    assert still_running(system) == list(system.procs), system.logs()
