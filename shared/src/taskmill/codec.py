"""The Kafka message of the contract, exactly as the original design writes it.

Value: UTF-8 JSON `{"Task": {"task_id", "service", "source_name", "condition"}}` and
nothing else; the attempt number and trace id travel in headers. Key: the task_id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskmill.errors import MessageDecodeError
from taskmill.schema import is_task_id

ATTEMPT_HEADER = "taskmill-attempt"
TRACE_HEADER = "taskmill-trace-id"

Headers = Sequence[tuple[str, bytes | str | None]]


@dataclass(frozen=True)
class TaskMessage:
    """One task handed to a worker."""

    task_id: str
    service: str
    source_name: str
    condition: Mapping[str, Any]
    attempt: int | None = None
    trace_id: str | None = field(default=None, compare=False)

    def key(self) -> bytes:
        """Return the message key: the task_id."""
        return self.task_id.encode()

    def encode(self) -> bytes:
        """Return the message value, byte for byte the original's format."""
        body = {"Task": {"task_id": self.task_id, "service": self.service,
                         "source_name": self.source_name, "condition": self.condition}}
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    def headers(self) -> list[tuple[str, bytes]]:
        """Return the Kafka headers carrying what the value must not."""
        headers = []
        if self.attempt is not None:
            headers.append((ATTEMPT_HEADER, str(self.attempt).encode()))
        if self.trace_id is not None:
            headers.append((TRACE_HEADER, self.trace_id.encode()))
        return headers


def decode(value: bytes | None, headers: Headers | None = None) -> TaskMessage:
    """Parse a message value (and headers) into a TaskMessage, or raise MessageDecodeError."""
    if value is None:
        raise MessageDecodeError("message has no value")
    try:
        body = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as ex:
        raise MessageDecodeError(f"message value is not UTF-8 JSON: {ex}") from ex
    task = body.get("Task") if isinstance(body, dict) else None
    if not isinstance(task, dict):
        raise MessageDecodeError('message value has no "Task" object')
    for name in ("task_id", "service", "source_name"):
        if not isinstance(task.get(name), str):
            raise MessageDecodeError(f"Task.{name} must be a string")
    if not is_task_id(task["task_id"]):
        raise MessageDecodeError(f"Task.task_id {task['task_id']!r} is not a task id")
    if not isinstance(task.get("condition"), dict):
        raise MessageDecodeError("Task.condition must be an object")
    meta = _headers(headers)
    return TaskMessage(task_id=task["task_id"], service=task["service"],
                       source_name=task["source_name"], condition=task["condition"],
                       attempt=_attempt(meta.get(ATTEMPT_HEADER)), trace_id=meta.get(TRACE_HEADER))


def _headers(headers: Headers | None) -> dict[str, str]:
    out = {}
    for name, raw in headers or ():
        if raw is not None:
            out[name] = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return out


def _attempt(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise MessageDecodeError(f"header {ATTEMPT_HEADER} must be a positive integer, "
                                 f"not {raw[:40]!r}")
    return int(raw)
