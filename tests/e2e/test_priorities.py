"""Priorities on the whole system: an urgent task started behind a long backlog overtakes it."""

from __future__ import annotations

from datetime import datetime

import pytest

pytestmark = pytest.mark.e2e

BACKLOG = 200
WORKERS = 2
RUN_S = 0.5
PER_WORKER = 2  # what lifecycle.lookahead_s (1 s, shipped) makes of RUN_S


def when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_priority_9_task_overtakes_a_backlog_of_200(start_system):
    """With every worker busy and 200 started tasks queued, a priority-9 task starts after
    at most what was already handed to Kafka (about lookahead_s of work per worker: two
    tasks of 0.5 s) and what the workers took meanwhile, not after the backlog."""
    system = start_system(workers=("slow",))
    system.start_worker("slow", name="worker-slow-2")
    backlog = [system.api.create_task("slow", {"sleep_s": RUN_S}, start=True) for _ in range(BACKLOG)]
    system.wait_until("both workers busy",
                      lambda: sum(s["status"] == "running" for s in system.statuses(backlog)) >= WORKERS,
                      timeout_s=30)
    urgent = system.api.create_task("slow", {"sleep_s": 0}, start=True, priority=9)
    [final] = system.wait_final([urgent], timeout_s=60)
    assert final["status"] == "finished"
    started_at = when(system.api.result_task(urgent)["history"][0]["time"])
    ran_at = when(final["start_time"])
    runs = [when(s["start_time"]) for s in system.statuses(backlog)]
    ahead = sum(1 for t in runs if t is not None and started_at <= t <= ran_at)
    behind = sum(1 for t in runs if t is None or t > ran_at)
    print(f"\nurgent task: {ahead} backlog tasks started before it, {behind} after")
    assert ahead <= 2 * WORKERS * PER_WORKER, ahead
    assert behind >= BACKLOG // 2, behind
