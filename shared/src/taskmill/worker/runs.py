"""One run of the algorithm on a task: in a thread of its own, while the worker keeps its
group membership and the run's lease alive (heartbeats). Most runs end within
QUICK_TASK_S and cost nothing more; a longer one pauses the consumer and is watched. A
heartbeat answered `cancel` sets `ctx.cancelled`: the run is reported failed when the
algorithm returns, or after cancel_grace_s without waiting for it. A run still going when
the worker stops is given up after shutdown_grace_s (its message is delivered again).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from taskmill.codec import TaskMessage
from taskmill.config import LifecycleConfig
from taskmill.logs import clip
from taskmill.schema import Status
from taskmill.worker import metrics
from taskmill.worker.context import TaskCancelled, TaskContext, TaskFailed
from taskmill.worker.feeds import Feed
from taskmill.worker.reporting import Outcome, Reporter, task_extra
from taskmill.worker.sources import Sources

log = logging.getLogger("taskmill.worker")

Algorithm = Callable[[dict[str, Any], TaskContext], Mapping[str, Any]]

# A task that ends within this never pauses the consumer.
QUICK_TASK_S = 1.0

# What a run whose lease was lost meanwhile answers: nothing to report.
LEASE_LOST = Outcome(Status.FAILED, message="lease lost")
# A cancelled run (the store records the client's reason in its place).
CANCELLED = Outcome(Status.FAILED, message="cancelled")


class Runs:
    """Runs one service's algorithm, a task at a time. `keep_alive(seconds)` is the worker's
    wait that keeps its group membership (and its liveness) while a long run goes on."""

    def __init__(self, algorithm: Algorithm, service: str, lifecycle: LifecycleConfig,
                 sources: Sources, feed: Feed, reporter: Reporter, stopping: threading.Event,
                 keep_alive: Callable[[float], None]) -> None:
        self._algorithm = algorithm
        self._service = service
        self._lifecycle = lifecycle
        self._sources = sources
        self._feed = feed
        self._reporter = reporter
        self._stopping = stopping
        self._keep_alive = keep_alive

    def execute(self, task: TaskMessage, on_long: Callable[[], Any] | None = None,
                on_beat: Callable[[], Any] | None = None) -> Outcome | None:
        """Run the algorithm: its outcome, LEASE_LOST, or None (given up on shutdown). A run
        longer than QUICK_TASK_S first calls `on_long`, then keeps the consumer and its
        lease alive, calling `on_beat` with each of its heartbeats."""
        box: dict[str, Outcome] = {}
        stop, cancel = threading.Event(), threading.Event()
        ctx = TaskContext(task_id=task.task_id, service=task.service, attempt=task.attempt,
                          source_name=task.source_name,
                          _source=lambda: self._sources.get(task.source_name),
                          _progress=lambda fraction, message: self._reporter.heartbeat(
                              task, stop, cancel, fraction, message),
                          _stop=stop, _cancel=cancel)
        thread = threading.Thread(target=lambda: box.update(outcome=self._call(task, ctx)),
                                  name=f"task-{task.task_id}", daemon=True)
        started = time.monotonic()
        metrics.IN_FLIGHT.labels(self._service).inc()
        thread.start()
        try:
            # Most tasks end quickly: only a longer one needs the consumer kept alive.
            thread.join(QUICK_TASK_S)
            if thread.is_alive():
                if on_long is not None:
                    on_long()
                self._feed.hold()
                try:
                    if not self._wait_for(thread, task, stop, cancel, on_beat):
                        return None
                finally:
                    self._feed.release()
        finally:
            metrics.IN_FLIGHT.labels(self._service).dec()
            metrics.RUN_SECONDS.labels(self._service).observe(time.monotonic() - started)
        if stop.is_set():
            metrics.SKIPPED.labels(self._service).inc()
            log.warning("lease lost while running: the outcome is not reported (another "
                        "attempt runs the task)", extra=task_extra(task))
            return LEASE_LOST
        if cancel.is_set():
            metrics.TASKS.labels(self._service, "cancelled").inc()
            log.info("cancelled: the run stopped", extra=task_extra(task))
            return CANCELLED
        outcome = box["outcome"]
        metrics.TASKS.labels(self._service, outcome.status.value).inc()
        return outcome

    def _wait_for(self, thread: threading.Thread, task: TaskMessage, stop: threading.Event,
                  cancel: threading.Event, on_beat: Callable[[], Any] | None) -> bool:
        """Keep the consumer and the run's lease alive until the thread ends (False: gave
        up). A cancelled run is waited for cancel_grace_s at most, then left behind."""
        next_beat = time.monotonic()
        give_up_at: float | None = None
        abandon_at: float | None = None
        while thread.is_alive():
            now = time.monotonic()
            if now >= next_beat:
                if not cancel.is_set():
                    self._reporter.heartbeat(task, stop, cancel)
                if on_beat is not None:
                    on_beat()
                next_beat = now + self._lifecycle.heartbeat_s
            if cancel.is_set() and abandon_at is None:
                abandon_at = now + self._lifecycle.cancel_grace_s
            if abandon_at is not None and now > abandon_at:
                log.warning("the algorithm did not stop within cancel_grace_s of its "
                            "cancellation: its thread is left behind and the task reported "
                            "failed; closing the data sources it may hold", extra=task_extra(task))
                self._sources.close()
                return True
            if self._stopping.is_set() and give_up_at is None:
                give_up_at = now + self._lifecycle.shutdown_grace_s
            if give_up_at is not None and now > give_up_at:
                log.warning("shutdown grace over; giving the task back", extra=task_extra(task))
                return False
            self._keep_alive(0.1)
            thread.join(0.1)
        return True

    def _call(self, task: TaskMessage, ctx: TaskContext) -> Outcome:
        try:
            result = self._algorithm(dict(task.condition), ctx)
        except TaskCancelled:
            return CANCELLED
        except TaskFailed as ex:
            return Outcome(Status.FAILED, message=str(ex), retry=ex.retry)
        except Exception as ex:  # an algorithm's bug must not kill the worker; it is permanent
            log.exception("algorithm raised", extra=task_extra(task))
            return Outcome(Status.FAILED, message=clip(f"{type(ex).__name__}: {ex}"))
        if not isinstance(result, Mapping):
            return Outcome(Status.FAILED, message=f"algorithm returned {type(result).__name__}, "
                                                  "not an object")
        try:
            json.dumps(result)
        except (TypeError, ValueError) as ex:
            return Outcome(Status.FAILED, message=f"algorithm result is not JSON: {ex}")
        return Outcome(Status.FINISHED, result=result)
