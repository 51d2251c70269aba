"""The OpenAPI 3.1 description of the api, served at /api/openapi.json (token needed).

Every request and answer schema comes from `contract`, the same schemas the validator
enforces; this module only arranges them into operations.
"""

from __future__ import annotations

from typing import Any

from taskmill.config import Config
from taskmill_api import contract
from taskmill_api.contract import MAX_DEPTH, OPTIONAL_BODY, REF

SUMMARIES = {
    "/api/create_task": "Create a task (createTask); `start: true` also starts it.",
    "/api/status_task": "Statuses of up to max_status_task tasks (statusTask), in the order asked; "
                        "an unknown task_id is `Invalid`.",
    "/api/update_status_task": "A worker reports running, finished or failed (updateStatusTask). "
                               "The same report repeated for the same attempt answers as the first. "
                               "`data` may be a list of reports (extension): all are checked "
                               "first, then each is applied and answered as if sent alone.",
    "/api/heartbeat_task": "A worker renews a running task's lease, with optional progress "
                           "(extension).",
    "/api/result_task": "The result of a finished task (resultTask); data is null until then.",
    "/api/tasks": "One page of tasks, newest first (taskList). The body may be left out.",
    "/api/start_task": "Start a ready task, or run a failed one again (startTask).",
    "/api/update_task": "Change the condition of a task that is not waiting or running "
                        "(updateTask).",
    "/api/service_task": "The configured services (serviceTask).",
    "/api/service_stats": "Each configured service at a glance (extension): its tasks by "
                          "status, those ended in the last hour, run times, live workers and "
                          "its circuit breaker. The body may be left out.",
    "/api/cancel_task": "Cancel a task (extension): ready or waiting ends failed at once; a "
                        "running one's worker is asked to stop, and the task ends failed "
                        "within lifecycle.cancel_grace_s. 409 once it has ended.",
}

# Which routes name one task (404 when it does not exist) or may conflict with what is
# stored (409: its state, or an idempotency key's first request).
ONE_TASK = ("/api/update_status_task", "/api/heartbeat_task", "/api/result_task",
            "/api/start_task", "/api/update_task", "/api/cancel_task")
MAY_CONFLICT = ("/api/create_task", "/api/update_status_task", "/api/heartbeat_task",
                "/api/start_task", "/api/update_task", "/api/cancel_task")

# What a client can do next with the task_id create_task answers (OpenAPI links: they
# document the flow and let a stateful test follow it).
NEW_TASK = "$response.body#/task_id"
LINKS = {"/api/create_task": {
    "status": {"operationId": "status_task", "requestBody": {"data": [{"task_id": NEW_TASK}]}},
    "start": {"operationId": "start_task", "requestBody": {"task_id": NEW_TASK}},
    "result": {"operationId": "result_task", "requestBody": {"data": {"task_id": NEW_TASK}}},
    "update": {"operationId": "update_task",
               "requestBody": {"task_id": NEW_TASK, "condition": {"changed": True}}},
    "report": {"operationId": "update_status_task",
               "requestBody": {"data": {"task_id": NEW_TASK, "status": "failed",
                                        "message": "given up"}}},
    "heartbeat": {"operationId": "heartbeat_task", "requestBody": {"data": {"task_id": NEW_TASK}}},
    "cancel": {"operationId": "cancel_task", "requestBody": {"task_id": NEW_TASK}},
}}

ERRORS = {
    "400": "Invalid parameter (the message says which and where), or a body that is not JSON.",
    "401": "Missing or wrong token.",
    "403": "The token's role does not allow the call (a client reporting, a worker reporting "
           "on another service's task); nothing changes.",
    "404": "Unknown task_id.",
    "409": "The task's state does not allow the change (the message names both states), or "
           "an idempotency_key was used before for another request.",
    "413": "Body larger than api.max_body_bytes.",
    "415": "Content-Type is not application/json.",
    "429": "The token is over its rate limit; the Retry-After header says when to try again. "
           "Nothing changes.",
    "503": "The task store is unavailable.",
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation(route: str, body: dict[str, Any] | None, answer: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.rsplit("/", 1)[1],
        "summary": SUMMARIES[route],
        "requestBody": {"required": route not in OPTIONAL_BODY, "content": _json(body)},
        "responses": {"200": {"description": "ok", "content": _json(answer)}},
    }
    if route in LINKS:
        op["responses"]["200"]["links"] = LINKS[route]
    codes = ["400", "401", "403", *(["404"] if route in ONE_TASK else []),
             *(["409"] if route in MAY_CONFLICT else []), "413", "415", "429", "503"]
    for code in codes:
        op["responses"][code] = {"description": ERRORS[code],
                                 "content": _json({"$ref": REF + "Exception"})}
    return {"post": op}


def document(config: Config) -> dict[str, Any]:
    """Return the OpenAPI document for this configuration."""
    requests, answers = contract.requests(config), contract.answers(config)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Taskmill", "version": "0.1.0", "description": (
            "Schedules long-running algorithm tasks. Every route but /healthz, /readyz and "
            "/metrics needs the header `Authorization: <token>` (or `Bearer <token>`) of a "
            "token whose role allows it: client (every route but the workers' reports), "
            "worker (update_status_task and heartbeat_task on its services' tasks, naming "
            "the attempt) or admin. "
            f"Bodies are at most {config.api.max_body_bytes} bytes (413 past it). Anywhere in a "
            "body, a value the store cannot hold is a 400: NaN or ±Infinity, an integer outside "
            "the signed 64-bit range, a string or key holding NUL or a lone UTF-16 surrogate, "
            f"nesting deeper than {MAX_DEPTH} levels.")},
        "paths": {route: _operation(route, requests[route], answers[route]) for route in requests},
        "components": {
            "securitySchemes": {"token": {"type": "apiKey", "in": "header",
                                          "name": "Authorization"}},
            "schemas": contract.COMPONENTS,
        },
        "security": [{"token": []}],
    }
