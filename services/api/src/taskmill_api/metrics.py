"""The api's Prometheus metrics, multiprocess-safe under gunicorn."""

from __future__ import annotations

import os

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter("taskmill_api_requests_total",
                   "HTTP requests answered, by the name of the token they came with (`-`: none "
                   "or an unknown one).", ["route", "method", "status", "token"])
REQUEST_SECONDS = Histogram("taskmill_api_request_duration_seconds",
                            "Time to answer a request.", ["route"],
                            buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
TASKS_CREATED = Counter("taskmill_api_tasks_created_total", "Tasks created.", ["service"])
TASKS_STARTED = Counter("taskmill_api_tasks_started_total", "Task starts recorded.", ["service"])
TASKS_CANCELLED = Counter("taskmill_api_tasks_cancelled_total",
                          "Cancellations taken, by the status they left the task in (failed: "
                          "ended at once; running: its worker is asked to stop).",
                          ["service", "status"])
STATUS_REPORTS = Counter("taskmill_api_status_reports_total", "Worker status reports accepted.",
                         ["service", "status"])
STATE_CONFLICTS = Counter("taskmill_api_state_conflicts_total",
                          "Changes refused because of the task's state.", ["route"])
AUTH_FAILURES = Counter("taskmill_api_auth_failures_total", "Requests refused for their token.")


def render() -> bytes:
    """Return the exposition text; aggregated over gunicorn workers in multiprocess mode."""
    # prometheus-client itself decides multiprocess mode from this variable.
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
