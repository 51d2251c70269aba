"""The dispatcher's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PUBLISHED = Counter("taskmill_dispatcher_published_total",
                    "Task messages the broker confirmed.", ["service"])
PUBLISH_FAILURES = Counter("taskmill_dispatcher_publish_failures_total",
                           "Task messages the broker did not confirm (retried).", ["service"])
PUBLISH_REFUSED = Counter("taskmill_dispatcher_publish_refused_total",
                          "Task messages refused for what they are (too large, not encodable): "
                          "their tasks end failed.", ["service"])
START_TO_PUBLISH_SECONDS = Histogram(
    "taskmill_dispatcher_start_to_publish_seconds",
    "Time from a recorded start to the broker's confirmation.", ["service"],
    buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300))
BATCH_SIZE = Histogram("taskmill_dispatcher_batch_size", "Tasks read to publish per relay round.",
                       buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500))
LOOP_ERRORS = Counter("taskmill_dispatcher_loop_errors_total",
                      "Relay rounds that failed on a dependency.", ["dependency"])
UP = Gauge("taskmill_dispatcher_up", "1 while the relay loop runs.")
RELAYING = Gauge("taskmill_dispatcher_relaying",
                 "1 for each service whose outbox this dispatcher relays (holds), 0 for one another "
                 "dispatcher holds.", ["service"])
RECOVERED = Counter("taskmill_dispatcher_recovered_total",
                    "Tasks whose lease expired, by what became of them (requeued, failed, "
                    "cancelled: a cancelled run its worker did not stop within cancel_grace_s).",
                    ["service", "outcome"])
DELETED = Counter("taskmill_dispatcher_deleted_total",
                  "Ended tasks deleted by retention, by the status they ended in.",
                  ["service", "status"])
WORKERS = Gauge("taskmill_dispatcher_workers",
                "Members of each service's consumer group, as Kafka last reported them.",
                ["service"])
RUN_SECONDS = Gauge("taskmill_dispatcher_run_seconds",
                    "Median run time (running to finished) of each service's last 50 finished "
                    "tasks: how many tasks a worker is handed at once.", ["service"])
BACKLOG_WORK_SECONDS = Gauge(
    "taskmill_dispatcher_backlog_work_seconds",
    "Each service's queued tasks (as taskmill_dispatcher_queued_tasks) times the 95th percentile "
    "run time of its last 50 finished tasks (1 s before any finished): the work its workers "
    "have ahead, for autoscaling.", ["service"])
BREAKER_STATE = Gauge("taskmill_dispatcher_breaker_state",
                      "Each service's circuit breaker: 0 closed (publishing), 1 half open (one "
                      "task on trial), 2 open (paused after failed runs in a row).", ["service"])
BREAKER_OPENED = Counter("taskmill_dispatcher_breaker_opened_total",
                         "Times each service's breaker opened (its tasks stopped being published).",
                         ["service"])
QUEUED = Gauge("taskmill_dispatcher_queued_tasks",
               "Started tasks of each service that no worker runs yet: in the store's backlog "
               "or published and waiting (what a service's autoscaler should see).", ["service"])
BACKLOG = Gauge("taskmill_dispatcher_backlog_tasks",
                "Started tasks not yet published (due now or after a retry's backoff).")
BACKLOG_AGE = Gauge("taskmill_dispatcher_backlog_oldest_age_seconds",
                    "Age of the oldest started-but-unpublished task (0 when none).")
TASKS = Gauge("taskmill_tasks", "Tasks in the store by service and status (the store's counts, read "
              "on a timer).", ["service", "status"])
COUNT_CORRECTIONS = Counter("taskmill_dispatcher_count_corrections_total",
                            "Task counts found to differ from the tasks themselves and corrected.",
                            ["service"])
