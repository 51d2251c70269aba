"""Share-group mode on the real stack (Kafka >= 4.2): workers take tasks from every partition."""

from __future__ import annotations

import time

import pytest
from confluent_kafka.admin import AdminClient

from taskmill.worker.feeds import ShareFeed
from taskmill.worker.runner import feed
from tests.system import System, create_started

pytestmark = pytest.mark.e2e

SHARE = {"mode": "share_group"}


def test_eight_workers_on_a_share_group_topic_all_run_tasks(start_system, kafka_servers):
    """Eight workers on a topic of one partition (a share group's, made by the dispatcher):
    every one of them takes work."""
    system = start_system(workers=(), kafka_settings={**SHARE, "partitions": 4})
    for n in range(8):
        system.start_worker("slow", f"worker-{n}")
    ids = create_started(system, 16, sleep_s=3)
    system.wait_final(ids, timeout_s=120)
    results = [system.api.result_task(task_id) for task_id in ids]
    assert {r["status"] for r in results} == {"finished"}
    pids = {r["data"]["pid"] for r in results}
    assert pids == {system.procs[f"worker-{n}"].pid for n in range(8)}
    topic = system.services["slow"]["topic_name"]
    assert len(AdminClient({"bootstrap.servers": kafka_servers}).list_topics(
        topic, timeout=10).topics[topic].partitions) == 1


def test_a_long_task_does_not_hold_up_the_task_behind_it(start_system):
    """Two workers: the second task runs while the first is still running (in a consumer
    group it would wait when both hash to one partition)."""
    system = start_system(workers=(), kafka_settings=SHARE)
    system.start_worker("slow", "worker-1")
    system.start_worker("slow", "worker-2")
    [long] = create_started(system, 1, sleep_s=60)
    system.wait_until("the long task runs", lambda: system.statuses([long])[0]["status"] == "running")
    [short] = create_started(system, 1)
    system.wait_final([short], timeout_s=30)
    assert system.statuses([long])[0]["status"] == "running"
    assert system.api.result_task(short)["status"] == "finished"
    system.api.cancel_task(long)


def test_a_record_its_takers_keep_dropping_ends_its_task_failed_saying_why(start_system):
    """Three takers let the record go without starting the task (as if each had died): the
    fourth delivery's worker ends the task failed, before the broker would archive it."""
    system = start_system(workers=(), kafka_settings=SHARE)
    [task_id] = create_started(system, 1)
    config = system.config
    taker = feed(config, config.service("slow"))  # a member of the workers' own share group
    assert isinstance(taker, ShareFeed)
    taker.start()
    try:
        for delivery in (1, 2, 3):
            msg = _next_record(system, taker)
            assert taker.deliveries(msg) == delivery
            taker.give_back(msg)
    finally:
        taker.close()
    system.start_worker("slow")
    system.wait_final([task_id], timeout_s=60)
    result = system.api.result_task(task_id)
    assert result["status"] == "failed"
    assert "delivered 4 times without a worker starting the task" in result["message"]


def _next_record(system: System, taker: ShareFeed):
    """The next record the taker acquires (within a minute)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        msg = taker.next(0.5)
        if msg is not None and msg.error() is None:
            return msg
    raise AssertionError(f"no record delivered within 60 s\n{system.logs()[-3000:]}")
