"""The worker's side of the api: its reports of a task's status, alone or several in one
request, sent again while the api cannot take them (bounded backoff), and its heartbeats.

A report the api refuses for good (a 4xx about the task) is not sent again: a conflict
(409) means the task moved on without this run (taken by another worker, cancelled, a
later attempt), another refusal is kept so that an outcome the api cannot store is
reported again as a failure saying why. A refusal that judges the worker's token (401,
403, 429) and an api away or failing are tried again, until the worker stops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from taskmill.client import ApiClient, Report
from taskmill.codec import TaskMessage
from taskmill.errors import ApiError
from taskmill.logs import clip
from taskmill.schema import Status
from taskmill.worker import metrics

log = logging.getLogger("taskmill.worker")

# Waits between retries of a report the api could not take (bounded backoff).
BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)
# Refusals that judge the worker's token, not the task (401, 403, 429): reported again.
NOT_ABOUT_THE_TASK = frozenset({401, 403, 429})

# After the api refused reports sent together as a whole with a 400 that none of them,
# sent alone, explains (an api older than lists of reports, or with a shorter
# max_status_task), how long the worker sends each alone before it tries lists again.
LISTS_PAUSE_S = 300.0


@dataclass(frozen=True)
class Outcome:
    """How one run of the algorithm ended (or, `RUNNING`, that it begins)."""

    status: Status
    message: Any = None
    result: Mapping[str, Any] | None = None
    retry: bool = False


RUNNING = Outcome(Status.RUNNING)

# The api's answer to one report of a list.
Answer = dict[str, Any] | ApiError


class Reporter:
    """Reports one worker's tasks to the api in its name. `idle(seconds)` waits between two
    tries of a report while keeping the worker alive; `stopping` set, a report is tried
    for `shutdown_grace_s` more at most (a `running` one not again)."""

    def __init__(self, api: ApiClient, name: str, service: str, shutdown_grace_s: float,
                 stopping: threading.Event, idle: Callable[[float], None]) -> None:
        self._api = api
        self._name = name
        self._service = service
        self._shutdown_grace_s = shutdown_grace_s
        self._stopping = stopping
        self._idle = idle
        self._lists_after = 0.0  # reports are sent in lists from then on (see together)

    def report(self, task: TaskMessage, outcome: Outcome, refusal: list[str] | None = None) -> bool | None:
        """Report to the api: True accepted, False refused (skip), None gave up (stopping).
        A refusal other than a conflict (409) is appended to `refusal`."""
        give_up_at = None
        retries = 0
        while True:
            try:
                self._api.update_status(task.task_id, outcome.status.value, outcome.message,
                                        outcome.result, task.attempt, outcome.retry, self._name)
                return True
            except ApiError as ex:
                if self._refused(task, outcome, ex, refusal):
                    return False
            if self._stopping.is_set():
                give_up_at = give_up_at or time.monotonic() + self._shutdown_grace_s
                if outcome.status == Status.RUNNING or time.monotonic() > give_up_at:
                    return None
            self._idle(BACKOFF_S[min(retries, len(BACKOFF_S) - 1)])
            retries += 1

    def answered(self, task: TaskMessage, outcome: Outcome, answer: Answer,
                 refusal: list[str] | None = None) -> bool | None:
        """What the api's answer to a report sent with another means (as `report`); one it
        could not take is reported again, alone."""
        if not isinstance(answer, ApiError):
            return True
        if self._refused(task, outcome, answer, refusal):
            return False
        return self.report(task, outcome, refusal)

    def together(self, reports: list[tuple[TaskMessage, Outcome]]) -> list[Answer] | None:
        """Send several tasks' reports in one request: the api's answer to each, or None
        when it did not take the request as a whole (then each is reported alone). After
        a 400 no list goes for LISTS_PAUSE_S, unless one of the reports, sent alone, is
        refused with a 400 too (`_refused`): the list was refused for it, not for being a
        list (an api that takes no lists, or not so long a one)."""
        if time.monotonic() < self._lists_after:
            return None
        try:
            return self._api.update_statuses([
                Report(task.task_id, outcome.status.value, outcome.message, outcome.result,
                       task.attempt, outcome.retry, self._name) for task, outcome in reports])
        except ApiError as ex:
            if ex.http_status == 400:
                self._lists_after = time.monotonic() + LISTS_PAUSE_S
            log.info("the reports of %d tasks sent together were not taken (%s); reporting "
                     "them one by one", len(reports), ex, extra=task_extra(reports[0][0]))
            return None

    def report_outcome(self, task: TaskMessage, outcome: Outcome,
                       answer: Answer | None = None) -> bool | None:
        """Report how the run ended (unless its `answer` came already). An outcome the api
        refuses as bad input (a result it cannot store, too large) is reported again as a
        failure saying why, so the task ends now rather than when its lease lapses."""
        refusal: list[str] = []
        accepted = (self.report(task, outcome, refusal) if answer is None
                    else self.answered(task, outcome, answer, refusal))
        if accepted is False and refusal and outcome.status != Status.FAILED:
            failure = Outcome(Status.FAILED, message=clip(f"the api refused the outcome: {refusal[0]}"))
            return self.report(task, failure)
        return accepted

    def heartbeat(self, task: TaskMessage, stop: threading.Event, cancel: threading.Event,
                  fraction: float | None = None, message: Any = None) -> None:
        """Renew the lease. An answer with `cancel` means the task was cancelled, a refusal
        (409) that the lease is lost: either way the run is to stop."""
        try:
            answer = self._api.heartbeat(task.task_id, task.attempt, fraction, message)
            metrics.HEARTBEATS.labels(self._service).inc()
            if answer.get("status", {}).get("cancel") is True and not cancel.is_set():
                log.info("the task was cancelled: stopping the run", extra=task_extra(task))
                cancel.set()
        except ApiError as ex:
            if ex.http_status == 409:
                stop.set()
            log.warning("heartbeat not taken: %s", ex, extra=task_extra(task))

    def _refused(self, task: TaskMessage, outcome: Outcome, ex: ApiError,
                 refusal: list[str] | None) -> bool:
        """Whether the api refused the report for good (else it is worth sending again).
        A refusal other than a conflict (409) is appended to `refusal`."""
        if ex.http_status in NOT_ABOUT_THE_TASK:
            # The worker's token (wrong, not for this service, over its limit), not the
            # task: keep the outcome and try again.
            log.log(logging.WARNING if ex.http_status == 429 else logging.ERROR,
                    "api refused the worker's %s report (%s); retrying", outcome.status.value, ex,
                    extra=task_extra(task))
            return False
        if 400 <= ex.http_status < 500:
            if ex.http_status == 400:
                # A list refused with a 400 because of this report (an outcome the api
                # cannot store) says nothing against lists: they go on.
                self._lists_after = 0.0
            level = logging.INFO if ex.http_status == 409 else logging.WARNING
            log.log(level, "api refused %s: %s", outcome.status.value, clip(ex.message),
                    extra=task_extra(task))
            if ex.http_status != 409 and refusal is not None:
                refusal.append(ex.message)
            return True
        log.warning("api unavailable for %s (%s); retrying", outcome.status.value, ex,
                    extra=task_extra(task))
        return False


def task_extra(task: TaskMessage) -> dict[str, Any]:
    """The fields a log line about the task carries."""
    return {"task_id": task.task_id, "service": task.service, "attempt": task.attempt}
