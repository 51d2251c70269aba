"""A small HTTP client of the Taskmill api, used by the worker SDK, tests and scripts."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from taskmill.errors import ApiError, ApiUnavailable


class ApiClient:
    """Calls the api's POST routes over keep-alive connections (one per thread)."""

    def __init__(self, base_url: str, token: str, timeout_s: float = 10.0) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"api url must be http(s)://host[:port], not {base_url!r}")
        self._scheme, self._host = url.scheme, url.hostname
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._prefix = url.path.rstrip("/")
        self._token = token
        self._timeout_s = timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[http.client.HTTPConnection] = []

    def call(self, route: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST body to route; return the answer, or raise ApiError / ApiUnavailable."""
        payload = json.dumps(body or {}).encode()
        headers = {"Authorization": self._token, "Content-Type": "application/json"}
        for retry in (True, False):
            conn = self._connection()
            try:
                conn.request("POST", self._prefix + route, payload, headers)
                response = conn.getresponse()
                raw = response.read()
                break
            except (http.client.HTTPException, OSError) as ex:
                self._drop(conn)
                # A kept-alive connection the server closed: one fresh try.
                if not (retry and isinstance(ex, http.client.RemoteDisconnected | BrokenPipeError
                                             | ConnectionResetError)):
                    raise ApiUnavailable(f"api at {self._host}:{self._port}: {ex}") from ex
        try:
            answer = json.loads(raw)
        except json.JSONDecodeError as ex:
            raise ApiError(response.status, f"answer is not JSON: {raw[:200]!r}") from ex
        if response.status != 200 or answer.get("result") != "ok":
            raise ApiError(response.status, str(answer.get("message")))
        return answer  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the connections of every thread."""
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    # -- the contract's routes ------------------------------------------------------------

    def create_task(self, service: str, condition: Mapping[str, Any], start: bool = False,
                    idempotency_key: str | None = None, priority: int | None = None) -> str:
        """Create a task (and start it when start is true); return its task_id. With an
        idempotency_key, a create repeated with the same key answers the same task;
        priority 0..9 (default 5) orders a service's waiting tasks, highest first."""
        data: dict[str, Any] = _given(service=service, condition=dict(condition),
                                      start=start or None, idempotency_key=idempotency_key,
                                      priority=priority)
        return str(self.call("/api/create_task", {"data": data})["task_id"])

    def start_task(self, task_id: str) -> None:
        """Request the start of a ready or failed task."""
        self.call("/api/start_task", {"task_id": task_id})

    def status_task(self, task_ids: Iterable[str]) -> list[dict[str, Any]]:
        """Return the statuses of the tasks, in the order asked."""
        answer = self.call("/api/status_task", {"data": [{"task_id": t} for t in task_ids]})
        return list(answer["status"])

    def result_task(self, task_id: str) -> dict[str, Any]:
        """Return the result answer of a task."""
        return self.call("/api/result_task", {"data": {"task_id": task_id}})

    def update_status(self, task_id: str, status: str, message: Any = None,
                      result: Mapping[str, Any] | None = None,
                      attempt: int | None = None, retry: bool = False,
                      worker: str | None = None) -> dict[str, Any]:
        """Report a worker's status change (`retry`: a failure worth another attempt;
        `worker`: the reporting worker's name, so a second worker's `running` is refused)."""
        report = Report(task_id, status, message, result, attempt, retry, worker)
        return self.call("/api/update_status_task", {"data": report.data()})

    def update_statuses(self, reports: Iterable[Report]) -> list[dict[str, Any] | ApiError]:
        """Send several reports in one request, applied in order: for each, its answer
        (`task_id`, `status`) or, refused, an ApiError with the status it would have had
        alone (404, 409). A request refused as a whole (bad input, token, api away)
        raises, and then none of its reports was applied, or (api away) any may have been."""
        answer = self.call("/api/update_status_task",
                           {"data": [report.data() for report in reports]})
        return [ApiError(item["error"], item["message"]) if "error" in item else item
                for item in answer["status"]]

    def heartbeat(self, task_id: str, attempt: int | None = None, progress: float | None = None,
                  message: Any = None) -> dict[str, Any]:
        """Renew a running task's lease, with optional progress (0..1) and message."""
        data = _given(task_id=task_id, attempt=attempt, progress=progress, message=message)
        return self.call("/api/heartbeat_task", {"data": data})

    def tasks(self, **filters: Any) -> dict[str, Any]:
        """Return one page of the task list (p_size, page, service, status)."""
        return self.call("/api/tasks", filters)

    def cancel_task(self, task_id: str, reason: str | None = None) -> str:
        """Cancel a task that has not ended; return its status now (failed, or running
        while its worker stops it)."""
        answer = self.call("/api/cancel_task", _given(task_id=task_id, reason=reason))
        return str(answer["status"])

    def update_task(self, task_id: str, condition: Mapping[str, Any]) -> None:
        """Replace the condition of a task that is not waiting or running."""
        self.call("/api/update_task", {"task_id": task_id, "condition": dict(condition)})

    def services(self) -> list[str]:
        """Return the configured services."""
        return list(self.call("/api/service_task")["data"])

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        self._local.conn = None
        with self._lock:
            if conn in self._connections:
                self._connections.remove(conn)

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            kind = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            conn = kind(self._host, self._port, timeout=self._timeout_s)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn


@dataclass(frozen=True)
class Report:
    """A worker's report of one task's status (update_status_task)."""

    task_id: str
    status: str
    message: Any = None
    result: Mapping[str, Any] | None = None
    attempt: int | None = None
    retry: bool = False
    worker: str | None = None

    def data(self) -> dict[str, Any]:
        return _given(task_id=self.task_id, status=self.status, message=self.message,
                      result=None if self.result is None else dict(self.result),
                      attempt=self.attempt, retry=self.retry or None, worker=self.worker)


def _given(**fields: Any) -> dict[str, Any]:
    """Keep the fields that have a value: optional ones are left out, not sent as null."""
    return {name: value for name, value in fields.items() if value is not None}
