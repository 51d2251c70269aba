"""The api's answers as typed values (times as aware datetimes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

FINAL = frozenset({"finished", "failed"})
UNKNOWN = "Invalid"  # status_task's status of a task that does not exist


def when(value: str | None) -> datetime | None:
    """A contract time (`2026-11-28T06:30:00.123Z`) as a datetime."""
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class TaskStatus:
    """One item of status_task: where a task is, and why it waits if it does."""

    task_id: str
    status: str  # ready, waiting, running, finished, failed, or Invalid (unknown task)
    message: Any = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    attempt: int = 0
    progress: float | None = None
    cancelled: bool = False
    pending_reason: str | None = None
    queue_position: int | None = None

    @property
    def known(self) -> bool:
        """False for an id the api does not know."""
        return self.status != UNKNOWN

    @property
    def final(self) -> bool:
        """Ended (finished or failed), or unknown: nothing more will happen to it."""
        return self.status in FINAL or not self.known

    @classmethod
    def parse(cls, item: Mapping[str, Any]) -> TaskStatus:
        return cls(task_id=item["task_id"], status=item["status"], message=item.get("message"),
                   start_time=when(item.get("start_time")), end_time=when(item.get("end_time")),
                   attempt=item.get("attempt", 0), progress=item.get("progress"),
                   cancelled=bool(item.get("cancelled")), pending_reason=item.get("pending_reason"),
                   queue_position=item.get("queue_position"))


@dataclass(frozen=True)
class HistoryEvent:
    """One transition of a task."""

    status: str
    time: datetime | None
    attempt: int
    message: Any = None


@dataclass(frozen=True)
class TaskResult:
    """result_task: the result once finished, and the whole history."""

    task_id: str
    status: str
    data: dict[str, Any] | None
    message: Any = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    spend_time: float | None = None
    attempt: int = 0
    cancelled: bool = False
    history: tuple[HistoryEvent, ...] = ()

    @classmethod
    def parse(cls, answer: Mapping[str, Any]) -> TaskResult:
        return cls(task_id=answer["task_id"], status=answer["status"], data=answer.get("data"),
                   message=answer.get("message"), start_time=when(answer.get("start_time")),
                   end_time=when(answer.get("end_time")), spend_time=answer.get("spend_time"),
                   attempt=answer.get("attempt", 0), cancelled=bool(answer.get("cancelled")),
                   history=tuple(HistoryEvent(e["status"], when(e.get("time")), e.get("attempt", 0),
                                              e.get("message")) for e in answer.get("history", [])))


@dataclass(frozen=True)
class TaskSummary:
    """One item of the tasks list."""

    task_id: str
    service: str
    status: str
    condition: dict[str, Any]
    create_time: datetime | None


@dataclass(frozen=True)
class TaskPage:
    """One page of the tasks list, newest first, and how many match in all."""

    total: int
    tasks: list[TaskSummary] = field(default_factory=list)

    @classmethod
    def parse(cls, answer: Mapping[str, Any]) -> TaskPage:
        return cls(total=answer["total"], tasks=[
            TaskSummary(t["task_id"], t["service"], t["status"], t["condition"],
                        when(t.get("create_time"))) for t in answer.get("data", [])])


@dataclass(frozen=True)
class Created:
    """create_task's answer: the task, and with an idempotency key whether it is new."""

    task_id: str
    created: bool = True


@dataclass(frozen=True)
class ServiceStats:
    """One service at a glance (service_stats): its tasks by status, the tasks that ended
    in the last hour, its run times, live workers and circuit breaker."""

    service: str
    counts: dict[str, int]
    finished_last_hour: int
    failed_last_hour: int
    per_minute: float
    failure_rate: float | None  # None: nothing ended in the last hour
    median_run_s: float | None  # None: nothing finished yet
    p95_run_s: float | None
    workers: int | None  # None: not known (no dispatcher has looked yet, or a share group)
    breaker: str  # closed, open or half_open
    breaker_until: datetime | None = None
    dispatcher_seen_at: datetime | None = None
    publish_failing_since: datetime | None = None

    @classmethod
    def parse(cls, item: Mapping[str, Any]) -> ServiceStats:
        hour, runs, breaker = item["last_hour"], item.get("run_time") or {}, item["breaker"]
        return cls(service=item["service"], counts=dict(item["counts"]),
                   finished_last_hour=hour["finished"], failed_last_hour=hour["failed"],
                   per_minute=hour["per_minute"], failure_rate=hour["failure_rate"],
                   median_run_s=runs.get("median_s"), p95_run_s=runs.get("p95_s"),
                   workers=item.get("workers"), breaker=breaker["state"],
                   breaker_until=when(breaker.get("until")),
                   dispatcher_seen_at=when(item.get("dispatcher_seen_at")),
                   publish_failing_since=when(item.get("publish_failing_since")))
