"""The worker SDK's Prometheus metrics (one process per worker, no multiprocess mode)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TASKS = Counter("taskmill_worker_tasks_total", "Tasks run to an outcome (finished, failed, "
                "cancelled).", ["service", "outcome"])
RUN_SECONDS = Histogram("taskmill_worker_run_duration_seconds", "Time the algorithm ran.",
                        ["service"], buckets=(.01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 1800, 3600))
IN_FLIGHT = Gauge("taskmill_worker_tasks_in_flight", "Tasks being run now.", ["service"])
HEARTBEATS = Counter("taskmill_worker_heartbeats_total", "Lease renewals sent.", ["service"])
DECODE_ERRORS = Counter("taskmill_worker_decode_errors_total",
                        "Messages that were not the contract's task message.", ["service"])
SKIPPED = Counter("taskmill_worker_skipped_total",
                  "Messages skipped: duplicate, stale or unknown task.", ["service"])
LAG = Gauge("taskmill_worker_consumer_lag_messages",
            "Messages of the service's topic behind this worker's position, on its partitions.",
            ["service"])
