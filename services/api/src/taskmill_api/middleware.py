"""Cross-cutting concerns of every request: request id, timing, auth and the JSON body."""

from __future__ import annotations

import hmac
import json
import time
import uuid
from typing import Any

import falcon

from taskmill.errors import InvalidParameter
from taskmill.logs import clip
from taskmill_api import metrics
from taskmill_api.errors import BodyTooLarge, NotJson, Unauthorized
from taskmill_api.validation import MAX_DEPTH, NO_BODY, check_storable

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


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
        metrics.REQUESTS.labels(route, req.method, resp.status_code).inc()
        metrics.REQUEST_SECONDS.labels(route).observe(time.perf_counter() - req.context.started)
        if resp.status_code == 409:
            metrics.STATE_CONFLICTS.labels(route).inc()


class TokenAuth:
    """Require `Authorization: <token>` or `Bearer <token>`, compared in constant time."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the api needs a token (AUTH_TOKEN)")
        self._token = token.encode()

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.path in PUBLIC_PATHS:
            return
        given = (req.get_header("Authorization") or "").strip()
        if given[:7].lower() == "bearer ":
            given = given[7:].strip()
        if not hmac.compare_digest(given.encode(), self._token):
            metrics.AUTH_FAILURES.inc()
            raise Unauthorized("unauthorized: missing or wrong token in the Authorization header")


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
