"""Shape stored tasks into the contract's answers."""

from __future__ import annotations

from typing import Any

from taskmill.schema import INVALID, Status, iso
from taskmill.store import Task
from taskmill.store.documents import DEFAULT_PRIORITY
from taskmill.store.overview import ServiceOverview


def status_item(task_id: str, task: Task | None,
                pending: tuple[str, int | None] | None = None) -> dict[str, Any]:
    """One entry of status_task's answer (`Invalid` for an unknown task), with why a ready
    or waiting task is not running yet (`pending`: its reason and queue position)."""
    if task is None:
        return {"task_id": task_id, "status": INVALID, "message": None,
                "start_time": None, "end_time": None}
    return {
        "task_id": task_id,
        "status": task["status"],
        "message": (task.get("status_message") or {}).get(task["status"]),
        "start_time": iso(task.get("start_time")),
        "end_time": iso(task.get("end_time")),
        "attempt": task.get("attempt", 0),
        "progress": task.get("progress"),
        "cancelled": bool(task.get("cancelled")),
        "pending_reason": pending[0] if pending else None,
        "queue_position": pending[1] if pending else None,
    }


def result(task: Task) -> dict[str, Any]:
    """result_task's answer: the result once finished, where the task is otherwise."""
    start, end = task.get("start_time"), task.get("end_time")
    finished = task["status"] == Status.FINISHED
    return {
        "result": "ok",
        "task_id": task["task_id"],
        "service": task["service"],
        "condition": task["condition"],
        "create_time": iso(task["create_time"]),
        "priority": task.get("priority", DEFAULT_PRIORITY),
        "status": task["status"],
        "data": task.get("result") if finished else None,
        "message": (task.get("status_message") or {}).get(task["status"]),
        "start_time": iso(start),
        "end_time": iso(end),
        "spend_time": round((end - start).total_seconds(), 3) if start and end else None,
        "attempt": task.get("attempt", 0),
        "cancelled": bool(task.get("cancelled")),
        "history": [history_event(e) for e in task.get("history", [])],
    }


def history_event(event: dict[str, Any]) -> dict[str, Any]:
    """One transition of a task, with its time in the contract's format."""
    return {**event, "time": iso(event.get("time"))}


def list_item(task: Task) -> dict[str, Any]:
    """One entry of the tasks list."""
    return {"task_id": task["task_id"], "service": task["service"], "status": task["status"],
            "condition": task["condition"], "create_time": iso(task["create_time"])}


def service_overview(found: ServiceOverview) -> dict[str, Any]:
    """One entry of service_stats' answer."""
    runs, state = found.run_times, found.state
    return {
        "service": found.service,
        "counts": found.counts,
        "last_hour": {**found.ended, "per_minute": round(found.per_minute, 3),
                      "failure_rate": found.failure_rate},
        "run_time": None if runs is None else {"median_s": round(runs.median_s, 3),
                                               "p95_s": round(runs.p95_s, 3)},
        "workers": state.workers,
        "breaker": {"state": state.breaker.state.value, "until": iso(state.breaker.until),
                    "failures": state.breaker.failures},
        "dispatcher_seen_at": iso(state.seen_at),
        "publish_failing_since": iso(state.publish_failing_since),
    }
