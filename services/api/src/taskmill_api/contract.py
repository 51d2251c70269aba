"""Every request and answer of the api as JSON Schema (2020-12), written once.

`validation` checks each request against `requests(config)` and `openapi` publishes both
mappings at /api/openapi.json, so what the api enforces and what it documents cannot
drift apart. Two keywords of ours ride along (OpenAPI allows `x-` extensions): `x-maxJsonBytes`
(the largest a value may be as compact JSON) and `x-unknownService` (a value outside the
enum is an unknown service: the original's `service not support`).
"""

from __future__ import annotations

from typing import Any

from taskmill.config import Config
from taskmill.schema import FINAL, INVALID, WORKER_TRANSITIONS, Status
from taskmill.store.documents import DEFAULT_PRIORITY
from taskmill.store.pending import POSITION_CAP
from taskmill.store.service_states import BreakerState

Schema = dict[str, Any]

MAX_TASK_ID_LEN = 200
MAX_DEPTH = 32  # levels of nesting in a body
MAX_P_SIZE = 100
MAX_PAGE = 1_000_000
MAX_REASON_LEN = 500

STATUSES = [s.value for s in Status]
REF = "#/components/schemas/"
JSON_VALUE = {"$ref": REF + "JsonValue"}
JSON_OBJECT = {"$ref": REF + "JsonObject"}
TIME = {"type": ["string", "null"], "format": "date-time", "example": "2026-11-28T06:30:00.123Z"}
NEW_TASK_ID = {"type": "string", "pattern": "^ts_[a-z][a-z0-9_]*_[0-9a-f]{32}$"}
# A task_id a caller names: any non-empty string; one that was never created is a 404 (or
# `Invalid` in status_task), not a 400.
TASK_ID = {"type": "string", "minLength": 1, "maxLength": MAX_TASK_ID_LEN}
ATTEMPT = {"type": ["integer", "null"], "minimum": 0}
CANCELLED = {"type": "boolean", "description": "the task ended because it was cancelled"}
WORKER = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[!-~]+$",
          "description": "the reporting worker's name (printable ASCII, no spaces): a `running` "
                         "report of an attempt already running on another worker is a 409, so "
                         "a message delivered twice never runs twice at once"}
IDEMPOTENCY_KEY = {
    "type": "string", "pattern": r"^[\x20-\x7e]{1,128}$",
    "description": "1 to 128 printable ASCII characters: a create with the same service and "
                   "key answers the task the first one made (a different request is a 409)"}
PRIORITY = {"type": "integer", "minimum": 0, "maximum": 9, "default": DEFAULT_PRIORITY,
            "description": "0 (lowest) to 9 (highest): among a service's started tasks waiting "
                           "for a worker, higher runs first; equal ones oldest start first"}
PENDING_REASON = {
    "type": ["string", "null"],
    "description": "why a ready or waiting task is not running yet, e.g. `not started`, "
                   "`queued: 37 tasks of aaa ahead`, `retry after <time>`, `publication delayed: "
                   "Kafka unavailable since <time>`, `no live worker for aaa since <time>`, "
                   "`service aaa paused after 10 failures in a row; next try at <time>`; null "
                   "for other statuses"}
QUEUE_POSITION = {
    "type": ["integer", "null"], "minimum": 0,
    "description": "how many started tasks of its service run before it (null: not started, "
                   f"in a retry's backoff, more than {POSITION_CAP} ahead, or not ready/waiting)"}
KEY = {"type": "string", "pattern": r"^(?:[^$.][^.]*)?$",
       "description": "keys must not start with '$' or contain '.'"}

COMPONENTS: dict[str, Schema] = {
    "JsonValue": {"description": "Any JSON value the store can hold; object keys anywhere in it "
                                 "must not start with '$' or contain '.'.",
                  "propertyNames": KEY, "additionalProperties": JSON_VALUE, "items": JSON_VALUE},
    "JsonObject": {"type": "object", "propertyNames": KEY, "additionalProperties": JSON_VALUE},
    "Exception": {"type": "object", "required": ["result", "message"], "additionalProperties": False,
                  "properties": {"result": {"const": "exception"}, "message": {"type": "string"}}},
}


def obj(required: list[str], **props: Schema) -> Schema:
    """An object with exactly these properties, the listed ones required."""
    return {"type": "object", "required": required, "properties": props,
            "additionalProperties": False}


def wrapped(inner: Schema) -> Schema:
    return obj(["data"], data=inner)


def wrapped_or_bare(inner: Schema) -> Schema:
    """start_task and update_task accept their fields bare or inside `data`."""
    return {"anyOf": [inner, wrapped(inner)]}


def only_with(field: str, status: Status, when: Schema) -> Schema:
    """A rule: `field` (matching `when`) is accepted only with this status."""
    return {"description": f"{field} is only accepted with status {status.value}",
            "if": {"required": [field], "properties": {field: when}},
            "then": {"properties": {"status": {"const": status.value}}}}


def ok(optional: dict[str, Schema] | None = None, **props: Schema) -> Schema:
    """An ok answer with these properties, and the optional ones it may carry."""
    return obj(["result", *props], result={"const": "ok"}, **props, **(optional or {}))


def requests(config: Config) -> dict[str, Schema | None]:
    """The body each route accepts (None: no body is needed)."""
    service = {"type": "string", "enum": list(config.services), "x-unknownService": True}
    condition = {**JSON_OBJECT, "x-maxJsonBytes": config.api.max_condition_bytes,
                 "description": f"A JSON object of at most {config.api.max_condition_bytes} "
                                "bytes as compact JSON."}
    report = {
        **obj(["task_id", "status"], task_id=TASK_ID,
              status={"enum": [s.value for s in WORKER_TRANSITIONS]}, message=JSON_VALUE,
              result={"anyOf": [JSON_OBJECT, {"type": "null"}]}, attempt=ATTEMPT,
              retry={"type": "boolean", "description": "failed, but may succeed if run "
                                                      "again: the service's retry policy decides"},
              worker=WORKER),
        "allOf": [only_with("result", Status.FINISHED, {"type": "object"}),
                  only_with("retry", Status.FAILED, {"const": True})]}
    return {
        "/api/create_task": wrapped(obj(["service", "condition"], service=service,
                                        condition=condition, start={"type": "boolean"},
                                        idempotency_key=IDEMPOTENCY_KEY, priority=PRIORITY)),
        "/api/status_task": wrapped({"type": "array", "minItems": 1,
                                     "maxItems": config.max_status_task,
                                     "items": obj(["task_id"], task_id=TASK_ID)}),
        "/api/update_status_task": wrapped({"anyOf": [report, {
            "type": "array", "minItems": 1, "maxItems": config.max_status_task, "items": report,
            "description": f"1 to {config.max_status_task} reports (max_status_task), applied "
                           "in order, each as if sent alone (extension: a worker reports one "
                           "task's end and the next one's running in one request)"}]}),
        "/api/heartbeat_task": wrapped(obj(
            ["task_id"], task_id=TASK_ID, attempt=ATTEMPT,
            progress={"type": ["number", "null"], "minimum": 0, "maximum": 1}, message=JSON_VALUE)),
        "/api/result_task": wrapped(obj(["task_id"], task_id=TASK_ID)),
        "/api/tasks": obj([], p_size={"type": "integer", "minimum": 1, "maximum": MAX_P_SIZE},
                          page={"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                          service=service, status={"enum": STATUSES}),
        "/api/start_task": wrapped_or_bare(obj(["task_id"], task_id=TASK_ID)),
        "/api/update_task": wrapped_or_bare(obj(["task_id", "condition"], task_id=TASK_ID,
                                                condition=condition)),
        "/api/service_task": obj([]),
        "/api/service_stats": obj([]),
        "/api/cancel_task": wrapped_or_bare(obj(
            ["task_id"], task_id=TASK_ID,
            reason={"type": "string", "maxLength": MAX_REASON_LEN,
                    "description": "why; the task's failed message becomes `cancelled: <reason>`"})),
    }


# Routes whose body may be left out (read as `{}`).
OPTIONAL_BODY = frozenset({"/api/tasks", "/api/service_task", "/api/service_stats"})


def answers(config: Config) -> dict[str, Schema]:
    """The body of each route's 200 answer."""
    status_item = obj(["task_id", "status", "message", "start_time", "end_time"],
                      task_id={"type": "string"}, status={"enum": [*STATUSES, INVALID]},
                      message=JSON_VALUE, start_time=TIME, end_time=TIME,
                      attempt={"type": "integer"}, progress={"type": ["number", "null"]},
                      cancelled=CANCELLED, pending_reason=PENDING_REASON,
                      queue_position=QUEUE_POSITION)
    event = obj(["status", "time", "attempt", "message"], status={"enum": STATUSES}, time=TIME,
                attempt={"type": "integer"}, message=JSON_VALUE)
    list_item = obj(["task_id", "service", "status", "condition", "create_time"],
                    task_id=NEW_TASK_ID, service={"type": "string"}, status={"enum": STATUSES},
                    condition=JSON_OBJECT, create_time=TIME)
    reported = {"task_id": NEW_TASK_ID, "status": {"enum": STATUSES}}
    report_taken = obj(["task_id", "status"], **reported)
    by_status = obj(STATUSES, **{s: {"type": "integer", "minimum": 0} for s in STATUSES})
    ended = {s.value: {"type": "integer", "minimum": 0} for s in FINAL}
    overview = obj(
        ["service", "counts", "last_hour", "run_time", "workers", "breaker", "dispatcher_seen_at",
         "publish_failing_since"],
        service={"type": "string"},
        counts={**by_status, "description": "the service's tasks by status (`running`: now)"},
        last_hour={**obj([*ended, "per_minute", "failure_rate"], **ended,
                         per_minute={"type": "number", "description": "tasks ended a minute"},
                         failure_rate={"type": ["number", "null"], "minimum": 0, "maximum": 1,
                                       "description": "failed / ended (null: none ended)"}),
                   "description": "tasks that ended in the last hour"},
        run_time={"anyOf": [obj(["median_s", "p95_s"], median_s={"type": "number"},
                                p95_s={"type": "number"}), {"type": "null"}],
                  "description": "running -> finished of the last 50 finished (null: none yet)"},
        workers={"type": ["integer", "null"],
                 "description": "live workers as the dispatcher last saw them (null: not known)"},
        breaker=obj(["state", "until", "failures"],
                    state={"enum": [s.value for s in BreakerState]}, until=TIME,
                    failures={"type": "integer", "description": "failed runs in a row when "
                                                                "it opened"}),
        dispatcher_seen_at={**TIME, "description": "a dispatcher's last look at the service"},
        publish_failing_since={**TIME, "description": "since when Kafka refuses its messages"})
    return {
        "/api/create_task": ok(task_id=NEW_TASK_ID, optional={"created": {
            "type": "boolean",
            "description": "with an idempotency_key: false when the key's task existed already"}}),
        "/api/status_task": ok(status={"type": "array", "items": status_item}),
        "/api/update_status_task": ok(status={"anyOf": [report_taken, {
            "type": "array", "description": "a list's answers, in its order",
            "items": {"anyOf": [report_taken, obj(
                ["task_id", "error", "message"], task_id={"type": "string"},
                error={"enum": [404, 409], "description": "the HTTP status this report "
                                                          "would have had alone"},
                message={"type": "string"})]}}]}),
        "/api/heartbeat_task": ok(status=obj(
            ["task_id", "status", "lease_until"], **reported, lease_until=TIME,
            cancel={"type": "boolean", "description": "the task was cancelled: stop the run "
                                                      "and report it failed"})),
        "/api/result_task": ok(task_id=NEW_TASK_ID, service={"type": "string"},
                               condition=JSON_OBJECT, create_time=TIME,
                               priority={"type": "integer"}, status={"enum": STATUSES},
                               data={"anyOf": [JSON_OBJECT, {"type": "null"}]}, message=JSON_VALUE,
                               start_time=TIME, end_time=TIME,
                               spend_time={"type": ["number", "null"]},
                               attempt={"type": "integer"}, cancelled=CANCELLED,
                               history={"type": "array", "items": event}),
        "/api/tasks": ok(total={"type": "integer"}, count={"type": "integer"},
                         data={"type": "array", "items": list_item}),
        "/api/start_task": ok(task_id=NEW_TASK_ID),
        "/api/update_task": ok(task_id=NEW_TASK_ID),
        "/api/service_task": ok(count={"type": "integer"},
                                data={"type": "array", "items": {"type": "string"}}),
        "/api/service_stats": ok(count={"type": "integer"},
                                 data={"type": "array", "items": overview}),
        "/api/cancel_task": ok(task_id=NEW_TASK_ID, status={"enum": STATUSES}),
    }
