"""The responders: validate into a typed request, call the store once, set the answer.

A worker's report is held to its token's services (`auth.Caller.check_report`)."""

from __future__ import annotations

from typing import Any

import falcon

from taskmill.config import Config
from taskmill.errors import StateConflict, TaskNotFound
from taskmill.schema import iso
from taskmill.store import TaskStore
from taskmill.store.documents import Task
from taskmill.store.reports import Report
from taskmill_api import metrics, views
from taskmill_api.errors import http_code
from taskmill_api.validation import Validator


class Tasks:
    """The contract's POST routes (one responder per route, by suffix)."""

    def __init__(self, config: Config, store: TaskStore) -> None:
        self._config = config
        self._store = store
        self._check = Validator(config)

    def on_post_create(self, req: falcon.Request, resp: falcon.Response) -> None:
        ask = self._check.create_task(req.context.body)
        service = self._config.service(ask.service)
        if ask.idempotency_key is None:
            task, created = self._store.create(service, ask.condition, ask.start, ask.priority), None
        else:
            task, created = self._store.create_once(service, ask.condition, ask.start,
                                                    ask.idempotency_key, ask.priority)
        if created is not False:
            metrics.TASKS_CREATED.labels(ask.service).inc()
            if ask.start:
                metrics.TASKS_STARTED.labels(ask.service).inc()
        resp.media = {"result": "ok", "task_id": task["task_id"],
                      **({} if created is None else {"created": created})}

    def on_post_status(self, req: falcon.Request, resp: falcon.Response) -> None:
        ask = self._check.status_task(req.context.body)
        found = self._store.get_many(ask.task_ids)
        pending = self._store.pending.explain(found)
        resp.media = {"result": "ok", "status": [views.status_item(t, found.get(t), pending.get(t))
                                                 for t in ask.task_ids]}

    def on_post_update_status(self, req: falcon.Request, resp: falcon.Response) -> None:
        """One report, or a list: every one is checked before any is applied; then each is
        applied as if alone (`TaskStore.report_each`) and a list's refused reports (404,
        409) are answered in its place."""
        ask = self._check.update_status(req.context.body)
        for report in ask.reports:
            req.context.caller.check_report(report.task_id, report.attempt)
        outcomes = self._store.report_each(ask.reports)
        if not ask.listed:
            [outcome] = outcomes
            if isinstance(outcome, Exception):
                raise outcome
            resp.media = {"result": "ok", "status": _reported(outcome)}
            return
        resp.media = {"result": "ok", "status": [
            _refused(report, outcome) if isinstance(outcome, Exception) else _reported(outcome)
            for report, outcome in zip(ask.reports, outcomes, strict=True)]}

    def on_post_heartbeat(self, req: falcon.Request, resp: falcon.Response) -> None:
        ask = self._check.heartbeat(req.context.body)
        req.context.caller.check_report(ask.task_id, ask.attempt)
        task = self._store.heartbeat(ask.task_id, ask.attempt, ask.progress, ask.message)
        resp.media = {"result": "ok", "status": {"task_id": task["task_id"],
                                                 "status": task["status"],
                                                 "lease_until": iso(task["lease_until"]),
                                                 "cancel": task["cancel"]}}

    def on_post_result(self, req: falcon.Request, resp: falcon.Response) -> None:
        ask = self._check.result_task(req.context.body)
        resp.media = views.result(self._store.get(ask.task_id))

    def on_post_list(self, req: falcon.Request, resp: falcon.Response) -> None:
        ask = self._check.list_tasks(req.context.body)
        total, page = self._store.list(ask.page, ask.p_size, ask.service, ask.status)
        resp.media = {"result": "ok", "total": total, "count": len(page),
                      "data": [views.list_item(t) for t in page]}

    def on_post_start(self, req: falcon.Request, resp: falcon.Response) -> None:
        ask = self._check.start_task(req.context.body)
        task = self._store.request_start(ask.task_id)
        metrics.TASKS_STARTED.labels(task["service"]).inc()
        resp.media = {"result": "ok", "task_id": task["task_id"]}

    def on_post_update(self, req: falcon.Request, resp: falcon.Response) -> None:
        ask = self._check.update_task(req.context.body)
        task = self._store.update_condition(ask.task_id, ask.condition)
        resp.media = {"result": "ok", "task_id": task["task_id"]}

    def on_post_cancel(self, req: falcon.Request, resp: falcon.Response) -> None:
        ask = self._check.cancel_task(req.context.body)
        task = self._store.cancel(ask.task_id, ask.reason)
        metrics.TASKS_CANCELLED.labels(task["service"], task["status"]).inc()
        resp.media = {"result": "ok", "task_id": task["task_id"], "status": task["status"]}

    def on_post_services(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._check.service_task(req.context.body)
        names = list(self._config.services)
        resp.media = {"result": "ok", "count": len(names), "data": names}

    def on_post_service_stats(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._check.service_stats(req.context.body)
        found = self._store.overview(list(self._config.services))
        resp.media = {"result": "ok", "count": len(found),
                      "data": [views.service_overview(s) for s in found]}


class Health:
    """Liveness (`/healthz`) and readiness (`/readyz`: MongoDB answers)."""

    def __init__(self, store: TaskStore) -> None:
        self._store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"result": "ok"}

    def on_get_ready(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._store.ping()
        resp.media = {"result": "ok"}


class Metrics:
    """Prometheus exposition."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "text/plain; version=0.0.4; charset=utf-8"
        resp.data = metrics.render()


class OpenApi:
    """The machine-readable description of the routes."""

    def __init__(self, document: dict[str, object]) -> None:
        self._document = document

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self._document


def _reported(task: Task) -> dict[str, Any]:
    """A report's answer: the status it left the task in."""
    metrics.STATUS_REPORTS.labels(task["service"], task["status"]).inc()
    return {"task_id": task["task_id"], "status": task["status"]}


def _refused(report: Report, refusal: TaskNotFound | StateConflict) -> dict[str, Any]:
    """A list's refused report, answered in its place."""
    if isinstance(refusal, StateConflict):
        metrics.STATE_CONFLICTS.labels("/api/update_status_task").inc()
    return {"task_id": report.task_id, "error": http_code(refusal), "message": str(refusal)}
