"""Poison: one bad item never stops the system. Each scenario puts something hostile in
the way of real processes and checks that it ends with a clear reason while every other
task still finishes, and that no process died."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest
from confluent_kafka import Producer

from taskmill.config import MongoConfig, ServiceConfig
from taskmill.store import TaskStore, connect
from tests.faults.conftest import audit
from tests.system import TOKEN, System, create_started

pytestmark = [pytest.mark.e2e, pytest.mark.faults]


def store_of(system: System) -> TaskStore:
    """The system's task store, opened directly (as an older api or a script might write it)."""
    db = system.env["MONGO_DBNAME"]
    return TaskStore(connect(MongoConfig(uri=system.env["MONGO_URI"], dbname=db, collection=db,
                                         timeout_ms=5000)))


def test_a_task_too_large_for_kafka_fails_and_the_others_run(start_system, fast_lifecycle, fast_kafka):
    """A started task whose message exceeds the broker's limit (written past the api's cap):
    it ends failed saying the broker refused it; the tasks started around it finish."""
    system = start_system(workers=("slow",), lifecycle=fast_lifecycle, kafka_settings=fast_kafka)
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
                                              [*before, huge, *after], poison=True)}
    assert results.pop(huge)["message"].startswith("the broker refused the task's message")
    assert {r["status"] for r in results.values()} == {"finished"}


def test_messages_that_are_not_tasks_are_skipped_and_the_tasks_behind_them_run(start_system,
                                                                              fast_lifecycle, fast_kafka):
    """Raw messages on a worker's topic that are not the contract's task (not JSON, no Task,
    an attempt header that is not an ASCII integer, binary noise): each is counted as a
    decode error and skipped; the worker stays up and the tasks behind them finish."""
    system = start_system(workers=("slow",), lifecycle=fast_lifecycle, kafka_settings=fast_kafka)
    first = create_started(system, 3)
    system.wait_final(first)  # the topic exists and the worker consumes it
    task_id = "ts_slow_" + "0" * 32
    value = json.dumps({"Task": {"task_id": task_id, "service": "slow", "source_name": "mongo",
                                 "condition": {}}}).encode()
    producer = Producer({"bootstrap.servers": system.env["KAFKA_BOOTSTRAP_SERVERS"]})
    topic = system.services["slow"]["topic_name"]
    partitions = len(producer.list_topics(topic, timeout=10).topics[topic].partitions)
    for raw, headers in ((b"not json", None), (b'{"Task": 1}', None), (b"\xff\xfe\x00", None),
                         (value, [("taskmill-attempt", "²".encode())]),
                         (value, [("taskmill-attempt", b"9" * 5000)])):
        for partition in range(partitions):  # whichever partition the worker is on
            producer.produce(topic, raw, partition=partition, headers=headers)
    assert producer.flush(10) == 0
    after = create_started(system, 5)
    system.wait_final(after, timeout_s=60)
    results = audit(system, "poison: messages that are not tasks", [*first, *after], poison=True)
    assert {r["status"] for r in results} == {"finished"}
    log = system.log_path("worker-slow").read_text(errors="replace")
    assert log.count("skipping a message that is not a task") == 5 * partitions


def test_an_outcome_the_api_refuses_ends_the_task_failed_saying_why(start_system, fast_lifecycle, fast_kafka):
    """A result the api cannot store (a `$` key): the worker reports the task failed with the
    api's reason at once, instead of leaving it running until its lease lapses."""
    system = start_system(workers=("slow",), lifecycle=fast_lifecycle, kafka_settings=fast_kafka)
    [refused] = [system.api.create_task("slow", {"result_key": "$set"}, start=True)]
    others = create_started(system, 3)
    system.wait_final([refused, *others], timeout_s=60)
    results = {r["task_id"]: r for r in audit(system, "poison: an outcome the api refuses",
                                              [refused, *others], poison=True)}
    bad = results.pop(refused)
    assert bad["status"] == "failed" and bad["attempt"] == 1
    assert bad["message"].startswith("the api refused the outcome: Invalid parameter: data.result has a key")
    assert {r["status"] for r in results.values()} == {"finished"}


HOSTILE_BODIES = [
    b'{"x": NaN}', b'{"x": Infinity}', b'{"x": -Infinity}', b'{"x": 1e400}',
    b'{"x": 9223372036854775808}', b'{"x": "a\\u0000b"}', b'{"a\\u0000": 1}', b'{"x": "\\ud800"}',
    b'{"a": ' * 1000 + b"1" + b"}" * 1000,
]


def post_raw(port: int, route: str, body: bytes) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", route, body, {"Authorization": TOKEN, "Content-Type": "application/json"})
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        conn.close()


def test_bodies_holding_what_the_store_cannot_hold_are_400_and_change_nothing(start_system,
                                                                             fast_lifecycle, fast_kafka):
    """NaN, infinities, integers past 64 bits, NUL, a lone surrogate, 1,000 levels of
    nesting, sent as started tasks to the real api: each a 400 saying what, no task stored,
    no api worker restarted, and the tasks started around them finish."""
    system = start_system(workers=("slow",), lifecycle=fast_lifecycle, kafka_settings=fast_kafka)
    before = create_started(system, 3)
    booted = system.log_path("api").read_text(errors="replace").count("Booting worker")
    for condition in HOSTILE_BODIES:
        body = b'{"data": {"service": "slow", "start": true, "condition": ' + condition + b"}}"
        status, answer = post_raw(system.api_port, "/api/create_task", body)
        assert status == 400 and answer["message"].startswith("Invalid parameter: "), (condition, answer)
    after = create_started(system, 3)
    system.wait_final([*before, *after], timeout_s=60)
    assert system.api.call("/api/tasks", {"service": "slow"})["total"] == 6
    assert system.log_path("api").read_text(errors="replace").count("Booting worker") == booted
    results = audit(system, "poison: bodies the store cannot hold", [*before, *after], poison=True)
    assert {r["status"] for r in results} == {"finished"}


def test_reports_delivered_twice_change_nothing_and_the_task_runs_on(start_system, fast_lifecycle,
                                                                     fast_kafka):
    """A worker's report delivered again (a POST retried after its answer was lost): the
    `running` report of the attempt that is running is answered 200 and the worker goes on
    to finish the task; the `finished` report again is answered 200 and changes neither the
    result nor the history."""
    system = start_system(workers=("slow",), lifecycle=fast_lifecycle, kafka_settings=fast_kafka)
    [task] = create_started(system, 1, sleep_s=3)
    system.wait_until("the task runs", lambda: system.statuses([task])[0]["status"] == "running")
    attempt = system.statuses([task])[0]["attempt"]
    for _ in range(2):
        answer = system.api.update_status(task, "running", attempt=attempt)
        assert answer["status"] == {"task_id": task, "status": "running"}
    others = create_started(system, 3)
    system.wait_final([task, *others], timeout_s=60)
    first = system.api.result_task(task)
    assert first["status"] == "finished" and first["data"]["attempt"] == attempt
    again = system.api.update_status(task, "finished", result={"forged": True}, attempt=attempt)
    assert again["status"] == {"task_id": task, "status": "finished"}
    later = system.api.result_task(task)
    assert (later["data"], later["history"]) == (first["data"], first["history"])
    assert [e["status"] for e in later["history"]].count("running") == 1
    results = audit(system, "poison: reports delivered twice", [task, *others], poison=True)
    assert {r["status"] for r in results} == {"finished"}
