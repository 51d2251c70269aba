"""The outbox relay: claim started tasks, publish them, record the broker's confirmation."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from taskmill.codec import TaskMessage
from taskmill.config import Config
from taskmill.logs import task_fields
from taskmill.schema import utcnow
from taskmill.store import Task, TaskStore
from taskmill_dispatcher import metrics

log = logging.getLogger(__name__)


class Producer(Protocol):
    """The part of confluent_kafka.Producer the relay uses."""

    def produce(self, topic: str, value: bytes, key: bytes, headers: Any,
                on_delivery: Callable[[Any, Any], None]) -> None: ...

    def poll(self, timeout: float) -> int: ...

    def flush(self, timeout: float) -> int: ...


@dataclass
class _Outcome:
    task: Task
    error: Any = None
    done: bool = False

    @property
    def confirmed(self) -> bool:
        return self.done and self.error is None


def delivery_timeout_s(config: Config) -> float:
    """How long the broker may take to confirm a message.

    Publication must settle well within a claim, or a second dispatcher could take the
    task over while this one still waits for the broker.
    """
    return config.lifecycle.dispatch_claim_s * 0.7


class Relay:
    """Moves started tasks from the store to their services' topics, at least once."""

    def __init__(self, config: Config, store: TaskStore, producer: Producer,
                 batch_size: int = 200, clock: Callable[[], datetime] = utcnow) -> None:
        self._config = config
        self._store = store
        self._producer = producer
        self._batch_size = batch_size
        self._clock = clock
        # The producer fails a message after delivery_timeout_s; wait a little longer.
        self._flush_timeout_s = delivery_timeout_s(config) + 1.0

    def run_once(self) -> int:
        """Publish one batch of due tasks; return how many the broker confirmed."""
        tasks = self._store.outbox.claim_due(self._batch_size, self._config.lifecycle.dispatch_claim_s,
                                             services=list(self._config.services))
        if not tasks:
            return 0
        metrics.BATCH_SIZE.observe(len(tasks))
        outcomes = [self._produce(task) for task in tasks]
        self._producer.flush(self._flush_timeout_s)
        confirmed = [o.task for o in outcomes if o.confirmed]
        failed = [o for o in outcomes if not o.confirmed]
        if failed:
            self._release(failed)
        self._store.outbox.mark_published(confirmed)
        now = self._clock()
        for task in confirmed:
            metrics.PUBLISHED.labels(task["service"]).inc()
            waited = (now - task["start_requested_at"]).total_seconds()
            metrics.START_TO_PUBLISH_SECONDS.labels(task["service"]).observe(max(waited, 0.0))
        return len(confirmed)

    def _produce(self, task: Task) -> _Outcome:
        service = self._config.service(task["service"])
        message = TaskMessage(task_id=task["task_id"], service=task["service"],
                              source_name=task["source_name"], condition=task["condition"],
                              attempt=task["attempt"])
        outcome = _Outcome(task)

        def delivered(error: Any, _msg: Any) -> None:
            outcome.error, outcome.done = error, True

        self._producer.produce(service.topic_name, value=message.encode(), key=message.key(),
                               headers=message.headers(), on_delivery=delivered)
        self._producer.poll(0)
        return outcome

    def _release(self, failed: list[_Outcome]) -> None:
        for outcome in failed:
            task = outcome.task
            metrics.PUBLISH_FAILURES.labels(task["service"]).inc()
            log.warning("publication not confirmed (%s); will retry",
                        outcome.error or "no answer from the broker", extra=task_fields(task))
        self._store.outbox.release([o.task for o in failed])
