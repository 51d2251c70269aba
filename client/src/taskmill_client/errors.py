"""What can go wrong, as exceptions that carry the api's message and HTTP status.

    TaskmillError                  every error of this package
    ├── ApiError                   the api answered with an error body (`status`, `message`)
    │   ├── InvalidRequest         400: a parameter is wrong (the message says which)
    │   ├── Unauthorized           401: missing or wrong token
    │   ├── Forbidden              403: the token's role does not allow the call
    │   ├── TaskNotFound           404: no such task
    │   ├── Conflict               409: the task's state does not allow it
    │   ├── PayloadTooLarge        413: the body is over the api's limit
    │   ├── RateLimited            429: over the token's rate (`retry_after` seconds)
    │   ├── ServiceUnavailable     503: the api's store is down
    │   └── ServerError            500 and anything else
    ├── ApiUnreachable             no answer: refused, reset, timed out
    └── WaitTimeout                `wait` gave up before the tasks ended
"""

from __future__ import annotations

from typing import Any


class TaskmillError(Exception):
    """Any error of the Taskmill client."""


class ApiError(TaskmillError):
    """The api answered with an error: its HTTP status and the contract's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status})")
        self.status = status
        self.message = message


class InvalidRequest(ApiError):
    """400: a parameter is wrong; the message says which and where."""


class Unauthorized(ApiError):
    """401: the token is missing or wrong."""


class Forbidden(ApiError):
    """403: the token's role does not allow the call."""


class TaskNotFound(ApiError):
    """404: the task does not exist (or was deleted by retention)."""


class Conflict(ApiError):
    """409: the task's state does not allow the change (the message names it)."""


class PayloadTooLarge(ApiError):
    """413: the request is larger than the api accepts."""


class RateLimited(ApiError):
    """429: the token is over its rate limit; try again after `retry_after` seconds."""

    def __init__(self, status: int, message: str, retry_after: float = 1.0) -> None:
        super().__init__(status, message)
        self.retry_after = retry_after


class ServiceUnavailable(ApiError):
    """503: the api cannot reach its task store right now."""


class ServerError(ApiError):
    """500 or another unexpected status."""


class ApiUnreachable(TaskmillError):
    """The api did not answer (connection refused or reset, timeout)."""


class WaitTimeout(TaskmillError):
    """`wait` reached its timeout before every task ended; `statuses` is the last seen."""

    def __init__(self, message: str, statuses: Any) -> None:
        super().__init__(message)
        self.statuses = statuses


BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequest, 401: Unauthorized, 403: Forbidden, 404: TaskNotFound, 409: Conflict,
    413: PayloadTooLarge, 415: InvalidRequest, 429: RateLimited, 503: ServiceUnavailable,
}


def api_error(status: int, message: str, retry_after: float | None = None) -> ApiError:
    """The exception for an error answer."""
    kind = BY_STATUS.get(status, ServerError)
    if kind is RateLimited:
        return RateLimited(status, message, retry_after or 1.0)
    return kind(status, message)
