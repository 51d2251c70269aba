"""Turn request bodies into typed requests, checking every field before MongoDB sees it.

A body is first checked to hold only values the store can hold (`check_storable`), then
against its route's schema in `contract` (the same one /api/openapi.json publishes). Every
failure raises `InvalidParameter` (or `UnknownService`) with what exactly is wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from taskmill.config import Config
from taskmill.errors import InvalidParameter
from taskmill.schema import Status
from taskmill.store.documents import DEFAULT_PRIORITY
from taskmill.store.reports import Report
from taskmill_api import contract
from taskmill_api.contract import MAX_DEPTH
from taskmill_api.schema_check import Checker, Path, vet, where

INT64 = (-(2**63), 2**63 - 1)  # what BSON can hold
NO_BODY = object()  # a request without a body (JSON `null` is a body, and not an object)


@dataclass(frozen=True)
class CreateTask:
    service: str
    condition: dict[str, Any]
    start: bool
    idempotency_key: str | None
    priority: int


@dataclass(frozen=True)
class TaskRef:
    task_id: str


@dataclass(frozen=True)
class Cancel:
    task_id: str
    reason: str | None


@dataclass(frozen=True)
class StatusQuery:
    task_ids: list[str]


@dataclass(frozen=True)
class StatusUpdates:
    """One report, or a list of them (`listed`: answered as a list)."""

    reports: list[Report]
    listed: bool


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
    """Checks bodies against the contract's request schemas, then types them."""

    def __init__(self, config: Config) -> None:
        self._schemas = contract.requests(config)
        self._checker = Checker(contract.COMPONENTS)
        for schema in self._schemas.values():
            vet(schema)

    def _body(self, route: str, body: Any) -> Any:
        if body is NO_BODY:
            body = {} if route in contract.OPTIONAL_BODY else None
        return self._checker.check(self._schemas[route], body)

    def create_task(self, body: Any) -> CreateTask:
        data = self._body("/api/create_task", body)["data"]
        return CreateTask(service=data["service"], condition=data["condition"],
                          start=data.get("start", False),
                          idempotency_key=data.get("idempotency_key"),
                          priority=data.get("priority", DEFAULT_PRIORITY))

    def status_task(self, body: Any) -> StatusQuery:
        items = self._body("/api/status_task", body)["data"]
        return StatusQuery(task_ids=[item["task_id"] for item in items])

    def update_status(self, body: Any) -> StatusUpdates:
        data = self._body("/api/update_status_task", body)["data"]
        listed = isinstance(data, list)
        return StatusUpdates([_status_update(item) for item in (data if listed else [data])],
                             listed)

    def heartbeat(self, body: Any) -> Heartbeat:
        data = self._body("/api/heartbeat_task", body)["data"]
        progress = data.get("progress")
        return Heartbeat(task_id=data["task_id"], attempt=data.get("attempt"),
                         progress=None if progress is None else float(progress),
                         message=data.get("message"))

    def result_task(self, body: Any) -> TaskRef:
        return TaskRef(task_id=self._body("/api/result_task", body)["data"]["task_id"])

    def start_task(self, body: Any) -> TaskRef:
        return TaskRef(task_id=_unwrapped(self._body("/api/start_task", body))["task_id"])

    def update_task(self, body: Any) -> ConditionUpdate:
        data = _unwrapped(self._body("/api/update_task", body))
        return ConditionUpdate(task_id=data["task_id"], condition=data["condition"])

    def list_tasks(self, body: Any) -> ListQuery:
        data = self._body("/api/tasks", body)
        return ListQuery(page=data.get("page", 1), p_size=data.get("p_size", 10),
                         service=data.get("service"), status=data.get("status"))

    def cancel_task(self, body: Any) -> Cancel:
        data = _unwrapped(self._body("/api/cancel_task", body))
        return Cancel(task_id=data["task_id"], reason=data.get("reason") or None)

    def service_task(self, body: Any) -> None:
        self._body("/api/service_task", body)

    def service_stats(self, body: Any) -> None:
        self._body("/api/service_stats", body)


def _status_update(data: dict[str, Any]) -> Report:
    return Report(task_id=data["task_id"], status=Status(data["status"]),
                  message=data.get("message"), result=data.get("result"),
                  attempt=data.get("attempt"), retry=data.get("retry", False),
                  worker=data.get("worker"))


def _unwrapped(body: dict[str, Any]) -> dict[str, Any]:
    """The fields of a body that may carry them inside `data` or bare."""
    return body["data"] if set(body) == {"data"} else body


def check_storable(body: Any) -> None:
    """Refuse a body holding a value the store cannot hold: a number that is not finite or
    an integer outside 64 bits, a string or key with NUL or a lone surrogate, or nesting
    deeper than MAX_DEPTH. (Walked without recursion: the body may be hostile.)"""
    todo: list[tuple[Any, Path]] = [(body, ())]
    while todo:
        value, path = todo.pop()
        if len(path) > MAX_DEPTH:
            raise InvalidParameter(f"{where(path)} is nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, f"a key of {where(path)}")
                todo.append((item, (*path, key)))
        elif isinstance(value, list):
            todo += [(item, (*path, i)) for i, item in enumerate(value)]
        elif isinstance(value, str):
            _check_text(value, where(path))
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
            raise InvalidParameter(f"{where(path)} is an integer outside the 64-bit range")
        elif isinstance(value, float) and not math.isfinite(value):
            raise InvalidParameter(f"{where(path)} is not a finite number")


def _check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise InvalidParameter(f"{where} holds a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as ex:
        raise InvalidParameter(f"{where} holds a lone UTF-16 surrogate") from ex
