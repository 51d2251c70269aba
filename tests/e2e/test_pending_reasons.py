"""Why a task is not running yet, on the whole system: each reason appears when its cause is
made real (a backlog, the workers stopped, Kafka stopped, a retry's backoff, a failing
algorithm opening its service's breaker) and goes away with it."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.system import System

pytestmark = pytest.mark.e2e

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def item(system: System, task_id: str) -> dict[str, Any]:
    [status] = system.api.status_task([task_id])
    return status


def wait_reason(system: System, task_id: str, pattern: str, timeout_s: float = 60) -> str:
    """Poll until the task's pending_reason matches pattern (a regular expression); return it."""
    seen: list[str | None] = []

    def matches() -> bool:
        seen.append(item(system, task_id)["pending_reason"])
        return seen[-1] is not None and re.fullmatch(pattern, seen[-1]) is not None
    system.wait_until(f"{task_id}'s pending_reason matches {pattern!r} (last: {seen[-1:]})",
                      matches, timeout_s)
    return str(seen[-1])


def test_positions_fall_as_the_tasks_ahead_run(start_system):
    """One worker, one task handed to Kafka at a time: the last of eight tasks of a second sees
    its place fall to the front, then runs; a task not started says so. (Until the
    dispatcher has seen the worker, the reason is that: the system is starting.)"""
    system = start_system(workers=("slow",), lifecycle={"min_waiting_per_worker": 1,
                                                        "max_waiting_per_worker": 1})
    system.wait_final([system.api.create_task("slow", {}, start=True)])  # the worker is in
    idle = system.api.create_task("slow", {"sleep_s": 0})
    ids = [system.api.create_task("slow", {"sleep_s": 1}, start=True) for _ in range(8)]
    last = ids[-1]
    assert (item(system, idle)["pending_reason"], item(system, idle)["queue_position"]) == (
        "not started", None)
    positions: list[int] = []

    def ran() -> bool:
        status = item(system, last)
        if status["status"] not in ("ready", "waiting"):
            assert status["pending_reason"] is None and status["queue_position"] is None
            return True
        if not positions and not status["pending_reason"].startswith("queued:"):
            return False  # the system is starting: no dispatcher or no worker seen yet
        position = status["queue_position"]
        ahead = "no task" if position == 0 else f"{position} task{'s' if position != 1 else ''}"
        assert status["pending_reason"] == f"queued: {ahead} of slow ahead", status
        positions.append(position)
        return False
    system.wait_until("the last task runs", ran, timeout_s=60)
    print(f"\npositions seen: {sorted(set(positions), reverse=True)}")
    # The first places shown may be gone before the dispatcher has seen the worker (it
    # looks every 2 s): a few of the eight.
    assert positions[0] >= 3
    assert positions == sorted(positions, reverse=True)  # never back
    assert len(set(positions)) >= 3 and positions[-1] <= 1


def test_no_live_worker_since_the_workers_stopped_until_one_starts(start_system):
    system = start_system(workers=("slow",))
    first = system.api.create_task("slow", {}, start=True)
    system.wait_final([first])
    system.stop("worker-slow")
    task_id = system.api.create_task("slow", {}, start=True)
    wait_reason(system, task_id, f"no live worker for slow since {TIME}", timeout_s=30)
    system.start_worker("slow")
    [final] = system.wait_final([task_id])
    assert final["status"] == "finished" and final["pending_reason"] is None


def test_publication_delayed_while_kafka_is_down(start_system, private_server):
    kafka = private_server("kafka")
    system = start_system(workers=("slow",), kafka=kafka.address,
                          lifecycle={"dispatch_claim_s": 5}, kafka_settings={"session_timeout_ms": 6000})
    system.wait_final([system.api.create_task("slow", {}, start=True)])
    kafka.stop()
    task_id = system.api.create_task("slow", {}, start=True)
    wait_reason(system, task_id, f"publication delayed: Kafka unavailable since {TIME}")
    kafka.start()
    [final] = system.wait_final([task_id], timeout_s=120)
    assert final["status"] == "finished"


def test_a_retry_says_until_when(start_system):
    system = start_system(workers=("slow",),
                          settings={"retries": {"slow": {"max_attempts": 2, "backoff_s": 60}}})
    task_id = system.api.create_task("slow", {"fail": "flaky", "retry": True}, start=True)
    reason = wait_reason(system, task_id, f"retry after {TIME}")
    assert item(system, task_id)["queue_position"] is None
    print(f"\n{reason}")


def test_a_failing_algorithm_opens_its_breaker_then_a_finished_trial_closes_it(start_system):
    """Three failed runs in a row pause the service: its started tasks wait, saying why, and
    another service runs on; after the cool-down one goes through, finishes, and the rest
    follow."""
    system = start_system(workers=("slow", "aaa"), metrics=True,
                          settings={"breaker": {"failures": 3, "cooldown_s": 4}})
    failing = [system.api.create_task("slow", {"fail": "broken"}, start=True) for _ in range(3)]
    assert {s["status"] for s in system.wait_final(failing)} == {"failed"}

    def breaker() -> float:
        return system.metric("taskmill_dispatcher_breaker_state", service="slow")["dispatcher"]
    system.wait_until("the breaker opens", lambda: breaker() == 2, timeout_s=30)
    held = [system.api.create_task("slow", {}, start=True) for _ in range(2)]
    wait_reason(system, held[1], f"service slow paused after 3 failures in a row; "
                                 f"(next try at|one task on trial since) {TIME}")
    other = system.api.create_task("aaa", {"limit": 1}, start=True)
    assert system.wait_final([other])[0]["status"] == "finished"  # not paused

    assert {s["status"] for s in system.wait_final(held, timeout_s=60)} == {"finished"}
    system.wait_until("the breaker closes", lambda: breaker() == 0, timeout_s=30)
    assert system.metric("taskmill_dispatcher_breaker_opened_total",
                         service="slow")["dispatcher"] == 1
