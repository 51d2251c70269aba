"""Task controls on the whole system: cancel in every state, idempotent creates."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from taskmill.client import ApiClient
from tests.system import TOKEN

pytestmark = pytest.mark.e2e

GRACE_S = 5
LIFECYCLE = {"cancel_grace_s": GRACE_S, "recovery_interval_s": 0.5}


def status(system, task_id: str) -> dict:
    return system.api.status_task([task_id])[0]


def running(system, condition: dict) -> str:
    task_id = system.api.create_task("slow", condition, start=True)
    system.wait_until("the task runs", lambda: status(system, task_id)["status"] == "running")
    return task_id


def test_a_long_run_is_cancelled_within_seconds_and_its_worker_takes_the_next_task(start_system):
    system = start_system(workers=("slow",), lifecycle=LIFECYCLE)
    task_id = running(system, {"sleep_s": 60})
    asked = time.monotonic()
    assert system.api.cancel_task(task_id, "not needed any more") == "running"
    [final] = system.wait_final([task_id], timeout_s=30)
    took = time.monotonic() - asked
    assert (final["status"], final["message"], final["cancelled"]) == \
        ("failed", "cancelled: not needed any more", True)
    assert took < GRACE_S  # the worker stopped it (the grace would have taken longer)
    result = system.api.result_task(task_id)
    assert result["data"] is None and result["cancelled"] is True
    assert [e["status"] for e in result["history"]][-2:] == ["running", "failed"]
    following = system.api.create_task("slow", {"sleep_s": 0}, start=True)
    assert system.wait_final([following])[0]["status"] == "finished"


def test_an_algorithm_that_ignores_cancel_is_ended_after_the_grace(start_system):
    """The dispatcher ends the task when the grace is over; the worker leaves the run
    behind and is free again; the abandoned run's outcome is never recorded."""
    system = start_system(workers=("slow",), lifecycle=LIFECYCLE)
    task_id = running(system, {"sleep_s": 60, "ignore_cancel": True})
    asked = time.monotonic()
    system.api.cancel_task(task_id)
    [final] = system.wait_final([task_id], timeout_s=30)
    assert time.monotonic() - asked >= GRACE_S - 1
    assert (final["status"], final["message"], final["cancelled"]) == \
        ("failed", "cancelled: by client", True)
    following = system.api.create_task("slow", {"sleep_s": 0}, start=True)
    assert system.wait_final([following], timeout_s=30)[0]["status"] == "finished"
    assert status(system, task_id) == final


def test_a_cancelled_message_already_on_kafka_is_skipped(start_system):
    """A waiting task (its message published, no worker yet) ends at once; the worker that
    later takes the message does not run it, and runs what comes after."""
    system = start_system(workers=(), lifecycle=LIFECYCLE)
    task_id = system.api.create_task("slow", {"sleep_s": 0}, start=True)
    system.wait_until("published", lambda: status(system, task_id)["status"] == "waiting")
    assert system.api.cancel_task(task_id) == "failed"
    cancelled = status(system, task_id)
    system.start_worker("slow")
    following = system.api.create_task("slow", {"sleep_s": 0}, start=True)
    assert system.wait_final([following])[0]["status"] == "finished"
    assert status(system, task_id) == cancelled
    assert "running" not in [e["status"] for e in system.api.result_task(task_id)["history"]]


def test_a_task_cancelled_and_started_again_runs_to_the_end(start_system):
    system = start_system(workers=("slow",), lifecycle=LIFECYCLE)
    task_id = running(system, {"sleep_s": 60})
    system.api.cancel_task(task_id)
    system.wait_final([task_id])
    system.api.update_task(task_id, {"sleep_s": 0})
    system.api.start_task(task_id)
    [final] = system.wait_final([task_id])
    assert (final["status"], final["cancelled"], final["attempt"]) == ("finished", False, 2)


def test_eight_concurrent_creates_with_one_key_make_one_task(start_system):
    system = start_system(workers=("slow",))
    url = f"http://127.0.0.1:{system.api_port}"
    clients = [ApiClient(url, TOKEN) for _ in range(8)]
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(
                lambda c: c.call("/api/create_task", {"data": {
                    "service": "slow", "condition": {"sleep_s": 0}, "start": True,
                    "idempotency_key": "nightly-2026-12-02"}}), clients))
    finally:
        for client in clients:
            client.close()
    assert len({a["task_id"] for a in answers}) == 1
    assert sorted(a["created"] for a in answers) == [False] * 7 + [True]
    assert system.api.tasks(service="slow")["total"] == 1
    [final] = system.wait_final([answers[0]["task_id"]])
    assert (final["status"], final["attempt"]) == ("finished", 1)
