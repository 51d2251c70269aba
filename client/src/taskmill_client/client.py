"""`Taskmill`: every route of the api as a typed method.

    from taskmill_client import Taskmill

    with Taskmill() as tm:                      # TASKMILL_API_URL, TASKMILL_TOKEN
        task_id = tm.create("aaa", {"city": "Berlin"}, start=True).task_id
        [done] = tm.wait([task_id], timeout=600).values()
        print(tm.result(task_id).data)

Calls that are safe to repeat (reads, and a create with an `idempotency_key`) are tried
again, with backoff, when the api is unreachable, its store unavailable (503) or the token
over its rate (429, after its Retry-After); any other error is raised at once as the
exception of its status (`taskmill_client.errors`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from taskmill_client.errors import (
    ApiUnreachable,
    RateLimited,
    ServiceUnavailable,
    WaitTimeout,
    api_error,
)
from taskmill_client.models import Created, ServiceStats, TaskPage, TaskResult, TaskStatus

DEFAULT_URL = "http://127.0.0.1:8000"
BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)
STATUS_BATCH = 10  # ids per status_task request (the api's max_status_task)


class Taskmill:
    """A client of one Taskmill api (thread-safe: httpx keeps a connection pool)."""

    def __init__(self, url: str | None = None, token: str | None = None, timeout_s: float = 10.0,
                 retries: int = 4, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        """`url` and `token` default to TASKMILL_API_URL and TASKMILL_TOKEN; `retries` is
        how many more tries a safe call gets."""
        token = token if token is not None else os.environ.get("TASKMILL_TOKEN", "")
        self.url = (url or os.environ.get("TASKMILL_API_URL") or DEFAULT_URL).rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, transport=transport,
                                  headers={"Authorization": token})
        self._retries = retries
        self._sleep = sleep

    def __enter__(self) -> Taskmill:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    # -- the routes ----------------------------------------------------------------------

    def services(self) -> list[str]:
        """The services tasks can be created for."""
        return list(self._call("/api/service_task", {}, safe=True)["data"])

    def service_stats(self) -> list[ServiceStats]:
        """Each service at a glance: tasks by status, the last hour, run times, workers,
        breaker."""
        return [ServiceStats.parse(item)
                for item in self._call("/api/service_stats", {}, safe=True)["data"]]

    def create(self, service: str, condition: Mapping[str, Any], start: bool = False,
               priority: int | None = None, idempotency_key: str | None = None) -> Created:
        """Create a task (started at once with `start`). With an `idempotency_key` a create
        repeated with the same key answers the task the first one made (`created` False),
        so it is retried like a read; `priority` 0..9, default 5."""
        data = _given(service=service, condition=dict(condition), start=start or None,
                      priority=priority, idempotency_key=idempotency_key)
        answer = self._call("/api/create_task", {"data": data}, safe=idempotency_key is not None)
        return Created(answer["task_id"], answer.get("created", True))

    def start(self, task_id: str) -> None:
        """Start a ready task, or a failed one again."""
        self._call("/api/start_task", {"task_id": task_id})

    def status(self, task_ids: Iterable[str]) -> list[TaskStatus]:
        """The status of each task, in order (an unknown id: status `Invalid`), in requests
        of ten ids."""
        ids = list(task_ids)
        return [TaskStatus.parse(item) for n in range(0, len(ids), STATUS_BATCH)
                for item in self._call("/api/status_task", {"data": [
                    {"task_id": t} for t in ids[n:n + STATUS_BATCH]]}, safe=True)["status"]]

    def result(self, task_id: str) -> TaskResult:
        """The task's result (once finished), times, attempt and history."""
        return TaskResult.parse(self._call("/api/result_task", {"data": {"task_id": task_id}},
                                           safe=True))

    def list(self, service: str | None = None, status: str | None = None, page: int = 1,
             page_size: int = 20) -> TaskPage:
        """One page of tasks, newest first, filtered by service and status."""
        body = _given(service=service, status=status, page=page, p_size=page_size)
        return TaskPage.parse(self._call("/api/tasks", body, safe=True))

    def update(self, task_id: str, condition: Mapping[str, Any]) -> None:
        """Replace the condition of a task that is not started, or has ended."""
        self._call("/api/update_task", {"task_id": task_id, "condition": dict(condition)})

    def cancel(self, task_id: str, reason: str | None = None) -> str:
        """Cancel a task that has not ended: the status it is left in (`failed` at once, or
        `running` while its worker stops it)."""
        return str(self._call("/api/cancel_task", _given(task_id=task_id, reason=reason))["status"])

    # -- waiting -------------------------------------------------------------------------

    def wait(self, task_ids: Iterable[str], timeout_s: float | None = None, poll_s: float = 1.0,
             on_progress: Callable[[Sequence[TaskStatus]], None] | None = None
             ) -> dict[str, TaskStatus]:
        """Poll until every task has ended (or is unknown); their last statuses by id.

        One status_task request per ten ids a round; `on_progress` gets every status of
        each round. Raises WaitTimeout (with the last statuses) after `timeout_s`.
        """
        ids = list(dict.fromkeys(task_ids))
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        last: dict[str, TaskStatus] = {}
        while True:
            pending = [t for t in ids if t not in last or not last[t].final]
            last.update((s.task_id, s) for s in self.status(pending))
            if on_progress is not None:
                on_progress([last[t] for t in ids])
            if all(last[t].final for t in ids):
                return {t: last[t] for t in ids}
            if deadline is not None and time.monotonic() + poll_s > deadline:
                raise WaitTimeout(f"{sum(not last[t].final for t in ids)} of {len(ids)} tasks had "
                                  f"not ended after {timeout_s:g} s", [last[t] for t in ids])
            self._sleep(poll_s)

    # -- the wire ------------------------------------------------------------------------

    def _call(self, route: str, body: Mapping[str, Any], safe: bool = False) -> dict[str, Any]:
        """POST the body; the ok answer, or the error's exception. A safe call is tried
        again on the errors that say nothing about the request itself."""
        tries = self._retries + 1 if safe else 1
        for attempt in range(tries - 1):
            try:
                return self._post(route, body)
            except (ApiUnreachable, ServiceUnavailable, RateLimited) as ex:
                self._sleep(ex.retry_after if isinstance(ex, RateLimited)
                            else BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
        return self._post(route, body)

    def _post(self, route: str, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            response = self._http.post(route, json=body)
        except httpx.HTTPError as ex:
            raise ApiUnreachable(f"the api at {self.url} did not answer: {ex or type(ex).__name__}"
                                 ) from ex
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise api_error(response.status_code if response.status_code != 200 else 502,
                            f"the api's answer is not a JSON object: {response.text[:200]!r}")
        if response.status_code == 200 and answer.get("result") == "ok":
            return answer
        message = str(answer.get("message") or response.reason_phrase)
        raise api_error(response.status_code, message, _seconds(response.headers.get("Retry-After")))


def _given(**fields: Any) -> dict[str, Any]:
    """The fields that have a value."""
    return {k: v for k, v in fields.items() if v is not None}


def _seconds(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None

