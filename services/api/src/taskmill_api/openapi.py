"""The OpenAPI 3.1 description of the api, served at /api/openapi.json."""

from __future__ import annotations

from typing import Any

from taskmill.config import Config
from taskmill.schema import Status

STATUSES = [s.value for s in Status]
TIME = {"type": ["string", "null"], "format": "date-time", "example": "2026-11-28T06:30:00.123Z"}
TASK_ID = {"type": "string", "pattern": "^ts_[a-z][a-z0-9_]*_[0-9a-f]{32}$"}
OBJECT = {"type": "object", "additionalProperties": True}


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props,
            "additionalProperties": False}


def _wrapped(inner: dict[str, Any]) -> dict[str, Any]:
    return _obj(["data"], data=inner)


def _ok(**props: Any) -> dict[str, Any]:
    return _obj(["result", *props], result={"const": "ok"}, **props)


ERRORS = {
    "400": "Invalid parameter (the message says which), or a body that is not JSON.",
    "401": "Missing or wrong token.",
    "404": "Unknown task_id.",
    "409": "The task's state does not allow the change (the message names both states).",
    "413": "Body larger than the configured limit.",
    "415": "Content-Type is not application/json.",
    "503": "MongoDB is unavailable.",
}


def _operation(summary: str, body: dict[str, Any] | None, answer: dict[str, Any],
               errors: tuple[str, ...]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {"200": {"description": "ok", "content": {
            "application/json": {"schema": answer}}}},
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    for code in ("400", "401", *errors, "413", "415", "503"):
        op["responses"][code] = {"description": ERRORS[code], "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Exception"}}}}
    return {"post": op}


def document(config: Config) -> dict[str, Any]:
    """Return the OpenAPI document for this configuration."""
    services = list(config.services)
    status_item = _obj(["task_id", "status", "message", "start_time", "end_time"],
                       task_id={"type": "string"}, status={"enum": [*STATUSES, "Invalid"]},
                       message={}, start_time=TIME, end_time=TIME,
                       attempt={"type": "integer"}, progress={"type": ["number", "null"]})
    task_ref = _obj(["task_id"], task_id=TASK_ID)
    paths = {
        "/api/create_task": _operation(
            "Create a task (createTask); `start: true` also starts it.",
            _wrapped(_obj(["service", "condition"], service={"enum": services},
                          condition=OBJECT, start={"type": "boolean"})),
            _ok(task_id=TASK_ID), ()),
        "/api/status_task": _operation(
            "Statuses of up to max_status_task tasks (statusTask), in the order asked.",
            _wrapped({"type": "array", "minItems": 1, "maxItems": config.max_status_task,
                      "items": _obj(["task_id"], task_id={"type": "string"})}),
            _ok(status={"type": "array", "items": status_item}), ()),
        "/api/update_status_task": _operation(
            "A worker reports running, finished or failed (updateStatusTask).",
            _wrapped(_obj(["task_id", "status"], task_id=TASK_ID,
                          status={"enum": ["running", "finished", "failed"]}, message={},
                          result=OBJECT, attempt={"type": "integer", "minimum": 0},
                          retry={"type": "boolean", "description": "failed, but may succeed if "
                                 "run again: the service's retry policy decides"})),
            _ok(status=_obj(["task_id", "status"], task_id=TASK_ID, status={"enum": STATUSES})),
            ("404", "409")),
        "/api/heartbeat_task": _operation(
            "A worker renews a running task's lease, with optional progress (extension).",
            _wrapped(_obj(["task_id"], task_id=TASK_ID, attempt={"type": "integer", "minimum": 0},
                          progress={"type": "number", "minimum": 0, "maximum": 1}, message={})),
            _ok(status=_obj(["task_id", "status"], task_id=TASK_ID, status={"enum": STATUSES},
                            lease_until=TIME)), ("404", "409")),
        "/api/result_task": _operation(
            "The result of a finished task (resultTask); data is null until then.",
            _wrapped(task_ref),
            _ok(status={"enum": STATUSES}, data={"type": ["object", "null"]}, start_time=TIME,
                end_time=TIME, spend_time={"type": ["number", "null"]}), ("404",)),
        "/api/tasks": _operation(
            "One page of tasks, newest first (taskList).",
            _obj([], p_size={"type": "integer", "minimum": 1, "maximum": 100},
                 page={"type": "integer", "minimum": 1}, service={"enum": services},
                 status={"enum": STATUSES}),
            _ok(total={"type": "integer"}, count={"type": "integer"}, data={
                "type": "array", "items": _obj(
                    ["task_id", "service", "status", "condition", "create_time"],
                    task_id=TASK_ID, service={"type": "string"}, status={"enum": STATUSES},
                    condition=OBJECT, create_time=TIME)}), ()),
        "/api/start_task": _operation(
            "Start a ready task, or run a failed one again (startTask).",
            {"oneOf": [task_ref, _wrapped(task_ref)]}, _ok(task_id=TASK_ID), ("404", "409")),
        "/api/update_task": _operation(
            "Change the condition of a task that is not waiting or running (updateTask).",
            {"oneOf": [_obj(["task_id", "condition"], task_id=TASK_ID, condition=OBJECT),
                       _wrapped(_obj(["task_id", "condition"], task_id=TASK_ID,
                                     condition=OBJECT))]},
            _ok(task_id=TASK_ID), ("404", "409")),
        "/api/service_task": _operation(
            "The configured services (serviceTask).", None,
            _ok(count={"type": "integer"}, data={"type": "array", "items": {"type": "string"}}),
            ()),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Taskmill", "version": "0.1.0",
                 "description": "Schedules long-running algorithm tasks. Every route but "
                                "/healthz, /readyz, /metrics and this document needs the "
                                "header `Authorization: <token>` (or `Bearer <token>`)."},
        "paths": paths,
        "components": {
            "securitySchemes": {"token": {"type": "apiKey", "in": "header",
                                          "name": "Authorization"}},
            "schemas": {"Exception": _obj(["result", "message"], result={"const": "exception"},
                                          message={"type": "string"})},
        },
        "security": [{"token": []}],
    }
