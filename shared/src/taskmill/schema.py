"""The task schema, defined once: statuses, allowed transitions, ids and times."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum


class Status(StrEnum):
    """The statuses a stored task can have."""

    READY = "ready"
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


# What status_task answers for a task_id that does not exist (original section 1.2).
INVALID = "Invalid"

# Statuses a worker may report, and from which statuses (API.md, update_status_task).
# A task whose start is recorded but whose publication is not yet confirmed is still
# `ready`; a worker that holds its message may report `running` on it (see store).
WORKER_TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.RUNNING: frozenset({Status.WAITING}),
    Status.FINISHED: frozenset({Status.RUNNING}),
    Status.FAILED: frozenset({Status.WAITING, Status.RUNNING}),
}

# start_task is allowed from these (failed: run it again).
STARTABLE = frozenset({Status.READY, Status.FAILED})

# update_task (change the condition) is refused in these.
BUSY = frozenset({Status.WAITING, Status.RUNNING})

FINAL = frozenset({Status.FINISHED, Status.FAILED})

SERVICE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
TASK_ID = re.compile(r"^ts_(?P<service>[a-z][a-z0-9_]{0,62})_(?P<uuid>[0-9a-f]{32})$")


def new_task_id(service: str, uuidgen: Callable[[], uuid.UUID] = uuid.uuid4) -> str:
    """Return a fresh task id, `ts_<service>_<uuid4 hex>`."""
    return f"ts_{service}_{uuidgen().hex}"


# Names the task ids of idempotency keys (a UUID of ours; any fixed one would do).
KEYED_IDS = uuid.UUID("6f2c1e4a-3b7d-4c5e-9a8f-1d2e3f4a5b6c")


def keyed_task_id(service: str, idempotency_key: str) -> str:
    """The task id a service's idempotency key stands for, `ts_<service>_<uuid5 hex>`: the
    same key always names the same task, and never one with a random (version 4) id."""
    return f"ts_{service}_{uuid.uuid5(KEYED_IDS, f'{service}/{idempotency_key}').hex}"


def service_of(task_id: str) -> str | None:
    """The service a task id names (None: not a task id)."""
    match = TASK_ID.match(task_id)
    return None if match is None else match["service"]


def is_task_id(value: object) -> bool:
    """Tell whether value has the shape of a task id."""
    return isinstance(value, str) and TASK_ID.match(value) is not None


# What reads the time of the tasks: utcnow, or a test's own clock.
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Return the current time in UTC, truncated to milliseconds as MongoDB stores it."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def iso(value: datetime | None) -> str | None:
    """Format a time as the contract does: ISO 8601, UTC, milliseconds, `Z`."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
