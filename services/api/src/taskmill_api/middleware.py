"""Cross-cutting concerns of every request: request id, timing, auth, rate limits, the
audit log and the JSON body."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import falcon

from taskmill.errors import InvalidParameter
from taskmill.logs import clip
from taskmill_api import metrics, ui
from taskmill_api.auth import Tokens
from taskmill_api.errors import BodyTooLarge, NotJson, TooManyRequests, Unauthorized
from taskmill_api.rate_limits import RateLimits, retry_after
from taskmill_api.validation import MAX_DEPTH, NO_BODY, check_storable

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
STATE_CHANGING = frozenset({"/api/create_task", "/api/start_task", "/api/update_task",
                            "/api/cancel_task", "/api/update_status_task", "/api/heartbeat_task"})

audit = logging.getLogger("taskmill.audit")


class RequestContext:
    """Give every request an id and record its route, status and duration."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()
        incoming = req.get_header("X-Request-Id") or ""
        req.context.request_id = incoming[:64] if incoming.isprintable() and incoming \
            else uuid.uuid4().hex
        resp.set_header("X-Request-Id", req.context.request_id)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         req_succeeded: bool) -> None:
        route = req.uri_template or "unmatched"
        caller = getattr(req.context, "caller", None)
        metrics.REQUESTS.labels(route, req.method, resp.status_code,
                                caller.name if caller is not None else "-").inc()
        metrics.REQUEST_SECONDS.labels(route).observe(time.perf_counter() - req.context.started)
        if resp.status_code == 409:
            metrics.STATE_CONFLICTS.labels(route).inc()


class TokenAuth:
    """Identify the caller by `Authorization: <token>` or `Bearer <token>` (401), hold it
    to its rate limit (429), then, once the body is read, to its role's routes (403);
    `req.context.caller`."""

    def __init__(self, tokens: Tokens, limits: RateLimits) -> None:
        self._tokens = tokens
        self._limits = limits

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.caller = None
        if req.path in PUBLIC_PATHS or ui.is_ui(req.path):
            return
        given = (req.get_header("Authorization") or "").strip()
        if given[:7].lower() == "bearer ":
            given = given[7:].strip()
        caller = self._tokens.identify(given)
        if caller is None:
            metrics.AUTH_FAILURES.inc()
            raise Unauthorized("unauthorized: missing or wrong token in the Authorization header")
        req.context.caller = caller
        wait_s = self._limits.wait_s(caller.name)
        if wait_s:
            seconds = retry_after(wait_s)
            raise TooManyRequests(f"token {caller.name} is over its rate limit; retry after "
                                  f"{seconds} s", seconds)

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         params: dict[str, Any]) -> None:
        if req.context.caller is not None and req.uri_template:
            req.context.caller.check_route(req.uri_template)


class Audit:
    """Log every call of a state-changing route: the token's name (never its value), the
    route, the task and the answer's status, on the logger `taskmill.audit`."""

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         req_succeeded: bool) -> None:
        if req.uri_template not in STATE_CHANGING:
            return
        caller = getattr(req.context, "caller", None)
        name = caller.name if caller is not None else "-"
        task_id = _named_task(getattr(req.context, "body", None)) or _named_task(resp.media)
        audit.info("%s by %s: %s", req.uri_template.removeprefix("/api/"), name, resp.status,
                   extra={"token": name, "route": req.uri_template, "task_id": task_id,
                          "request_id": getattr(req.context, "request_id", None)})


class JsonBody:
    """Read a POST body once, bounded in size, into `req.context.body`."""

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         params: dict[str, Any]) -> None:
        if req.method != "POST":
            return
        if req.content_length is not None and req.content_length > self._max:
            raise BodyTooLarge(f"request body is larger than {self._max} bytes")
        # A chunked body has no Content-Length: read it from the server's (de-chunking) stream.
        stream = req.bounded_stream if req.content_length is not None else req.stream
        raw = stream.read(self._max + 1)
        if len(raw) > self._max:
            raise BodyTooLarge(f"request body is larger than {self._max} bytes")
        content_type = (req.content_type or "").split(";")[0].strip().lower()
        if raw.strip() and content_type and content_type != "application/json":
            raise NotJson(f"Content-Type must be application/json, not {content_type}",
                          unsupported=True)
        req.context.body = _parse(raw)


def _named_task(body: Any) -> str | None:
    """The task_id a body names, if any (clipped): a request's (in `data` or bare, or the
    ones of a list of reports, comma-separated), or create_task's answer."""
    data = body.get("data", body) if isinstance(body, dict) else None
    items = data if isinstance(data, list) else [data]
    named = [item["task_id"] for item in items
             if isinstance(item, dict) and isinstance(item.get("task_id"), str)]
    return clip(",".join(named), 200) if named else None


def _parse(raw: bytes) -> Any:
    if not raw.strip():
        return NO_BODY
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_not_a_number)
    except (UnicodeDecodeError, json.JSONDecodeError) as ex:
        raise NotJson(f"request body is not valid UTF-8 JSON: {clip(str(ex), 200)}") from ex
    except RecursionError as ex:
        raise InvalidParameter(f"body is nested deeper than {MAX_DEPTH} levels") from ex
    check_storable(body)
    return body


def _not_a_number(name: str) -> float:
    raise InvalidParameter(f"{name} is not a number JSON or the store can hold")
