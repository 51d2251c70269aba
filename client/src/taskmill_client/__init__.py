"""Taskmill's Python client: `Taskmill` (every route of the api, typed) and the `taskmill`
command line (`taskmill_client.cli`)."""

from taskmill_client.client import Taskmill
from taskmill_client.errors import (
    ApiError,
    ApiUnreachable,
    Conflict,
    Forbidden,
    InvalidRequest,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    TaskmillError,
    TaskNotFound,
    Unauthorized,
    WaitTimeout,
)
from taskmill_client.models import (
    Created,
    HistoryEvent,
    ServiceStats,
    TaskPage,
    TaskResult,
    TaskStatus,
    TaskSummary,
)

__all__ = [
    "ApiError", "ApiUnreachable", "Conflict", "Created", "Forbidden", "HistoryEvent",
    "InvalidRequest", "PayloadTooLarge", "RateLimited", "ServerError", "ServiceStats", "ServiceUnavailable",
    "TaskNotFound", "TaskPage", "TaskResult", "TaskStatus", "TaskSummary", "Taskmill",
    "TaskmillError", "Unauthorized", "WaitTimeout",
]
