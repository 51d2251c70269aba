"""Turn request bodies into typed requests, checking every field before MongoDB sees it.

Every failure raises `InvalidParameter` (or `UnknownService`) with what exactly is wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taskmill.config import Config
from taskmill.errors import InvalidParameter, UnknownService
from taskmill.schema import WORKER_TRANSITIONS, Status

MAX_TASK_ID_LEN = 200
MAX_DEPTH = 32  # levels of nesting in a body
INT64 = (-(2**63), 2**63 - 1)  # what BSON can hold
MAX_P_SIZE = 100
MAX_PAGE = 1_000_000


@dataclass(frozen=True)
class CreateTask:
    service: str
    condition: dict[str, Any]
    start: bool


@dataclass(frozen=True)
class TaskRef:
    task_id: str


@dataclass(frozen=True)
class StatusQuery:
    task_ids: list[str]


@dataclass(frozen=True)
class StatusUpdate:
    task_id: str
    status: Status
    message: Any
    result: dict[str, Any] | None
    attempt: int | None
    retry: bool


@dataclass(frozen=True)
class Heartbeat:
    task_id: str
    attempt: int | None
    progress: float | None
    message: Any


@dataclass(frozen=True)
class ListQuery:
    page: int
    p_size: int
    service: str | None
    status: str | None


@dataclass(frozen=True)
class ConditionUpdate:
    task_id: str
    condition: dict[str, Any]


class Validator:
    """Parses bodies against the configured services and limits."""

    def __init__(self, config: Config) -> None:
        self._config = config

    def create_task(self, body: Any) -> CreateTask:
        data = _fields(_data(body), required=("service", "condition"), optional=("start",))
        start = data.get("start", False)
        if not isinstance(start, bool):
            raise InvalidParameter("start must be true or false")
        return CreateTask(service=self._service(data["service"]),
                          condition=self._condition(data["condition"]), start=start)

    def status_task(self, body: Any) -> StatusQuery:
        items = _data(body, kind=list)
        limit = self._config.max_status_task
        if not 1 <= len(items) <= limit:
            raise InvalidParameter(f"data must list 1 to {limit} tasks, not {len(items)}")
        ids = []
        for i, item in enumerate(items):
            fields = _fields(_object(item, f"data[{i}]"), required=("task_id",), where=f"data[{i}]")
            ids.append(_task_id(fields["task_id"], f"data[{i}].task_id"))
        return StatusQuery(task_ids=ids)

    def update_status(self, body: Any) -> StatusUpdate:
        data = _fields(_data(body), required=("task_id", "status"),
                       optional=("message", "result", "attempt", "retry"))
        status = data["status"]
        allowed = [s.value for s in WORKER_TRANSITIONS]
        if status not in allowed:
            raise InvalidParameter(f"status must be one of {', '.join(allowed)}")
        result = data.get("result")
        if result is not None:
            if status != Status.FINISHED:
                raise InvalidParameter("result is only accepted with status finished")
            result = _json_object(result, "result")
        message = data.get("message")
        _check_keys(message, "message")
        retry = data.get("retry", False)
        if not isinstance(retry, bool):
            raise InvalidParameter("retry must be true or false")
        if retry and status != Status.FAILED:
            raise InvalidParameter("retry is only accepted with status failed")
        return StatusUpdate(task_id=_task_id(data["task_id"]), status=Status(status),
                            message=message, result=result, attempt=_attempt(data), retry=retry)

    def heartbeat(self, body: Any) -> Heartbeat:
        data = _fields(_data(body), required=("task_id",), optional=("attempt", "progress", "message"))
        progress = data.get("progress")
        if progress is not None and (not isinstance(progress, int | float)
                                     or isinstance(progress, bool) or not 0 <= progress <= 1):
            raise InvalidParameter("progress must be a number between 0 and 1")
        message = data.get("message")
        _check_keys(message, "message")
        return Heartbeat(task_id=_task_id(data["task_id"]), attempt=_attempt(data),
                         progress=None if progress is None else float(progress), message=message)

    def task_ref(self, body: Any, wrapped_only: bool = False) -> TaskRef:
        data = _data(body) if wrapped_only else _maybe_wrapped(body)
        data = _fields(data, required=("task_id",))
        return TaskRef(task_id=_task_id(data["task_id"]))

    def update_task(self, body: Any) -> ConditionUpdate:
        data = _fields(_maybe_wrapped(body), required=("task_id", "condition"))
        return ConditionUpdate(task_id=_task_id(data["task_id"]),
                               condition=self._condition(data["condition"]))

    def list_tasks(self, body: Any) -> ListQuery:
        data = _fields(_object(body, "body"), optional=("p_size", "page", "service", "status"))
        p_size = _int_in(data.get("p_size", 10), "p_size", 1, MAX_P_SIZE)
        page = _int_in(data.get("page", 1), "page", 1, MAX_PAGE)
        service = data.get("service")
        if service is not None:
            service = self._service(service)
        status = data.get("status")
        if status is not None and status not in [s.value for s in Status]:
            raise InvalidParameter(f"status must be one of {', '.join(s.value for s in Status)}")
        return ListQuery(page=page, p_size=p_size, service=service, status=status)

    def empty(self, body: Any) -> None:
        if body not in (None, {}):
            _fields(_object(body, "body"))

    def _condition(self, value: Any) -> dict[str, Any]:
        """A condition: a JSON object that fits in one Kafka message with room to spare."""
        condition = _json_object(value, "condition")
        limit = self._config.api.max_condition_bytes
        if len(json.dumps(condition, ensure_ascii=False).encode()) > limit:
            raise InvalidParameter(f"condition is larger than {limit} bytes of JSON")
        return condition

    def _service(self, value: Any) -> str:
        if not isinstance(value, str):
            raise InvalidParameter("service must be a string")
        if value not in self._config.services:
            raise UnknownService(value)
        return value


def _data(body: Any, kind: type = dict) -> Any:
    body = _object(body, "body")
    _fields(body, required=("data",))
    data = body["data"]
    if not isinstance(data, kind):
        what = "an object" if kind is dict else "a list"
        raise InvalidParameter(f"data must be {what}")
    return data


def _maybe_wrapped(body: Any) -> Mapping[str, Any]:
    body = _object(body, "body")
    if "data" in body and len(body) == 1:
        return _object(body["data"], "data")
    return body


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise InvalidParameter(f"{where} must be a JSON object")
    return value


def _fields(data: Mapping[str, Any], required: tuple[str, ...] = (),
            optional: tuple[str, ...] = (), where: str = "") -> Mapping[str, Any]:
    prefix = f"{where}." if where else ""
    for name in required:
        if name not in data:
            raise InvalidParameter(f"{prefix}{name} is required")
    for name in data:
        if name not in required and name not in optional:
            raise InvalidParameter(f"unknown field {prefix}{name}")
    return data


def _task_id(value: Any, where: str = "task_id") -> str:
    if not isinstance(value, str) or not value:
        raise InvalidParameter(f"{where} must be a non-empty string")
    if len(value) > MAX_TASK_ID_LEN:
        raise InvalidParameter(f"{where} is longer than {MAX_TASK_ID_LEN} characters")
    return value


def _json_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidParameter(f"{where} must be a JSON object")
    _check_keys(value, where)
    return value


def _check_keys(value: Any, where: str) -> None:
    # MongoDB reserves `$` prefixes and `.` in field names; refuse them anywhere.
    if isinstance(value, dict):
        for key, item in value.items():
            if key.startswith("$") or "." in key:
                raise InvalidParameter(f"{_clip(where)} has a key {key[:60]!r}: keys must not start "
                                       "with '$' or contain '.'")
            _check_keys(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_keys(item, f"{where}[{i}]")


def check_storable(body: Any) -> None:
    """Refuse a body holding a value the store cannot hold: a number that is not finite or
    an integer outside 64 bits, a string or key with NUL or a lone surrogate, or nesting
    deeper than MAX_DEPTH. (Walked without recursion: the body may be hostile.)"""
    todo: list[tuple[Any, str, int]] = [(body, "body", 0)]
    while todo:
        value, where, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise InvalidParameter(f"{_clip(where)} is nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, f"a key of {where}")
                todo.append((item, f"{where}.{key}", depth + 1))
        elif isinstance(value, list):
            todo += [(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
        elif isinstance(value, str):
            _check_text(value, where)
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
            raise InvalidParameter(f"{_clip(where)} is an integer outside the 64-bit range")
        elif isinstance(value, float) and not math.isfinite(value):
            raise InvalidParameter(f"{_clip(where)} is not a finite number")


def _check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise InvalidParameter(f"{_clip(where)} holds a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as ex:
        raise InvalidParameter(f"{_clip(where)} holds a lone UTF-16 surrogate") from ex


def _clip(where: str, limit: int = 120) -> str:
    return where if len(where) <= limit else where[:limit] + "…"


def _attempt(data: Mapping[str, Any]) -> int | None:
    attempt = data.get("attempt")
    if attempt is not None and (not _is_int(attempt) or attempt < 0):
        raise InvalidParameter("attempt must be a non-negative integer")
    return attempt


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_in(value: Any, name: str, low: int, high: int) -> int:
    if not _is_int(value) or not low <= value <= high:
        raise InvalidParameter(f"{name} must be an integer between {low} and {high}")
    return int(value)
