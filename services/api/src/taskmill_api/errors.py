"""Errors only the api raises, and the one place that maps every error to HTTP.

    TaskmillError (taskmill.errors)
    ├── Unauthorized          missing or wrong token                       401
    ├── Forbidden             the token's role does not allow the call     403
    ├── BodyTooLarge          request body over the configured limit       413
    ├── NotJson               body is not JSON (or not declared as JSON)   415 / 400
    └── TooManyRequests       the token is over its rate limit             429 + Retry-After

Every error answers with the contract's body `{"result": "exception", "message": …}`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import falcon

from taskmill.errors import (
    DependencyUnavailable,
    InvalidParameter,
    StateConflict,
    TaskmillError,
    TaskNotFound,
)

log = logging.getLogger(__name__)


class Unauthorized(TaskmillError):
    """Raised when the Authorization header is missing or does not hold the token."""


class Forbidden(TaskmillError):
    """Raised when a valid token's role does not allow the call."""


class TooManyRequests(TaskmillError):
    """Raised when a token is over its rate limit; `retry_after` in whole seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BodyTooLarge(TaskmillError):
    """Raised when the request body is larger than the configured limit."""


class NotJson(TaskmillError):
    """Raised when the body is not JSON; `unsupported` when its content type says so."""

    def __init__(self, message: str, unsupported: bool = False) -> None:
        super().__init__(message)
        self.unsupported = unsupported


def http_status(ex: TaskmillError) -> str:
    """Return the HTTP status line that fits the error."""
    match ex:
        case InvalidParameter():
            return falcon.HTTP_400
        case Unauthorized():
            return falcon.HTTP_401
        case Forbidden():
            return falcon.HTTP_403
        case TooManyRequests():
            return falcon.HTTP_429
        case TaskNotFound():
            return falcon.HTTP_404
        case StateConflict():
            return falcon.HTTP_409
        case BodyTooLarge():
            return falcon.HTTP_413
        case NotJson():
            return falcon.HTTP_415 if ex.unsupported else falcon.HTTP_400
        case DependencyUnavailable():
            return falcon.HTTP_503
    return falcon.HTTP_500


def http_code(ex: TaskmillError) -> int:
    """The error's HTTP status as a number (a list's refused item carries it)."""
    return falcon.http_status_to_code(http_status(ex))


def exception_body(message: str) -> dict[str, str]:
    """Return the contract's error body."""
    return {"result": "exception", "message": message}


def handle_taskmill_error(req: falcon.Request, resp: falcon.Response, ex: TaskmillError,
                          params: dict[str, Any]) -> None:
    """Answer a deliberate error with its status and message."""
    resp.status = http_status(ex)
    resp.media = exception_body(str(ex))
    req.context.error = type(ex).__name__
    if isinstance(ex, TooManyRequests):
        resp.set_header("Retry-After", str(ex.retry_after))
    if isinstance(ex, DependencyUnavailable):
        log.warning("dependency unavailable: %s", ex)


def handle_unexpected(req: falcon.Request, resp: falcon.Response, ex: Exception,
                      params: dict[str, Any]) -> None:
    """Log an unexpected error once, with its traceback; answer 500 without details."""
    log.exception("unexpected error on %s %s (request %s)", req.method, req.path,
                  getattr(req.context, "request_id", "-"))
    resp.status = falcon.HTTP_500
    resp.media = exception_body("internal error; see the api log")


def serialize_http_error(req: falcon.Request, resp: falcon.Response,
                         ex: falcon.HTTPError) -> None:
    """Render falcon's own errors (unknown route, wrong method, …) in the contract's body."""
    resp.content_type = falcon.MEDIA_JSON
    message = ex.description or f"{ex.title}: {req.method} {req.path}"
    resp.data = json.dumps(exception_body(message)).encode()


def register(app: falcon.App) -> None:
    """Install the error handlers on app."""
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(TaskmillError, handle_taskmill_error)
    app.set_error_serializer(serialize_http_error)
